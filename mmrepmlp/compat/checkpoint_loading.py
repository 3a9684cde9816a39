"""torch>=2.6 loads with ``weights_only=True``, which refuses mmengine's own checkpoints."""
import io
import logging
import os
import os.path as osp
from urllib.parse import urlparse

from ..utils.checkpoint import safe_load
from .marks import is_ours, mark

logger = logging.getLogger(__name__)


def _safe_load_url(url, model_dir=None, map_location=None, progress=True, check_hash=False,
                   file_name=None):
    """Download ``url`` into the torch hub cache (as ``torch.hub.load_state_dict_from_url``
    does) and load it with :func:`~mmrepmlp.utils.checkpoint.safe_load`."""
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
    return safe_load(cached_file, map_location=map_location)


def _make_safe_scheme_loaders(ckpt):
    """Replacements for the CheckpointLoader schemes of ``mmengine.runner.checkpoint`` that
    call ``torch.load`` themselves (the http ones go through the patched ``load_url``)."""

    def load_from_local(filename, map_location):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return safe_load(filename, map_location=map_location)

    def load_from_ceph(filename, map_location=None, backend='petrel'):
        file_backend = ckpt.get_file_backend(filename, backend_args={'backend': backend})
        with io.BytesIO(file_backend.get(filename)) as buffer:
            return safe_load(buffer, map_location=map_location)

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
            return safe_load(downloaded, map_location=map_location)

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
        return safe_load(path, map_location=map_location)

    loaders = (load_from_local, load_from_ceph, load_from_pavi, load_from_openmmlab)
    for loader in loaders:
        loader.__module__ = __name__
        mark(loader)
    return {loader.__name__: loader for loader in loaders}


def fix_checkpoint_loading():
    """Make mmengine load its own checkpoints on torch>=2.6 without disabling safety.

    Upstream problem: torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine
    0.10.7 calls ``torch.load`` without ``weights_only`` and its checkpoints hold a
    ``message_hub`` of ``HistoryBuffer`` objects (pickled with
    ``builtins.getattr(HistoryBuffer, 'min')``), numpy values and, in empty arrays, ``b''``
    (pickled as ``bytes()``), none of which PyTorch's default allow-list accepts, so
    ``load_from``, ``resume``, ``load_checkpoint`` and ``mmpretrain.get_model(pretrained=...)``
    all fail. This routes every mmengine checkpoint scheme through
    :func:`mmrepmlp.utils.checkpoint.safe_load` (PyTorch's weights-only unpickler with an
    allow-list of what mmengine writes, not ``weights_only=False``): the local, s3/petrel,
    pavi and open-mmlab loaders of ``CheckpointLoader`` are replaced (only where they are
    still mmengine's own), and ``mmengine.runner.checkpoint.load_url`` (http, torchvision,
    mmcls schemes) downloads then loads safely. ``map_location`` is kept.

    Remove when mmengine loads checkpoints with ``weights_only=True`` and registers its
    classes as safe globals (not the case up to mmengine 0.10.7).

    Returns:
        bool: True if anything was patched by this call.
    """
    from mmengine.runner import checkpoint as ckpt

    def is_upstream(loader):  # mmengine's own function, not ours nor a user's
        return getattr(loader, '__module__', None) == ckpt.__name__ and not is_ours(loader)

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
    if not is_ours(ckpt.load_url):
        ckpt.load_url = mark(_safe_load_url)
        changed = True
    return changed
