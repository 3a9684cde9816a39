"""Work-arounds for upstream breakages of the pinned OpenMMLab stack.

``mmrepmlp`` runs on torch 2.14 / numpy 2.4 / mmcv-lite / mmengine 0.10.7, a combination that
OpenMMLab never released for. Every work-around lives here as a small function whose
docstring names the upstream problem and when the function can be deleted. :func:`apply_all`
applies all of them; it is idempotent and is called on ``import mmrepmlp``.

This module must not import anything from the rest of ``mmrepmlp``.

Fixes (see each function):

* :func:`fix_mmcv_ops` - mmcv-lite has no ``mmcv.ops`` but ``import mmseg.models`` needs it.
* :func:`fix_checkpoint_loading` - torch>=2.6 ``weights_only`` breaks mmengine checkpoints;
  replaced by the allow-list loader :func:`safe_torch_load`.
* :func:`fix_pkg_resources` - mmengine locates ``mmpretrain::``/``mmseg::`` configs with
  ``pkg_resources`` (gone in setuptools>=81).
* :func:`fix_numpy_in1d` - numpy>=2.4 removed ``np.in1d`` (mmpretrain retrieval metrics).
* :func:`fix_cpu_distributed` - mmengine's DDP set-up assumes CUDA.
"""
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import io
import logging
import os
import os.path as osp
import pickle
import sys
import types
import warnings
import zipfile
from urllib.parse import urlparse

__all__ = [
    'apply_all', 'fix_mmcv_ops', 'fix_checkpoint_loading', 'fix_pkg_resources',
    'fix_numpy_in1d', 'fix_cpu_distributed', 'safe_torch_load', 'point_sample',
    'sigmoid_focal_loss', 'RestrictedUnpickler'
]

logger = logging.getLogger(__name__)

# Attribute set on everything this module patches in, so that a second call (or a second copy
# of this module) recognises its own work and does not wrap twice.
_MARK = '__mmrepmlp_compat__'


def _mark(obj):
    setattr(obj, _MARK, True)
    return obj


def _is_ours(obj):
    return getattr(obj, _MARK, False)


# ---------------------------------------------------------------------------------------------
# 1. mmcv.ops for mmcv-lite
# ---------------------------------------------------------------------------------------------

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
        if fullname.startswith('mmcv.ops.') and _is_ours(sys.modules.get('mmcv.ops')):
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
    if _mmcv_ext_available() or _is_ours(sys.modules.get('mmcv.ops')):
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
    _mark(ops)
    if not any(isinstance(f, _MmcvOpsSubmoduleBlocker) for f in sys.meta_path):
        sys.meta_path.insert(0, _MmcvOpsSubmoduleBlocker())
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    return True


# ---------------------------------------------------------------------------------------------
# 2. checkpoints: allow-list unpickler instead of weights_only
# ---------------------------------------------------------------------------------------------

