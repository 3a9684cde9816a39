"""Run at interpreter start-up by ``mmrepmlp-import-hook.pth`` in site-packages.

MMSegmentation imports ``mmcv.ops``, which mmcv-lite (no compiled ``mmcv._ext``) cannot
provide; ``import mmrepmlp`` provides the two ops mmseg needs. So that ``from mmseg.apis import
init_model`` works without importing mmrepmlp first, this puts one finder on ``sys.meta_path``
that, at the first import of ``mmseg`` in such an environment, imports mmrepmlp and then lets
the import go on. It is a separate top-level module so that start-up imports nothing heavy:
the finder only compares module names until mmseg is imported, and then removes itself.
"""
import importlib.util
import sys


def _has_compiled_mmcv():
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):  # no mmcv at all: mmseg will say so itself
        return True


class ImportMmrepmlpBeforeMmseg:
    """A meta-path finder that finds nothing: it imports mmrepmlp before mmseg, once."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'mmseg':
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if 'mmrepmlp' not in sys.modules and not _has_compiled_mmcv():
            import mmrepmlp  # noqa: F401  (its compat layer provides mmcv.ops)
        return None


def install():
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, ImportMmrepmlpBeforeMmseg) for finder in sys.meta_path):
        sys.meta_path.insert(0, ImportMmrepmlpBeforeMmseg())
