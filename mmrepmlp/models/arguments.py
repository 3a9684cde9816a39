"""Checks of the models' constructor arguments.

Every model of the package checks its arguments when it is built, so that a bad config fails
at construction with one ``ValueError`` or ``TypeError`` naming the argument, the value and
what is allowed, instead of building something else (``deploy='no'`` is truthy) or failing
later in ``forward``. Integral numpy values (``np.int64(14)``, common when sizes are computed)
are accepted as ints; floats, strings and booleans are not.
"""
import numbers

import numpy as np


def _fail(owner, name, value, expected, error=ValueError):
    raise error(f'{owner}: {name} must be {expected}, got {value!r}')


def check_int(value, name, owner, minimum=1, maximum=None):
    """``value`` as an ``int`` of at least ``minimum`` (and at most ``maximum`` if given)."""
    expected = f'an int >= {minimum}' if maximum is None else f'an int in [{minimum}, {maximum}]'
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        _fail(owner, name, value, expected, TypeError)
    if value < minimum or (maximum is not None and value > maximum):
        _fail(owner, name, value, expected)
    return int(value)


def check_pair(value, name, owner, minimum=1):
    """An int or a pair of ints (each at least ``minimum``) as a ``(h, w)`` tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        _fail(owner, name, value, f'an int >= {minimum} or a pair of them', TypeError)
    return tuple(check_int(v, name, owner, minimum) for v in value)


def check_bool(value, name, owner):
    """``value`` as a ``bool``; only ``True``/``False`` (and numpy booleans) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(owner, name, value, 'True or False', TypeError)
    return bool(value)


def check_int_sequence(value, name, owner, length=None, minimum=1):
    """A list or tuple of ints (each at least ``minimum``), of ``length`` entries if given."""
    what = f'a list of {length} ints >= {minimum}' if length else f'a list of ints >= {minimum}'
    if not isinstance(value, (tuple, list)):
        _fail(owner, name, value, what, TypeError)
    if length is not None and len(value) != length:
        _fail(owner, name, value, what)
    return tuple(check_int(v, name, owner, minimum) for v in value)


def check_choice(value, name, owner, choices):
    """``value``, one of ``choices``."""
    if value not in choices:
        _fail(owner, name, value, f'one of {tuple(choices)}')
    return value


def check_out_indices(out_indices, num_stages, owner):
    """Stage indices (negative ones count from the end) as non-negative ints, in order."""
    if isinstance(out_indices, numbers.Integral) and not isinstance(out_indices, bool):
        out_indices = (out_indices, )
    if not isinstance(out_indices, (tuple, list)):
        _fail(owner, 'out_indices', out_indices, 'a non-empty list of stage indices', TypeError)
    if not out_indices:
        _fail(owner, 'out_indices', out_indices, 'a non-empty list of stage indices')
    normalized = []
    for index in out_indices:
        index = check_int(index, 'out_indices', owner, minimum=-num_stages)
        if index >= num_stages:
            _fail(owner, 'out_indices', out_indices,
                  f'stage indices in [-{num_stages}, {num_stages - 1}]')
        normalized.append(index % num_stages)
    return tuple(normalized)


def check_norm_cfg(norm_cfg, owner, name='norm_cfg'):
    """A norm config that builds a batch norm with running statistics: the only norm whose
    inference form is an affine map, which re-parameterization folds into convs and FCs."""
    from mmcv.cnn import build_norm_layer
    from torch.nn.modules.batchnorm import _BatchNorm

    if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
        _fail(owner, name, norm_cfg, "a dict with a 'type', e.g. dict(type='BN')", TypeError)
    try:
        layer = build_norm_layer(dict(norm_cfg), 2)[1]
    except KeyError as exc:  # the registry's answer to an unknown type
        raise ValueError(f'{owner}: {name} type {norm_cfg["type"]!r} is not a registered norm '
                         'layer; use BN or SyncBN') from exc
    except Exception as exc:
        raise ValueError(f'{owner}: {name} {dict(norm_cfg)!r} does not build a norm layer '
                         f'({type(exc).__name__}: {exc}); use BN or SyncBN') from exc
    if not isinstance(layer, _BatchNorm) or not layer.track_running_stats:
        _fail(owner, name, dict(norm_cfg), 'a batch norm with running statistics (BN, SyncBN): '
              'only those fold into the deploy form')
    return dict(norm_cfg)


def resolve_arch(arch, presets, owner, required, optional=()):
    """A backbone's ``arch``: a copy of the preset it names, or of the custom dict it is, which
    must have every key of ``required`` and may have those of ``optional``.

    Raises:
        ValueError: an unknown preset name, or a dict with unknown or missing keys.
        TypeError: ``arch`` is neither a name nor a dict.
    """
    if isinstance(arch, str):
        if arch not in presets:
            raise ValueError(f'{owner}: unknown arch {arch!r}; use one of {sorted(presets)} or '
                             'a custom dict')
        return dict(presets[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'{owner}: arch must be a preset name or a dict, got {arch!r}')
    unknown, missing = sorted(set(arch) - {*required, *optional}), sorted(set(required) - set(arch))
    if unknown or missing:
        allowed = f' and may set {", ".join(optional)}' if optional else ''
        raise ValueError(f'{owner}: the custom arch has unknown keys {unknown} and lacks '
                         f'{missing}; it needs the keys {", ".join(required)}{allowed}')
    return dict(arch)
