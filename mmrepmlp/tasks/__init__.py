"""The task axis of the tools: one :class:`Task` per task, chosen from the config by
:func:`task_of` (see :mod:`.base`)."""
from .base import Task, TestOutput, dataset_configs, register_task, registered_tasks, task_of
from .classification import ClassificationTask
from .face import FaceTask
from .segmentation import SegmentationTask

__all__ = [
    'Task', 'TestOutput', 'register_task', 'registered_tasks', 'task_of', 'dataset_configs',
    'ClassificationTask', 'SegmentationTask', 'FaceTask'
]
