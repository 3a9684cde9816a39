"""Semantic segmentation on MMSegmentation (Cityscapes PSPNet), an optional dependency."""
import inspect
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
# How Cityscapes' label maps are made from its released polygons.
CITYSCAPES_CONVERTER = ('python "$(python -c \'import mmseg, os; print(os.path.dirname('
                        'mmseg.__file__))\')/.mim/tools/dataset_converters/cityscapes.py" '
                        '{root} --nproc 8 (pip install cityscapesscripts first)')


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


    def check_data_files(self, cfg, loaders):
        """Every image of an MMSeg data set read from folders has its label map (MMSeg would
        fail at the first batch that reads a missing one)."""
        for loader in loaders:
            for index, dataset in enumerate(dataset_configs(cfg.get(loader))):
                missing, total, paths = _images_without_label_maps(dataset)
                if missing:
                    raise InputError(_missing_maps_message(
                        f'{loader}.dataset' + (f'[{index}]' if index else ''), missing, total,
                        paths, dataset))

    def input_shape(self, cfg, shape=None):
        backbone = cfg.model.get('backbone') or {}
        if shape is None and backbone.get('img_size') is None:
            test_cfg = cfg.model.get('test_cfg') or {}
            size = test_cfg.get('crop_size') or (cfg.model.get('data_preprocessor') or {}).get(
                'size')
            if size is not None:  # MMSeg sizes are (h, w)
                shape = (size, size) if isinstance(size, int) else tuple(size)
        return super().input_shape(cfg, shape)


def _suffixes(dataset):
    """``(img_suffix, seg_map_suffix)`` of a dataset config, its class's defaults filled."""
    from mmseg.registry import DATASETS

    parameters = {}
    cls = DATASETS.get(dataset.get('type')) if dataset.get('type') else None
    for klass in (inspect.getmro(cls) if inspect.isclass(cls) else ()):
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            parameters.setdefault(name, parameter.default)
    return tuple(dataset.get(name, parameters.get(name)) for name in
                 ('img_suffix', 'seg_map_suffix'))


def _images_without_label_maps(dataset):
    """``(images lacking a label map, images, (image folder, map folder))`` of a dataset
    config that lists its images from folders, as MMSeg's ``BaseSegDataset`` does."""
    prefix = dataset.get('data_prefix') or {}
    if not isinstance(prefix, dict) or dataset.get('ann_file') or not prefix.get('seg_map_path'):
        return [], 0, None
    root = dataset.get('data_root') or ''
    image_dir, map_dir = (osp.join(root, prefix.get(key) or '')
                          for key in ('img_path', 'seg_map_path'))
    img_suffix, map_suffix = _suffixes(dataset)
    if not (isinstance(img_suffix, str) and isinstance(map_suffix, str)
            and osp.isdir(image_dir)):
        return [], 0, None
    images = sorted(osp.relpath(osp.join(folder, name), image_dir)
                    for folder, _, names in os.walk(image_dir) for name in names
                    if name.endswith(img_suffix))
    missing = [osp.join(map_dir, image[:-len(img_suffix)] + map_suffix) for image in images
               if not osp.isfile(osp.join(map_dir, image[:-len(img_suffix)] + map_suffix))]
    return missing, len(images), (image_dir, map_dir)


def _missing_maps_message(key, missing, total, paths, dataset):
    image_dir, map_dir = paths
    root = dataset.get('data_root') or 'DATA_ROOT'
    fix = (f'make them with MMSeg\'s Cityscapes converter: '
           f'{CITYSCAPES_CONVERTER.format(root=root)}'
           if 'labelTrainIds' in missing[0] else
           f'put the label maps there or set {key}.seg_map_suffix to their suffix')
    return (f'{len(missing)} of the {total} images under {image_dir} have no label map in '
            f'{map_dir} (from {key}), e.g. {missing[0]}; {fix}')


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
