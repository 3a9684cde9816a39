"""What the tools need to know about a task, and how a config picks its task.

The tools (train, test, deploy conversion, export, speed) are the same for every task; what
differs between classification, segmentation and face recognition lives in one small
:class:`Task` subclass per task: the registry scope that builds its models, the dataloader
defaults, how ``--show``/``--show-dir``/``--tta``/``--out`` of ``tools/test.py`` are realised,
the input size of a config and how two forms of a model are compared. A new task is one
subclass registered with :func:`register_task`, plus its datasets, heads, metrics and configs.
"""
import inspect
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable

from mmcv.transforms import Compose
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

from ..deployment import compare_outputs
from ..evaluation.metrics.dump import DumpPredictions
from ..utils.errors import InputError
from ..utils.files import check_writable

_TASKS = {}

# Transforms whose output has a fixed size, and the argument that holds it as (w, h) or int.
_FIXED_SIZE_TRANSFORMS = {
    'CenterCrop': 'crop_size',
    'RandomCrop': 'crop_size',
    'RandomResizedCrop': 'scale',
    'Resize': 'scale',
}


def register_task(cls):
    """Class decorator: make ``cls`` (a :class:`Task` subclass) known by its ``name``."""
    _TASKS[cls.name] = cls()
    return cls


def registered_tasks():
    """The known tasks, by name."""
    return dict(_TASKS)


def task_of(cfg):
    """The task of a config: its ``task`` entry when it has one, else the first task that
    claims it (more specific tasks before the fallback ones).

    Raises:
        InputError: no task claims the config, or it names an unknown task.
    """
    name = cfg.get('task')
    if name is not None:
        if name not in _TASKS:
            raise InputError(f'config {cfg.filename} sets task = {name!r}, which is not one of '
                             f'{sorted(_TASKS)}; fix the name or import the module that '
                             'registers it (custom_imports)')
        return _TASKS[name]
    candidates = sorted(_TASKS.values(), key=lambda task: task.fallback)
    for task in candidates:
        if task.claims(cfg):
            return task
    raise InputError(f'cannot tell the task of config {cfg.filename} (default_scope '
                     f'{cfg.get("default_scope")!r}); set task = one of {sorted(_TASKS)} in it')


def dataset_configs(loader):
    """The dataset configs of a dataloader config, wrappers (ConcatDataset, RepeatDataset,
    ClassBalancedDataset...) unwrapped."""
    pending, found = [loader.get('dataset') if loader else None], []
    while pending:
        dataset = pending.pop()
        if not isinstance(dataset, dict):
            continue
        if 'datasets' in dataset:
            pending += list(dataset['datasets'])
        elif 'dataset' in dataset:
            pending.append(dataset['dataset'])
        else:
            found.append(dataset)
    return found


@dataclass
class TestOutput:
    """What ``tools/test.py --out`` needs from a task for one run.

    Attributes:
        metrics (list): metrics appended to the Runner's test evaluator (they write the file).
        commit (Callable[[bool], None]): called with whether the test succeeded, after it.
    """
    metrics: list = field(default_factory=list)
    commit: Callable[[bool], None] = lambda succeeded: None


