"""mmrepmlp: RepMLP re-parameterized blocks for the OpenMMLab ecosystem.

Importing the package applies the patches of the pinned stack (:mod:`mmrepmlp.compat`: five
fixes of its breakages and four additions, listed there), registers every model, dataset,
metric and hook in MMPretrain's registries, and registers the package's model index with
``mmpretrain.apis.ModelHub``.
"""
from .version import __version__, check_mmcv

check_mmcv()

from . import compat  # noqa: E402

compat.apply_all()

from . import datasets, deployment, evaluation, models  # noqa: E402,F401  (registration)
from .reparam import repmlp_model_convert  # noqa: E402
from .utils import register_model_index  # noqa: E402

register_model_index()

__all__ = ['__version__', 'repmlp_model_convert']
