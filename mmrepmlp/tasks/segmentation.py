"""Semantic segmentation on MMSegmentation (Cityscapes PSPNet), an optional dependency."""
import os
import os.path as osp
import shutil
import tempfile

from ..utils.errors import InputError
from ..utils.files import check_writable
from .base import Task, TestOutput, dataset_configs, register_task
from .classification import visualization_hook

INSTALL_HINT = ('pip install "mmsegmentation==1.2.2" ftfy regex (or pip install '
                '"mmrepmlp[seg]")')


@register_task
class SegmentationTask(Task):
    """MMSegmentation segmentors (``default_scope = 'mmseg'``), as MMSeg's own tools run them.

    Dataloaders keep MMSeg's ``pseudo_collate``; ``--show/--show-dir`` switch on
    ``SegVisualizationHook`` (drawing into the visualizer's ``save_dir``); ``--out DIR``
    writes the predicted maps, one PNG per image, into ``DIR``: they are written into a
    temporary folder beside it and moved to ``DIR`` when the test has finished, so an
    interrupted test leaves no partial maps and an existing folder as it was.
    """

    name = 'segmentation'
    default_scope = 'mmseg'

    def claims(self, cfg):
        return cfg.get('default_scope') == 'mmseg'

    def check_available(self):
        try:
            import mmseg.models  # noqa: F401
        except ImportError as exc:
            raise InputError(f'this is a segmentation config and MMSegmentation cannot be '
                             f'imported ({exc}); {INSTALL_HINT}') from exc

    def enable_visualization(self, cfg, show, show_dir, wait_time, interval):
        hook = visualization_hook(cfg, 'SegVisualizationHook')
        hook.update(draw=True, show=show, wait_time=wait_time, interval=interval)
        if show_dir:
            cfg.visualizer.save_dir = show_dir

    def check_test_output(self, out, out_item):
        if out_item == 'metrics':
            return super().check_test_output(out, out_item)
        if osp.isfile(out):
            raise InputError(f'--out {out}: segmentation maps go into a folder, and {out} is a '
                             'file; give a folder path (or --out-item metrics for a file)')
        check_writable(osp.join(out, 'map.png'))

    def prepare_test_output(self, cfg, out, out_item):
        if out_item == 'metrics':
            return TestOutput()
        parent = osp.dirname(osp.abspath(out))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f'.{osp.basename(osp.abspath(out))}.', dir=parent)
        # MMSeg's IoUMetric writes the maps (output_dir) as the test goes.
        cfg.test_evaluator.update(output_dir=staging, keep_results=True)
        return TestOutput(commit=lambda succeeded: _commit_folder(staging, out, succeeded))

    def add_data_checks(self, cfg, loaders):
        """Put a :class:`~mmrepmlp.datasets.CheckSegLabels` of the decode head's classes after
        every ``LoadAnnotations`` of the pipelines."""
        head = cfg.model.get('decode_head')
        if not isinstance(head, dict) or 'num_classes' not in head:
            return
        check = dict(type='CheckSegLabels', num_classes=head['num_classes'],
                     ignore_index=head.get('ignore_index', 255))
        for key in loaders:
            for dataset in dataset_configs(cfg.get(key)):
                _insert_after_load_annotations(dataset.get('pipeline') or [], check)

    def input_shape(self, cfg, shape=None):
        backbone = cfg.model.get('backbone') or {}
        if shape is None and backbone.get('img_size') is None:
            test_cfg = cfg.model.get('test_cfg') or {}
            size = test_cfg.get('crop_size') or (cfg.model.get('data_preprocessor') or {}).get(
                'size')
            if size is not None:  # MMSeg sizes are (h, w)
                shape = (size, size) if isinstance(size, int) else tuple(size)
        return super().input_shape(cfg, shape)


def _commit_folder(staging, out, succeeded):
    """Move the finished maps of ``staging`` to ``out``, or remove them.

    A new ``out`` is the renamed staging folder (all maps appear at once); into an existing
    one the maps are moved file by file, each replacing a map of the same name, and nothing
    else in the folder is touched.
    """
    if succeeded and not osp.exists(out):
        os.replace(staging, out)
        return
    if succeeded:
        for name in os.listdir(staging):
            os.replace(osp.join(staging, name), osp.join(out, name))
    shutil.rmtree(staging, ignore_errors=True)


def _insert_after_load_annotations(pipeline, check):
    """Insert ``check`` after each ``LoadAnnotations`` of ``pipeline`` that has none yet (two
    dataloaders may share one pipeline)."""
    for index in reversed(range(len(pipeline))):
        transform = pipeline[index]
        following = pipeline[index + 1] if index + 1 < len(pipeline) else {}
        if (isinstance(transform, dict)
                and str(transform.get('type')).split('.')[-1] == 'LoadAnnotations'
                and following.get('type') != check['type']):
            pipeline.insert(index + 1, dict(check))