class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that only builds objects a (mm)engine checkpoint legitimately contains.

    * globals: :func:`_allowed_globals` (tensors, storages, dtypes, containers, numpy arrays
      and scalars, mmengine ``HistoryBuffer``) plus whatever the user allowed with
      ``torch.serialization.add_safe_globals``; anything else raises
      :class:`pickle.UnpicklingError`.
    * ``builtins.getattr`` resolves only public methods of ``HistoryBuffer`` (that is how its
      pickled statistics methods refer to ``HistoryBuffer.min`` & co.).
    * the BUILD opcode (``__setstate__``/attribute update) is only run on instances of
      allowed classes, so a pickle cannot set attributes on classes or functions.

    The pure-Python unpickler is used because the BUILD opcode cannot be restricted in the C
    one; checkpoint pickles are small (tensor data lives outside the pickle), so it is fast
    enough.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        if self.proto < 3 and self.fix_imports:  # python 2 names, e.g. __builtin__.getattr
            import _compat_pickle
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        allowed = _allowed_globals()
        key = f'{module}.{name}'
        if key in allowed:
            return allowed[key]
        head, dot, rest = name.partition('.')
        if dot and f'{module}.{head}' in allowed:  # protocol 4 qualified name 'Class.method'
            obj = allowed[f'{module}.{head}']
            for attr in rest.split('.'):
                obj = _restricted_getattr(obj, attr)
            return obj
        raise pickle.UnpicklingError(
            f"refusing to load global '{key}': it is not in mmrepmlp's allow-list of "
            'checkpoint globals (mmrepmlp.compat.safe_torch_load), and unpickling it could '
            'run arbitrary code. If you trust this file, allow the object with '
            'torch.serialization.add_safe_globals([...]) or load it yourself with '
            'torch.load(..., weights_only=False).')

    def _load_build(self):
        inst = self.stack[-2]  # stack: ..., inst, state
        if type(inst) not in _allowed_build_types():
            raise pickle.UnpicklingError(
                f'refusing to set the state of an object of type {type(inst).__qualname__!r}: '
                "it is not in mmrepmlp's allow-list of checkpoint classes.")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _load_build

    def get_extension(self, code):
        # EXT1/2/4 opcodes: always through find_class, never copyreg's shared object cache
        import copyreg

        key = copyreg._inverted_registry.get(code)
        if not key:
            raise pickle.UnpicklingError(f'unregistered pickle extension code {code}')
        self.append(self.find_class(*key))


def _restricted_getattr(obj, name, *default):
    """``getattr`` for pickles: only public plain methods of ``HistoryBuffer``."""
    from mmengine.logging import HistoryBuffer

    if (obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_')
            and inspect.isfunction(vars(HistoryBuffer).get(name))):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({getattr(obj, "__qualname__", type(obj).__qualname__)}, {name!r}) '
        "while unpickling: mmrepmlp's allow-list only resolves public methods of "
        'mmengine.logging.HistoryBuffer.')


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


def _restricted_loads(data, **kwargs):
    return _restricted_load(io.BytesIO(data), **kwargs)


# What torch.load gets as ``pickle_module``: it uses ``Unpickler`` and ``load``.
_restricted_pickle = types.ModuleType('mmrepmlp_restricted_pickle')
_restricted_pickle.Unpickler = RestrictedUnpickler
_restricted_pickle.load = _restricted_load
_restricted_pickle.loads = _restricted_loads
_restricted_pickle.UnpicklingError = pickle.UnpicklingError


@functools.lru_cache(maxsize=1)
def _static_allowed_globals():
    import codecs
    import collections

    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer

    allowed = {}
    try:  # torch's own weights_only allow-list: tensors, storages, dtypes, rebuild functions
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed.update(_get_allowed_globals())
    except ImportError:  # pragma: no cover - older/newer torch without the private helper
        allowed.update({
            'torch._utils._rebuild_tensor_v2': torch._utils._rebuild_tensor_v2,
            'torch._utils._rebuild_parameter': torch._utils._rebuild_parameter,
            'torch.nn.parameter.Parameter': torch.nn.Parameter,
            'torch.Size': torch.Size,
            'torch.device': torch.device,
        })
        for dtype in torch.storage._dtype_to_storage_type_map():
            allowed[str(dtype)] = dtype
    for obj in (set, frozenset, slice, complex, bytearray, range):
        allowed[f'builtins.{obj.__name__}'] = obj
    allowed['builtins.getattr'] = _restricted_getattr
    allowed['_codecs.encode'] = codecs.encode
    allowed['collections.OrderedDict'] = collections.OrderedDict
    allowed['collections.Counter'] = collections.Counter
    allowed['mmengine.logging.history_buffer.HistoryBuffer'] = HistoryBuffer
    # numpy arrays, scalars and dtypes, under both numpy 1.x (numpy.core) and 2.x names
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    for prefix in ('numpy.core', 'numpy._core'):
        allowed[f'{prefix}.multiarray._reconstruct'] = multiarray._reconstruct
        allowed[f'{prefix}.multiarray.scalar'] = multiarray.scalar
        if hasattr(numeric, '_frombuffer'):
            allowed[f'{prefix}.numeric._frombuffer'] = numeric._frombuffer
    allowed['numpy.ndarray'] = np.ndarray
    allowed['numpy.dtype'] = np.dtype
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name, obj in vars(dtypes).items():
            if isinstance(obj, type) and issubclass(obj, np.dtype):
                allowed[f'numpy.dtypes.{name}'] = obj
    return allowed


