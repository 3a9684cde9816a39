"""mmengine writes checkpoints and ``last_checkpoint`` in place: a crash while saving leaves a
truncated file."""
import contextlib

from ..utils.files import atomic_write, staged_files
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


@contextlib.contextmanager
def _open_for_writing_atomically(file, mode, *args, **kwargs):
    with staged_files([str(file)]) as (tmp, ), open(tmp, mode, *args, **kwargs) as f:
        yield f


def _checkpoint_hook_open(file, mode='r', *args, **kwargs):
    """``open`` as the CheckpointHook's module sees it: writes go to a temporary file that
    replaces ``file`` when the ``with`` block ends (so use it in one); reads are plain."""
    if any(flag in mode for flag in 'wax+'):
        return _open_for_writing_atomically(file, mode, *args, **kwargs)
    return open(file, mode, *args, **kwargs)


def fix_checkpoint_saving():
    """Make mmengine's local file writes (checkpoints, ``last_checkpoint``,
    ``mmengine.dump``, copied logs) atomic.

    Upstream problem: ``mmengine.runner.save_checkpoint`` serializes the checkpoint and hands
    the bytes to ``LocalBackend.put``, which opens the destination and writes into it
    (``put_text``, behind ``mmengine.dump`` and the LoggerHook's copies, does the same), and
    the CheckpointHook then writes the path of the new checkpoint into
    ``work_dir/last_checkpoint`` with a plain ``open(..., 'w')``. A kill, a full disk or a
    file-size limit during a write leaves a truncated ``iter_N.pth`` or an empty
    ``last_checkpoint`` (which ``--resume`` follows). With this fix all of them write a
    temporary file and rename it (:mod:`mmrepmlp.utils.files`): the destination is either the
    complete new file or what it was. The temporary file of a killed process stays behind
    (nothing can remove it then); ``tools/train.py`` removes those of its work dir when it
    starts.

    Remove when mmengine writes local files atomically (it does not in 0.10.7).

    Returns:
        bool: True if anything was patched by this call.
    """
    from mmengine.fileio.backends.local_backend import LocalBackend
    from mmengine.hooks import checkpoint_hook

    if is_ours(LocalBackend.put):
        return False
    LocalBackend.put = mark(_atomic_put)
    LocalBackend.put_text = mark(_atomic_put_text)
    # the module's global `open` shadows the builtin for the hook's code only
    checkpoint_hook.open = mark(_checkpoint_hook_open)
    return True
