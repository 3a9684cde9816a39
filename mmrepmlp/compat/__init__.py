"""Patches of the pinned OpenMMLab stack, applied on ``import mmrepmlp``.

``mmrepmlp`` runs on torch 2.14 / numpy 2.4 / mmcv-lite / mmengine 0.10.7, a combination that
OpenMMLab never released for. Each patch has its own module here with one ``fix_*`` function
whose docstring names the problem and when the module can be deleted, and its own test module
under ``tests/compat/``. :func:`apply_all` applies all of them; it is idempotent and is called
on ``import mmrepmlp``.

Fixes of breakages (without them configs, checkpoints or launchers fail):

* :mod:`.mmcv_ops` - mmcv-lite has no ``mmcv.ops`` but ``import mmseg.models`` needs it;
* :mod:`.checkpoint_loading` - torch>=2.6 ``weights_only`` breaks mmengine checkpoints; every
  mmengine loader goes through :func:`mmrepmlp.utils.checkpoint.safe_load`;
* :mod:`.package_lookup` - mmengine locates ``mmpretrain::``/``mmseg::`` configs with
  ``pkg_resources`` (gone in setuptools>=81);
* :mod:`.numpy_in1d` - numpy>=2.4 removed ``np.in1d`` (mmpretrain retrieval metrics);
* :mod:`.cpu_distributed` - mmengine's DDP set-up assumes CUDA.

Added behaviour (listed in the README as what importing mmrepmlp does; docs/tools.md says
why they are applied on import):

* :mod:`.checkpoint_saving` - mmengine writes checkpoints in place (a crash truncates them);
* :mod:`.dist_test_dir` - mmengine's distributed evaluation leaves ``.dist_test`` behind;
* :mod:`.inference_model` - mmpretrain's ``inference_model`` serves model-zoo models only;
* :mod:`.inferencer_model_names` - MMEngine's inferencers (``MMSegInferencer``) find model
  names in their own package only.
"""
from .checkpoint_loading import fix_checkpoint_loading
from .checkpoint_saving import fix_checkpoint_saving
from .cpu_distributed import fix_cpu_distributed
from .dist_test_dir import fix_dist_test_dir
from .inference_model import fix_inference_model
from .inferencer_model_names import fix_inferencer_model_names
from .mmcv_ops import fix_mmcv_ops, point_sample, sigmoid_focal_loss
from .numpy_in1d import fix_numpy_in1d
from .package_lookup import fix_pkg_resources

__all__ = [
    'apply_all', 'FIXES', 'fix_mmcv_ops', 'fix_checkpoint_loading', 'fix_pkg_resources',
    'fix_numpy_in1d', 'fix_cpu_distributed', 'fix_checkpoint_saving', 'fix_dist_test_dir',
    'fix_inference_model', 'fix_inferencer_model_names',
    'point_sample', 'sigmoid_focal_loss'
]

# mmcv.ops and pkg_resources first: importing mmengine's config and mmseg needs them.
FIXES = (fix_mmcv_ops, fix_pkg_resources, fix_numpy_in1d, fix_checkpoint_loading,
         fix_checkpoint_saving, fix_cpu_distributed, fix_dist_test_dir, fix_inference_model,
         fix_inferencer_model_names)


def apply_all():
    """Apply every fix (idempotent).

    Returns:
        dict: fix name -> whether this call changed anything.
    """
    return {fix.__name__: fix() for fix in FIXES}