def _user_safe_globals():
    """Globals the user allowed with ``torch.serialization.add_safe_globals``."""
    import torch

    allowed = {}
    for entry in getattr(torch.serialization, 'get_safe_globals', list)():
        if isinstance(entry, tuple):
            obj, name = entry
        else:
            obj, name = entry, f'{entry.__module__}.{entry.__qualname__}'
        allowed[name] = obj
    return allowed


def _allowed_globals():
    user = _user_safe_globals()
    if not user:
        return _static_allowed_globals()
    return {**_static_allowed_globals(), **user}


def _classes(objects):
    return frozenset(obj for obj in objects if isinstance(obj, type) and obj is not type)


@functools.lru_cache(maxsize=1)
def _static_build_types():
    return _classes(_static_allowed_globals().values())


def _allowed_build_types():
    user = _user_safe_globals()
    if not user:
        return _static_build_types()
    return _static_build_types() | _classes(user.values())


def _is_torchscript_archive(f):
    """True if ``f`` is a TorchScript zip, which torch.load would hand to torch.jit.load."""
    try:
        if isinstance(f, (str, os.PathLike)):
            with zipfile.ZipFile(f) as zf:
                names = zf.namelist()
        elif hasattr(f, 'seek') and hasattr(f, 'tell'):
            pos = f.tell()
            try:
                with zipfile.ZipFile(f) as zf:
                    names = zf.namelist()
            finally:
                f.seek(pos)
        else:
            return False
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any(name.partition('/')[2] == 'constants.pkl' for name in names)


def safe_torch_load(f, map_location=None, **kwargs):
    """``torch.load`` for checkpoints that may contain mmengine/numpy objects, without
    letting the file run code.

    Unlike ``torch.load(weights_only=True)`` it accepts what mmengine itself writes into a
    checkpoint (``HistoryBuffer`` message hub, numpy values in ``meta``); unlike
    ``weights_only=False`` it refuses any other global (e.g. ``os.system``) with a
    :class:`pickle.UnpicklingError`. TorchScript archives are refused too. See
    :class:`RestrictedUnpickler`.

    Args:
        f: path or file-like object, as for ``torch.load``.
        map_location: as for ``torch.load``.
        **kwargs: other ``torch.load`` keyword arguments (``mmap``, ``encoding``...), except
            ``pickle_module`` and ``weights_only``.
    """
    import torch

    for key in ('pickle_module', 'weights_only'):
        if key in kwargs:
            raise TypeError(f'safe_torch_load() does not take {key!r}')
    if os.getenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '0').lower() in ('1', 'y', 'yes', 'true'):
        # the user asked torch for its strictest mode: honour it
        return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
    if _is_torchscript_archive(f):
        raise pickle.UnpicklingError(
            'refusing to load a TorchScript archive as a checkpoint; use torch.jit.load() '
            'if you trust it.')
    return torch.load(f, map_location=map_location, pickle_module=_restricted_pickle,
                      weights_only=False, **kwargs)


def _safe_load_url(url, model_dir=None, map_location=None, progress=True, check_hash=False,
                   file_name=None):
    """Download ``url`` into the torch hub cache (as ``torch.hub.load_state_dict_from_url``
    does) and load it with :func:`safe_torch_load`."""
    import torch.hub

    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    filename = file_name or osp.basename(urlparse(url).path)
    cached_file = osp.join(model_dir, filename)
    if not osp.exists(cached_file):
        hash_prefix = None
        if check_hash:
            match = torch.hub.HASH_REGEX.search(filename)
            hash_prefix = match.group(1) if match else None
        torch.hub.download_url_to_file(url, cached_file, hash_prefix, progress=progress)
    return safe_torch_load(cached_file, map_location=map_location)


