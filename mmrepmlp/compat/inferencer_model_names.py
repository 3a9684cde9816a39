"""MMEngine's inferencers (``MMSegInferencer``) find model names in their own package only."""
import functools
import glob
import os.path as osp

from ..utils import find_repo_file
from .marks import is_ours, mark


def _metafile_models():
    """``(name, config path, weights)`` of every model in the metafiles of mmrepmlp's config
    folders (the segmentation models too, which the model index registered with MMPretrain
    leaves out)."""
    import yaml

    configs = find_repo_file('configs')
    root = osp.dirname(configs)
    for metafile in sorted(glob.glob(osp.join(configs, '*', 'metafile.yml'))):
        with open(metafile) as f:
            for model in yaml.safe_load(f).get('Models', []):
                yield model['Name'], osp.join(root, model['Config']), model.get('Weights')


def find_model(name, scope):
    """``(Config, weights)`` of mmrepmlp's model ``name`` whose config builds in ``scope``
    (its ``default_scope``, e.g. ``'mmseg'``), else None."""
    from mmengine.config import Config

    for model_name, config_path, weights in _metafile_models():
        if model_name.lower() == name.lower():
            cfg = Config.fromfile(config_path)
            if cfg.get('default_scope') == scope:
                return cfg, weights
    return None


def _wrap_load_model_from_metafile(original):

    @functools.wraps(original)
    def load_model_from_metafile(self, model):
        try:
            return original(self, model)
        except ValueError:  # not in the scope's own package: one of mmrepmlp's models?
            found = find_model(model, self.scope)
            if found is None:
                raise
            return found

    return mark(load_model_from_metafile)


def fix_inferencer_model_names():
    """Let MMEngine-based inferencers load mmrepmlp's models by name.

    Upstream problem: ``mmengine.infer.BaseInferencer``, the base of ``MMSegInferencer``,
    looks a model name up in the metafiles of its scope's own package only, so
    ``MMSegInferencer('pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713')`` fails with
    ``Cannot find model``. A name it does not find is then looked up in the metafiles of
    mmrepmlp's configs, among the models whose config builds in the inferencer's scope; names
    it finds are served as before. (MMPretrain's inferencers use ``ModelHub``, where ``import
    mmrepmlp`` registers the index.)

    Remove when MMEngine's inferencers consult registered model indexes (not in 0.10.7).

    Returns:
        bool: True if anything was patched by this call.
    """
    from mmengine.infer import BaseInferencer

    if is_ours(BaseInferencer._load_model_from_metafile):
        return False
    BaseInferencer._load_model_from_metafile = _wrap_load_model_from_metafile(
        BaseInferencer._load_model_from_metafile)
    return True
