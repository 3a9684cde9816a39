"""mmcv-lite has no ``mmcv.ops``, but ``import mmseg.models`` needs two of its ops."""
import importlib.machinery
import importlib.util
import sys
import types
import warnings

from .marks import is_ours, mark

_MMCV_OPS_HINT = ('is a compiled op of full mmcv; mmcv-lite (no mmcv._ext) only gets the '
                  'pure-PyTorch mmcv.ops.point_sample and mmcv.ops.sigmoid_focal_loss from '
                  'mmrepmlp.compat. Install full mmcv to use it.')


def point_sample(input, points, align_corners=False, **kwargs):
    """Sample ``input`` at relative ``points`` (pure PyTorch ``mmcv.ops.point_sample``).

    Args:
        input (Tensor): feature map of shape (N, C, H, W).
        points (Tensor): coordinates in ``[0, 1] x [0, 1]`` (x, y order), of shape (N, P, 2)
            or (N, Hg, Wg, 2).
        align_corners (bool): same meaning as in :func:`torch.nn.functional.grid_sample`.
        **kwargs: passed on to ``grid_sample`` (``mode``, ``padding_mode``).

    Returns:
        Tensor: (N, C, P) for 3-d ``points``, (N, C, Hg, Wg) for 4-d ``points``.
    """
    import torch.nn.functional as F

    flat = points.dim() == 3
    grid = points.unsqueeze(2) if flat else points
    # grid_sample wants [-1, 1] coordinates
    out = F.grid_sample(input, grid * 2.0 - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if flat else out


def sigmoid_focal_loss(input, target, gamma=2.0, alpha=0.25, weight=None, reduction='mean'):
    """Sigmoid focal loss with class-index targets (pure PyTorch ``mmcv.ops`` version).

    Same contract as ``mmcv.ops.sigmoid_focal_loss``: ``input`` holds logits (N, C),
    ``target`` class indices (N,) where an index outside ``[0, C)`` means "no positive
    class" (background), ``weight`` an optional per-class weight (C,) that scales every
    element of a sample by the weight of that sample's target class, ``reduction`` one of
    ``'none'`` (N, C), ``'mean'`` (sum divided by N) or ``'sum'``.
    """
    import torch
    import torch.nn.functional as F

    if input.dim() != 2 or target.dim() != 1 or input.size(0) != target.size(0):
        raise ValueError('sigmoid_focal_loss expects input (N, C) and target (N,), got '
                         f'{tuple(input.shape)} and {tuple(target.shape)}')
    if target.dtype != torch.long:
        raise TypeError(f'target must be torch.long class indices, got {target.dtype}')
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f'reduction must be none, mean or sum, got {reduction!r}')
    num_classes = input.size(1)
    classes = torch.arange(num_classes, device=input.device)
    positive = (target.unsqueeze(1) == classes).to(input.dtype)
    prob = input.sigmoid()
    loss_pos = -alpha * (1 - prob).pow(gamma) * F.logsigmoid(input)
    loss_neg = -(1 - alpha) * prob.pow(gamma) * F.logsigmoid(-input)
    loss = positive * loss_pos + (1 - positive) * loss_neg
    if weight is not None:
        if weight.dim() != 1 or weight.size(0) != num_classes:
            raise ValueError(f'weight must have shape ({num_classes},), got '
                             f'{tuple(weight.shape)}')
        valid = (target >= 0) & (target < num_classes)
        sample_weight = torch.where(valid, weight[target.clamp(0, num_classes - 1)],
                                    torch.ones_like(weight[:1]).expand_as(target))
        loss = loss * sample_weight.unsqueeze(1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


def _mmcv_ops_getattr(name):
    if name.startswith('__') and name.endswith('__'):
        # keep the ordinary protocol for dunders (hasattr(mod, '__file__'), copy, inspect...)
        raise AttributeError(f"module 'mmcv.ops' has no attribute {name!r}")
    raise ModuleNotFoundError(f'mmcv.ops.{name} {_MMCV_OPS_HINT}', name=f'mmcv.ops.{name}')


class _MmcvOpsSubmoduleBlocker:
    """Meta-path finder that fails ``import mmcv.ops.<x>`` with a clear message."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith('mmcv.ops.') and is_ours(sys.modules.get('mmcv.ops')):
            raise ModuleNotFoundError(f'{fullname} {_MMCV_OPS_HINT}', name=fullname)
        return None


def _mmcv_ext_available():
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


def fix_mmcv_ops():
    """Provide a minimal ``mmcv.ops`` when only mmcv-lite is installed.

    Upstream problem: mmcv-lite ships the ``mmcv/ops`` sources but not the compiled
    ``mmcv._ext``, so ``import mmcv.ops`` fails, and mmsegmentation 1.2.2 imports
    ``point_sample`` and ``sigmoid_focal_loss`` from it without a guard
    (``mmseg/utils/mask_classification.py``, ``mmseg/models/losses/focal_loss.py``...):
    ``import mmseg.models`` fails. This installs a module ``mmcv.ops`` with pure-PyTorch
    :func:`point_sample` and :func:`sigmoid_focal_loss`; looking up any other op, or importing
    any ``mmcv.ops.<submodule>``, raises ``ModuleNotFoundError`` (which is what mmseg's
    optional imports catch). Nothing happens when full mmcv (with ``mmcv._ext``) is installed.

    Remove when mmrepmlp requires full mmcv, or when mmseg guards these imports.

    Returns:
        bool: True if the stub was installed by this call.
    """
    try:
        import mmcv
    except ImportError:
        return False
    if _mmcv_ext_available() or is_ours(sys.modules.get('mmcv.ops')):
        return False
    # mmcv-lite warns on every import of mmcv.cnn that this compiled op is missing; that is
    # expected here and would bury the tools' one-line error messages.
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    ops = types.ModuleType('mmcv.ops', 'Pure-PyTorch subset of mmcv.ops (mmrepmlp.compat).')
    ops.__spec__ = importlib.machinery.ModuleSpec('mmcv.ops', None, is_package=True)
    ops.__path__ = []  # a package without submodules; the blocker explains failed imports
    ops.__package__ = 'mmcv.ops'
    ops.point_sample = point_sample
    ops.sigmoid_focal_loss = sigmoid_focal_loss
    ops.__all__ = ['point_sample', 'sigmoid_focal_loss']
    ops.__getattr__ = _mmcv_ops_getattr
    mark(ops)
    if not any(isinstance(f, _MmcvOpsSubmoduleBlocker) for f in sys.meta_path):
        sys.meta_path.insert(0, _MmcvOpsSubmoduleBlocker())
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    return True