def _make_safe_scheme_loaders(ckpt):
    """Replacements for the CheckpointLoader schemes of ``mmengine.runner.checkpoint`` that
    call ``torch.load`` themselves (the http ones go through the patched ``load_url``)."""

    def load_from_local(filename, map_location):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return safe_torch_load(filename, map_location=map_location)

    def load_from_ceph(filename, map_location=None, backend='petrel'):
        file_backend = ckpt.get_file_backend(filename, backend_args={'backend': backend})
        with io.BytesIO(file_backend.get(filename)) as buffer:
            return safe_torch_load(buffer, map_location=map_location)

    def load_from_pavi(filename, map_location=None):
        import tempfile

        if not filename.startswith('pavi://'):
            raise ValueError(f'Expected filename startswith `pavi://`, but get {filename}')
        try:
            from pavi import modelcloud
        except ImportError as e:
            raise ImportError('Please install pavi to load checkpoint from modelcloud.') from e
        model = modelcloud.get(filename[len('pavi://'):])
        with tempfile.TemporaryDirectory() as tmp_dir:
            downloaded = osp.join(tmp_dir, model.name)
            model.download(downloaded)
            return safe_torch_load(downloaded, map_location=map_location)

    def load_from_openmmlab(filename, map_location=None):
        name = filename.split('://', 1)[1]
        renamed = ckpt.get_deprecated_model_names()
        if name in renamed:
            logger.warning('%s is deprecated in favor of %s', name, renamed[name])
            name = renamed[name]
        model_url = ckpt.get_external_models()[name]
        if model_url.startswith(('http://', 'https://')):
            return ckpt.load_from_http(model_url, map_location=map_location)
        path = osp.join(ckpt._get_mmengine_home(), model_url)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} can not be found.')
        return safe_torch_load(path, map_location=map_location)

    loaders = (load_from_local, load_from_ceph, load_from_pavi, load_from_openmmlab)
    for loader in loaders:
        loader.__module__ = __name__
        _mark(loader)
    return {loader.__name__: loader for loader in loaders}


def fix_checkpoint_loading():
    """Make mmengine load its own checkpoints on torch>=2.6 without disabling safety.

    Upstream problem: torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine
    0.10.7 calls ``torch.load`` without ``weights_only`` and its checkpoints hold a
    ``message_hub`` of ``HistoryBuffer`` objects (pickled with
    ``builtins.getattr(HistoryBuffer, 'min')``, which the weights-only unpickler never allows)
    and numpy values, so ``load_from``, ``resume``, ``load_checkpoint`` and
    ``mmpretrain.get_model(pretrained=...)`` all fail. This routes every mmengine checkpoint
    scheme through :func:`safe_torch_load` (an allow-list, not ``weights_only=False``):
    the local, s3/petrel, pavi and open-mmlab loaders of ``CheckpointLoader`` are replaced
    (only where they are still mmengine's own), and ``mmengine.runner.checkpoint.load_url``
    (http, torchvision, mmcls schemes) downloads then loads safely. ``map_location`` is kept.

    Remove when mmengine loads checkpoints with ``weights_only=True`` and registers its
    classes as safe globals (not the case up to mmengine 0.10.7).

    Returns:
        bool: True if anything was patched by this call.
    """
    from mmengine.runner import checkpoint as ckpt

    def is_upstream(loader):  # mmengine's own function, not ours nor a user's
        return getattr(loader, '__module__', None) == ckpt.__name__ and not _is_ours(loader)

    changed = False
    replacements = _make_safe_scheme_loaders(ckpt)
    for prefix, loader in list(ckpt.CheckpointLoader._schemes.items()):
        name = getattr(loader, '__name__', '')
        if name in replacements and is_upstream(loader):
            ckpt.CheckpointLoader.register_scheme(prefix, replacements[name], force=True)
            changed = True
    for name, new in replacements.items():  # direct calls, e.g. ckpt.load_from_local(...)
        if is_upstream(getattr(ckpt, name, None)):
            setattr(ckpt, name, new)
            changed = True
    if not _is_ours(ckpt.load_url):
        ckpt.load_url = _mark(_safe_load_url)
        changed = True
    return changed


