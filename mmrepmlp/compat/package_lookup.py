"""mmengine finds installed packages with ``pkg_resources``, which new setuptools lacks."""
import importlib
import importlib.metadata
import importlib.util
import os.path as osp
import sys

from .marks import mark


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
        'is_installed': mark(_is_installed),
        'get_installed_path': mark(_get_installed_path),
        'package2module': mark(_package2module),
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
