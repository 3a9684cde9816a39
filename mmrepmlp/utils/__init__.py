"""Helpers shared by the package and the tools: repository files, the model index, atomic
file writes (:mod:`.files`), safe checkpoint loading (:mod:`.checkpoint`), walking nested
configs (:mod:`.configs`) and the one-line error of bad input (:class:`.errors.InputError`)."""
import os.path as osp

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO_ROOT = osp.dirname(PACKAGE_DIR)


def find_repo_file(name):
    """Return the path of ``configs``/``tools``/``model-index.yml`` for this install.

    A wheel (or regular install) carries them under ``mmrepmlp/.mim``; an editable install
    or a source checkout finds them next to the package.
    """
    for root in (osp.join(PACKAGE_DIR, '.mim'), REPO_ROOT):
        path = osp.join(root, name)
        if osp.exists(path):
            return path
    raise FileNotFoundError(
        f'{name!r} is neither in {osp.join(PACKAGE_DIR, ".mim")} nor in {REPO_ROOT}: '
        'reinstall mmrepmlp (pip install .) so that its configs and model index are packed.')


def register_model_index():
    """Register ``model-index.yml`` with ``mmpretrain.apis.ModelHub``, once per process.

    ``ModelHub.register_model_index`` raises on a name registered twice, so a flag on the
    ModelHub class remembers that this package's index is in.
    """
    from mmpretrain.apis import ModelHub

    if getattr(ModelHub, '_mmrepmlp_registered', False):
        return
    path = find_repo_file('model-index.yml')
    ModelHub.register_model_index(path, config_prefix=osp.dirname(path))
    ModelHub._mmrepmlp_registered = True