# ---------------------------------------------------------------------------------------------
# 3. pkg_resources-free package lookup for mmengine configs
# ---------------------------------------------------------------------------------------------

def _top_level_module(dist, package):
    text = dist.read_text('top_level.txt')
    if text:
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if names:
            return names[0]
    for path in dist.files or ():
        parts = path.parts
        if len(parts) > 1 and parts[-1] == '__init__.py' and not parts[0].endswith(
                ('.dist-info', '.egg-info', '..')):
            return parts[0]
    raise ValueError(f'can not infer the module name of {package}')


def _spec_path(package, error):
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise error
    if spec.origin is None:
        raise RuntimeError(f'{package} is a namespace package, which is invalid for '
                           '`get_install_path`')
    return osp.dirname(spec.origin)


def _package2module(package):
    """``mmengine.utils.package2module`` via importlib.metadata."""
    return _top_level_module(importlib.metadata.distribution(package), package)


def _is_installed(package):
    """``mmengine.utils.is_installed`` via importlib.metadata."""
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return False
        return spec is not None and spec.origin is not None


def _get_installed_path(package):
    """``mmengine.utils.get_installed_path`` via importlib.metadata.

    Returns the directory of the package's top-level module, e.g. ``.../site-packages/mmseg``
    for ``mmsegmentation``.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as e:
        return _spec_path(package, e)
    location = str(dist.locate_file(''))
    candidate = osp.join(location, package)
    if osp.exists(candidate):
        return candidate
    module = _top_level_module(dist, package)
    candidate = osp.join(location, module)
    if osp.exists(candidate):
        return candidate
    # e.g. an editable install: the module is not next to the metadata
    return _spec_path(module, FileNotFoundError(f'can not find the files of {package}'))


def fix_pkg_resources():
    """Let mmengine find installed packages without ``pkg_resources``.

    Upstream problem: ``mmengine.utils.package_utils`` (``is_installed``,
    ``get_installed_path``, ``package2module``) imports ``pkg_resources``, which setuptools
    deprecated and removes in setuptools>=81, so ``_base_ = 'mmpretrain::...'`` or
    ``'mmseg::...'`` in a config (``Config._get_cfg_path``) and ``mmengine.hub`` fail. The
    functions are replaced, everywhere mmengine imported them by name, with
    ``importlib.metadata`` equivalents, whatever setuptools is installed.

    Remove when ``mmengine/utils/package_utils.py`` no longer imports pkg_resources (it
    still does in mmengine 0.10.7).

    Returns:
        bool: True if anything was patched by this call.
    """
    import mmengine.config.config as config_mod
    import mmengine.utils as utils_mod
    import mmengine.utils.package_utils as pkg_mod

    new = {
        'is_installed': _mark(_is_installed),
        'get_installed_path': _mark(_get_installed_path),
        'package2module': _mark(_package2module),
    }
    targets = [pkg_mod, utils_mod, config_mod]
    hub = sys.modules.get('mmengine.hub.hub')
    if hub is None:
        try:
            hub = importlib.import_module('mmengine.hub.hub')
        except ImportError:  # pragma: no cover - mmengine without hub
            hub = None
    if hub is not None:
        targets.append(hub)
    changed = False
    for module in targets:
        for name, func in new.items():
            if hasattr(module, name) and getattr(module, name) is not func:
                setattr(module, name, func)
                changed = True
    return changed


# ---------------------------------------------------------------------------------------------
# 4. numpy.in1d
# ---------------------------------------------------------------------------------------------

def _in1d(ar1, ar2, assume_unique=False, invert=False, *, kind=None):
    """``numpy.in1d`` (removed in numpy 2.4): ``np.isin`` on the flattened ``ar1``."""
    import numpy as np

    return np.isin(np.asarray(ar1).ravel(), ar2, assume_unique=assume_unique, invert=invert,
                   kind=kind)


def fix_numpy_in1d():
    """Restore ``numpy.in1d`` as an alias of ``np.isin`` on a flattened input.

    Upstream problem: numpy 2.4 removed ``np.in1d`` (deprecated since 2.0), which
    mmpretrain 1.2.0 uses in ``RetrievalRecall.calculate`` and ``RetrievalAveragePrecision``
    (``mmpretrain/evaluation/metrics/retrieval.py``). Only added when numpy lacks it.

    Remove when mmpretrain no longer calls ``np.in1d`` (it still does in 1.2.0) or numpy is
    pinned below 2.4.

    Returns:
        bool: True if ``np.in1d`` was added by this call.
    """
    import numpy as np

    if hasattr(np, 'in1d'):
        return False
    np.in1d = _mark(_in1d)
    return True


# ---------------------------------------------------------------------------------------------
# 5. CPU distributed training
# ---------------------------------------------------------------------------------------------

def _accelerator_available():
    import torch
    from mmengine import device

    return (torch.cuda.is_available() or device.is_mlu_available()
            or device.is_npu_available() or device.is_musa_available())


@contextlib.contextmanager
def _cuda_set_device_skipped():
    """``torch.cuda.set_device`` as a no-op: mmengine's launchers call it unconditionally."""
    import torch

    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def _wrap_init_dist_launcher(original):
    """``original`` (an ``_init_dist_*`` of mmengine) made to work without an accelerator."""

    @functools.wraps(original)
    def init(backend, *args, **kwargs):
        if _accelerator_available():
            return original(backend, *args, **kwargs)
        if backend == 'nccl':
            logger.info('No CUDA device: using the gloo backend instead of nccl.')
            backend = 'gloo'
        with _cuda_set_device_skipped():  # there is no device to pick
            return original(backend, *args, **kwargs)

    init.__wrapped_upstream__ = original
    return _mark(init)


