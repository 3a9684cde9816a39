"""Loading checkpoints without letting them run code.

:func:`safe_load` is ``torch.load(weights_only=True)``, PyTorch's own restricted unpickler,
with an allow-list of the objects that MMEngine itself writes into a checkpoint and nothing
else: numpy arrays, scalars and dtypes (``meta``, the message hub), MMEngine's
``HistoryBuffer`` (logged scalars), ``collections.Counter`` (the milestones of MultiStepLR),
``frozenset``, ``slice`` and ``range``, and empty ``bytes`` (``torch.save`` pickles ``b''``
as a call of ``bytes()``, which empty numpy arrays and empty history buffers contain). A
pickle that names any other global, e.g. ``os.system``, is refused before anything runs. The
allow-list is given to PyTorch per call (``torch.serialization.safe_globals``); what the user
allowed with ``torch.serialization.add_safe_globals`` stays allowed.
"""
import collections
import functools
import pickle
import re

from .errors import InputError, describe_exception

__all__ = [
    'safe_load', 'checkpoint_safe_globals', 'read_checkpoint', 'state_dict_differences',
    'describe_differences', 'shapes'
]


def _history_buffer_method(obj, name):
    """``builtins.getattr`` for checkpoints: only public methods of ``HistoryBuffer``.

    A pickled ``HistoryBuffer`` refers to its statistics methods as
    ``getattr(HistoryBuffer, 'min')``; nothing else may be looked up.
    """
    import inspect

    from mmengine.logging import HistoryBuffer

    if (obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_')
            and inspect.isfunction(vars(HistoryBuffer).get(name))):
        return getattr(obj, name)
    owner = getattr(obj, '__qualname__', type(obj).__qualname__)
    raise pickle.UnpicklingError(f'refusing getattr({owner}, {name!r}) while loading a '
                                 'checkpoint: only methods of HistoryBuffer may be looked up')


def _empty_bytes(*args):
    """``builtins.bytes`` for checkpoints: pickle protocol 2 stores ``b''`` as ``bytes()``.

    Non-empty bytes are stored as ``_codecs.encode(...)``, which PyTorch allows itself; any
    argument here would be a way to allocate memory, so none is accepted.
    """
    if args:
        raise pickle.UnpicklingError('refusing bytes(...) with arguments while loading a '
                                     'checkpoint')
    return b''


