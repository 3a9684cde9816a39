"""mmengine writes checkpoints in place: a crash while saving leaves a truncated file."""
from ..utils.files import atomic_write
from .marks import is_ours, mark


def _atomic_put(self, obj, filepath):
    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(obj)

    atomic_write(str(filepath), write)


def _atomic_put_text(self, obj, filepath, encoding='utf-8'):
    def write(tmp):
        with open(tmp, 'w', encoding=encoding) as f:
            f.write(obj)

    atomic_write(str(filepath), write)


def fix_checkpoint_saving():
    """Make mmengine's local file writes (checkpoints, ``mmengine.dump``, copied logs) atomic.

    Upstream problem: ``mmengine.runner.save_checkpoint`` serializes the checkpoint and hands
    the bytes to ``LocalBackend.put``, which opens the destination and writes into it
    (``put_text``, behind ``mmengine.dump`` and the LoggerHook's copies, does the same). A
    kill, a full disk or a file-size limit during the write leaves a truncated
    ``iter_N.pth``. With this fix both write a temporary file and rename it
    (:mod:`mmrepmlp.utils.files`): the destination is either the complete new file or what it
    was. (The CheckpointHook writes the one line of ``last_checkpoint`` with ``open``, which
    this does not change.)

    Remove when mmengine writes local files atomically (it does not in 0.10.7).

    Returns:
        bool: True if anything was patched by this call.
    """
    from mmengine.fileio.backends.local_backend import LocalBackend

    if is_ours(LocalBackend.put):
        return False
    LocalBackend.put = mark(_atomic_put)
    LocalBackend.put_text = mark(_atomic_put_text)
    return True