def _on_cpu_only(module):
    tensors = list(module.parameters()) + list(module.buffers())
    return all(t.device.type == 'cpu' for t in tensors)


def _wrap_ddp_init(original):

    @functools.wraps(original)
    def __init__(self, module, *args, **kwargs):
        if (kwargs.get('device_ids') is not None and not _accelerator_available()
                and _on_cpu_only(module)):
            # DDP of a CPU module must not be given device_ids
            kwargs['device_ids'] = None
            kwargs.pop('output_device', None)
        original(self, module, *args, **kwargs)

    __init__.__wrapped_upstream__ = original
    return _mark(__init__)


def fix_cpu_distributed():
    """Make mmengine's ``pytorch``, ``slurm`` and ``mpi`` launchers work without CUDA.

    Upstream problem: ``mmengine.dist.utils._init_dist_{pytorch,slurm,mpi}`` always call
    ``torch.cuda.set_device`` and the Runner's default backend is nccl; ``Runner.wrap_model``
    (and ``DDPStrategy``) build ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``, which
    DDP rejects for a CPU module. With no CUDA/MLU/NPU/MUSA device this makes those
    launchers use gloo instead of nccl and skip ``set_device``, and
    ``MMDistributedDataParallel`` drop ``device_ids`` for a module that lives on the CPU.
    Nothing changes when an accelerator is available.

    Remove when mmengine supports CPU distributed training itself.

    Returns:
        bool: True if anything was patched by this call.
    """
    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel

    changed = False
    for name in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi'):
        launcher = getattr(dist_utils, name)
        if not _is_ours(launcher):
            setattr(dist_utils, name, _wrap_init_dist_launcher(launcher))
            changed = True
    init = MMDistributedDataParallel.__dict__['__init__']
    if not _is_ours(init):
        MMDistributedDataParallel.__init__ = _wrap_ddp_init(init)
        changed = True
    return changed


# ---------------------------------------------------------------------------------------------

FIXES = (fix_mmcv_ops, fix_pkg_resources, fix_numpy_in1d, fix_checkpoint_loading,
         fix_cpu_distributed)


def apply_all():
    """Apply every fix of this module (idempotent).

    Returns:
        dict: fix name -> whether this call changed anything.
    """
    return {fix.__name__: fix() for fix in FIXES}
