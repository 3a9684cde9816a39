"""Image classification on MMPretrain (ImageNet, CIFAR, the digits quick start)."""
from copy import deepcopy

from ..utils.errors import InputError
from .base import Task, register_task


@register_task
class ClassificationTask(Task):
    """MMPretrain classifiers: what its ``tools/test.py`` and ``tools/train.py`` do.

    Dataloaders stack samples (``default_collate``) for MMPretrain's data preprocessor,
    ``--show-dir`` switches on ``VisualizationHook``, ``--tta`` without a ``tta_model`` in the
    config averages the scores of each image and its mirror, ``--out`` is a pickle of the
    predictions. It claims every config in the ``mmpretrain`` scope (or without a scope) that
    no other task claims.
    """

    name = 'classification'
    default_scope = 'mmpretrain'
    fallback = True

    def claims(self, cfg):
        return cfg.get('default_scope') in (None, 'mmpretrain')

    def dataloader_defaults(self):
        return dict(collate_fn=dict(type='default_collate'))

    def enable_visualization(self, cfg, show, show_dir, wait_time, interval):
        hook = visualization_hook(cfg, 'VisualizationHook')
        hook.update(enable=True, show=show, out_dir=show_dir, wait_time=wait_time,
                    interval=interval)

    def enable_tta(self, cfg):
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
            # Flip test-time augmentation: each image as is and mirrored, scores averaged.
            test_pipeline = cfg.test_dataloader.dataset.pipeline
            flip = dict(type='TestTimeAug',
                        transforms=[[dict(type='RandomFlip', prob=1.),
                                     dict(type='RandomFlip', prob=0.)], [test_pipeline[-1]]])
            cfg.setdefault('tta_pipeline', [*deepcopy(test_pipeline[:-1]), flip])
        super().enable_tta(cfg)


def visualization_hook(cfg, hook_type):
    """The config's visualization hook, or a clear error naming the hook to add."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise InputError('--show/--show-dir need a visualization hook in the config: add '
                         f"default_hooks.visualization = dict(type='{hook_type}')")
    return hook