class Task:
    """The task-specific part of the tools. Subclasses set the attributes and override what
    differs from these defaults.

    Attributes:
        name (str): what ``task = ...`` in a config names.
        default_scope (str): the registry scope that builds the task's models when the config
            has no ``default_scope``.
        fallback (bool): claims configs only when no other task does.
    """

    name = None
    default_scope = 'mmpretrain'
    fallback = False

    # ------------------------------------------------------------------ choosing
    def claims(self, cfg):
        """Whether ``cfg`` (without a ``task`` entry) belongs to this task."""
        return False

    def check_available(self):
        """Raise :class:`InputError` naming what to install when the task's packages are
        missing."""

    def scope(self, cfg):
        """The registry scope that builds the models of ``cfg``."""
        return cfg.get('default_scope') or self.default_scope

    # ------------------------------------------------------------------ configs
    def dataloader_defaults(self):
        """Entries every dataloader of the task gets unless the config sets them."""
        return {}

    def enable_visualization(self, cfg, show, show_dir, wait_time, interval):
        """``test.py --show/--show-dir``: switch on the task's visualization."""
        raise InputError(f'--show/--show-dir: the {self.name} task has no visualization')

    def enable_tta(self, cfg):
        """``test.py --tta``: the config's ``tta_model`` and ``tta_pipeline``."""
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise InputError('--tta needs tta_model and tta_pipeline in the config')
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    def check_test_output(self, out, out_item):
        """Raise :class:`InputError` when ``test.py --out`` cannot hold ``out_item`` or cannot
        be written (before any work)."""
        if out_item != 'metrics' and not out.endswith(('.pkl', '.pickle')):
            raise InputError(f'--out {out}: predictions are written as a pickle; end the file '
                             'name with .pkl (or pass --out-item metrics for json/yaml)')
        check_writable(out)

    def prepare_test_output(self, cfg, out, out_item):
        """How ``test.py --out`` is written: config changes made here (before the Runner is
        built), and the returned :class:`TestOutput`."""
        return TestOutput(metrics=[DumpPredictions(out)] if out_item in ('pred', None) else [])

    def input_shape(self, cfg, shape=None):
        """The ``(C, H, W)`` of one input of ``cfg.model``.

        ``shape`` ``(H, W)`` wins; otherwise the backbone's ``img_size`` (RepMLP backbones are
        built for one input size), otherwise the last fixed-size crop or resize of the test
        pipeline.
        """
        backbone = cfg.model.get('backbone') or {}
        channels = backbone.get('in_channels', 3)
        if shape is not None:
            return (channels, *shape)
        img_size = backbone.get('img_size')  # (H, W), unlike the transforms' (w, h)
        if img_size is not None:
            return (channels, *((img_size, img_size) if isinstance(img_size, int) else img_size))
        for transform in reversed(self.test_pipeline(cfg)):
            key = _FIXED_SIZE_TRANSFORMS.get(str(transform.get('type')).split('.')[-1])
            if key and transform.get(key) is not None and not transform.get('keep_ratio'):
                return (channels, *_size_hw(transform[key]))
        raise InputError(f'cannot tell the input size of config {cfg.filename} (no backbone '
                         'img_size, no fixed-size crop in the test pipeline); pass --shape H W')

    def image_pipeline(self, cfg):
        """What makes one model input of a decoded image (an ``(H, W, C)`` array): the test
        pipeline of ``cfg`` without its loading step, built in the task's registry scope."""
        with DefaultScope.overwrite_default_scope(self.scope(cfg)):
            pipeline = Compose([transform for transform in self.test_pipeline(cfg)
                                if not str(transform['type']).startswith('Load')])
        return lambda image: pipeline(dict(img=image, img_shape=image.shape[:2],
                                           ori_shape=image.shape[:2]))

    @staticmethod
    def test_pipeline(cfg):
        loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
        datasets = dataset_configs(loader)
        pipeline = datasets[0].get('pipeline') if datasets else None
        return pipeline or cfg.get('test_pipeline') or []

    def compare_outputs(self, reference, outputs):
        """How two forms' raw outputs are compared (see
        :func:`mmrepmlp.deployment.compare_outputs`); a task may compare its outputs otherwise."""
        return compare_outputs(reference, outputs)

    # ------------------------------------------------------------------ data
    def add_data_checks(self, cfg, loaders):
        """Add to the pipelines of the dataloaders ``loaders`` the checks of each sample as it
        is loaded that the task's data needs (``tools/train.py`` and ``tools/test.py`` call
        it on their final config)."""

    def check_training_data(self, cfg):
        """Check the training data against the model before training starts (and in a dry
        run); raise :class:`InputError` naming the problem and the fix."""

    def data_paths(self, cfg, loaders):
        """``[(config key, path)]`` of the files and folders the given dataloaders read.

        Reads ``data_root`` and the usual path arguments of OpenMMLab datasets (``ann_file``,
        ``data_prefix`` as a string or a dict, and arguments ending in ``_file``/``_files``),
        relative ones joined to ``data_root``. A dataset that downloads itself
        (``download=True``) is skipped.
        """
        paths = []
        for loader_key in loaders:
            for index, dataset in enumerate(dataset_configs(cfg.get(loader_key))):
                key = f'{loader_key}.dataset' + (f'[{index}]' if index else '')
                if not _downloads_itself(dataset):
                    paths += _dataset_paths(dataset, key)
        return paths

    def check_data_files(self, cfg, loaders):
        """Raise :class:`InputError` when the data sets of ``loaders`` (whose paths exist)
        lack files their samples need, where the task can tell it cheaply; the message
        names the files and the fix."""


def _size_hw(value):
    """An int or a ``(w, h)`` pair (the OpenMMLab transforms' order) -> ``(h, w)``."""
    if isinstance(value, int):
        return value, value
    w, h = value
    return h, w


def _downloads_itself(dataset):
    from mmengine.registry import DATASETS

    if 'download' in dataset:
        return bool(dataset['download'])
    try:
        with DATASETS.switch_scope_and_registry(None) as registry:
            cls = registry.get(dataset.get('type'))
    except Exception:  # an unknown scope prefix raises instead of returning None
        return False
    parameter = inspect.signature(cls).parameters.get('download') if cls else None
    return bool(parameter is not None and parameter.default)


def _dataset_paths(dataset, key):
    root = dataset.get('data_root') or ''
    paths = [(f'{key}.data_root', root)] if root else []

    def add(name, value):
        if isinstance(value, str) and value and '://' not in value:
            paths.append((f'{key}.{name}', osp.join(root, value)))

    for name, value in dataset.items():
        if name == 'data_prefix' and isinstance(value, dict):
            for sub_name, sub_value in value.items():
                add(f'data_prefix.{sub_name}', sub_value)
        elif name in ('ann_file', 'data_prefix') or name.endswith('_file'):
            add(name, value)
        elif name.endswith('_files'):
            items = value.items() if isinstance(value, dict) else enumerate(value or ())
            for sub_name, sub_value in items:
                add(f'{name}.{sub_name}', sub_value)
    return paths