@functools.lru_cache(maxsize=1)
def checkpoint_safe_globals():
    """The allow-list: ``torch.serialization.safe_globals`` entries (objects or
    ``(object, name)`` pairs) for what MMEngine checkpoints contain besides tensors."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    allowed = [
        HistoryBuffer,
        collections.Counter,
        # Inert builtins that PyTorch's list lacks; configs in ``meta`` may hold them.
        frozenset, slice, range,
        (_history_buffer_method, 'builtins.getattr'),
        (_empty_bytes, 'builtins.bytes'),
        np.ndarray,
        np.dtype,
    ]
    # Files written under numpy 1.x name numpy.core, under numpy 2.x numpy._core.
    for prefix in ('numpy.core', 'numpy._core'):
        allowed += [(multiarray._reconstruct, f'{prefix}.multiarray._reconstruct'),
                    (multiarray.scalar, f'{prefix}.multiarray.scalar')]
    # The dtype classes (numpy >= 1.25): a pickled dtype is an instance of one of them.
    allowed += [obj for obj in vars(getattr(np, 'dtypes', object)).values()
                if isinstance(obj, type) and issubclass(obj, np.dtype)]
    return tuple(allowed)


# How PyTorch's refusals name what they refused.
_REFUSED_GLOBAL = re.compile(r'(?:GLOBAL|global) ([\w.]+)')
_UNPICKLER_DETAIL = re.compile(r'WeightsUnpickler error:\s*([^\n]+)')


def _python3_name(qualified):
    """The Python 3 name of a global as protocol-2 pickles spell it (``commands.call`` is
    ``subprocess.call``, ``__builtin__.eval`` is ``builtins.eval``)."""
    import _compat_pickle

    module, _, name = qualified.rpartition('.')
    module = module or 'builtins'  # PyTorch names builtins without their module
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f'{module}.{name}'


def safe_load(f, map_location=None, **kwargs):
    """``torch.load`` of a checkpoint that may hold MMEngine and numpy objects, refusing
    anything that could run code (see the module docstring).

    Args:
        f: a path or a file-like object, as for ``torch.load``.
        map_location: as for ``torch.load``.
        **kwargs: other ``torch.load`` arguments (``mmap``...), except ``weights_only`` and
            ``pickle_module``.

    Raises:
        pickle.UnpicklingError: the file holds an object outside the allow-list; the message
            names it.
    """
    import torch

    for key in ('pickle_module', 'weights_only'):
        if key in kwargs:
            raise TypeError(f'safe_load() does not take {key!r}')
    try:
        with torch.serialization.safe_globals(list(checkpoint_safe_globals())):
            return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        refused = _REFUSED_GLOBAL.search(str(exc))
        detail = _UNPICKLER_DETAIL.search(str(exc))
        detail = detail[1].strip() if detail else describe_exception(exc)
        if refused:
            detail = (f'refusing to load the global {_python3_name(refused[1])}: it is not a '
                      'tensor, a numpy value or an MMEngine object that checkpoints hold')
        elif not detail.startswith('refusing'):  # not a pickle we understand: damaged
            raise pickle.UnpicklingError(f'not a readable checkpoint ({detail})') from exc
        raise pickle.UnpicklingError(
            f'{detail}, and unpickling it could run code; if you trust the file, allow it '
            'with torch.serialization.add_safe_globals([...]) or load it with '
            'torch.load(..., weights_only=False)') from exc
    except RuntimeError as exc:
        if 'TorchScript' in str(exc):
            raise pickle.UnpicklingError('refusing to load a TorchScript archive as a '
                                         'checkpoint; use torch.jit.load() if you trust it'
                                         ) from exc
        raise


def read_checkpoint(path):
    """Read a checkpoint with MMEngine's loader (local files, URLs and the other schemes,
    all through :func:`safe_load`).

    Returns:
        tuple[dict, dict]: the whole checkpoint (``{'state_dict': ...}`` when the file held a
        bare state dict) and its state dict, with any DataParallel ``module.`` prefix removed.

    Raises:
        InputError: the file is missing, refused, damaged, or holds no state dict of tensors.
    """
    import os.path as osp

    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    if '://' not in str(path) and not osp.isfile(path):
        raise InputError(f'checkpoint {path} does not exist; pass the path of a .pth file')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu', logger=None)
    except pickle.UnpicklingError as exc:
        if str(exc).startswith('refusing'):
            raise InputError(f'checkpoint {path} is refused: {exc}') from exc
        raise InputError(f'cannot read checkpoint {path} ({describe_exception(exc)}): it is '
                         'damaged or not a PyTorch checkpoint; pass a file written by '
                         'torch.save or an MMEngine Runner') from exc
    except Exception as exc:  # torch raises many types for a damaged or truncated file
        raise InputError(f'cannot read checkpoint {path} ({describe_exception(exc)}); is it a '
                         'complete checkpoint file written by torch.save?') from exc
    if not isinstance(checkpoint, dict):
        raise InputError(f'checkpoint {path} holds a {type(checkpoint).__name__}, not a dict of '
                         'weights; save model.state_dict() or an MMEngine checkpoint')
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint.get(wrapper), dict):
            state_dict = checkpoint[wrapper]
            break
    else:
        state_dict, checkpoint = checkpoint, {'state_dict': checkpoint}
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise InputError(f'checkpoint {path} has no state dict of tensors (bare, or under '
                         '`state_dict` or `model`)')
    return checkpoint, _without_module_prefix(state_dict)


def _without_module_prefix(state_dict):
    """``state_dict`` with any DataParallel ``module.`` prefix removed from its keys, and from
    those of its ``_metadata`` (the modules' versions, which ``load_state_dict`` reads: a
    module whose layout changed converts older state dicts by them)."""
    stripped = collections.OrderedDict(
        (k.removeprefix('module.'), v) for k, v in state_dict.items())
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        stripped._metadata = collections.OrderedDict(
            ('' if k == 'module' else k.removeprefix('module.'), v)
            for k, v in metadata.items())
    return stripped


def state_dict_differences(expected, actual, optional_suffixes=('num_batches_tracked', )):
    """How the ``{key: shape}`` of ``actual`` differs from ``expected``.

    Keys ending in ``optional_suffixes`` may be missing (PyTorch fills in BN's
    ``num_batches_tracked``, which many released checkpoints lack).

    Returns:
        tuple[list, list, list]: missing keys, unexpected keys, and
        ``'key: actual shape vs expected shape'`` for keys whose shapes differ, each sorted.
    """
    missing = sorted(k for k in expected if k not in actual and not k.endswith(
        tuple(optional_suffixes)))
    unexpected = sorted(k for k in actual if k not in expected)
    reshaped = sorted(f'{k}: {tuple(actual[k])} vs {tuple(expected[k])}' for k in expected
                      if k in actual and tuple(actual[k]) != tuple(expected[k]))
    return missing, unexpected, reshaped


def describe_differences(differences, listed=2):
    """One line naming the first ``listed`` keys of each kind of difference, or None."""
    titles = ('missing keys', 'unexpected keys', 'keys with another shape (checkpoint vs model)')
    parts = []
    for items, title in zip(differences, titles):
        if items:
            more = f' and {len(items) - listed} more' if len(items) > listed else ''
            parts.append(f'{len(items)} {title} ({", ".join(items[:listed])}{more})')
    return '; '.join(parts) or None


def shapes(state_dict):
    """``{key: shape}`` of a state dict."""
    return {key: tuple(value.shape) for key, value in state_dict.items()}
