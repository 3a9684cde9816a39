"""mmrepmlp.compat.checkpoint_saving: a process that fails or is killed while MMEngine writes
a checkpoint leaves the previous file, not a truncated one.

Both are real: the writing process runs under a file-size limit (RLIMIT_FSIZE) smaller than
the checkpoint, so the write fails half-way with EFBIG (as on a full disk), or, with
SIGXFSZ's default action restored (Python ignores it), the kernel kills the process there."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

SAVE_UNDER_LIMIT = textwrap.dedent("""\
    import resource
    import signal
    import sys

    if sys.argv[2] == 'fixed':
        import mmrepmlp  # noqa: F401  (applies the fixes)
    if sys.argv[3] == 'kill':
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    import torch
    from mmengine.runner import save_checkpoint

    checkpoint = {'state_dict': {'weight': torch.ones(1 << 20)}}  # 4 MiB
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
    save_checkpoint(checkpoint, sys.argv[1])
    """)


def _save_under_limit(folder, mode, failure):
    folder.mkdir()
    path = folder / 'iter_2.pth'
    torch.save({'state_dict': {'weight': torch.zeros(3)}}, path)  # the previous checkpoint
    script = folder / 'save.py'
    script.write_text(SAVE_UNDER_LIMIT)
    result = subprocess.run([sys.executable, str(script), str(path), mode, failure],
                            cwd=folder, capture_output=True, text=True, timeout=120)
    return result, path


@pytest.mark.parametrize('failure', ['error', 'kill'])
def test_failed_save_truncates_upstream_and_keeps_the_old_file_with_fix(tmp_path, failure):
    upstream, upstream_path = _save_under_limit(tmp_path / 'upstream', 'upstream', failure)
    fixed, fixed_path = _save_under_limit(tmp_path / 'fixed', 'fixed', failure)

    for result in (upstream, fixed):
        if failure == 'kill':
            assert result.returncode == -signal.SIGXFSZ, result.stderr[-2000:]
        else:
            assert result.returncode == 1 and 'File too large' in result.stderr
    assert os.path.getsize(upstream_path) == 1 << 20  # cut at the limit: unreadable
    with pytest.raises(RuntimeError):
        torch.load(upstream_path)
    assert torch.equal(torch.load(fixed_path)['state_dict']['weight'], torch.zeros(3))
    leftovers = sorted(p.name for p in fixed_path.parent.iterdir())
    # a killed process cannot remove its partial temporary file; a failed one does
    assert len(leftovers) == (3 if failure == 'kill' else 2), leftovers


def test_saved_files_are_complete_and_keep_the_umask_mode(tmp_path):
    from mmengine.runner import save_checkpoint

    import mmrepmlp  # noqa: F401  (applies the fixes)

    save_checkpoint({'state_dict': {'weight': torch.ones(4)}}, str(tmp_path / 'c.pth'))

    assert torch.equal(torch.load(tmp_path / 'c.pth')['state_dict']['weight'], torch.ones(4))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / 'c.pth').st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ['c.pth']


HOOK_WRITES_LAST_CHECKPOINT = textwrap.dedent("""\
    import resource
    import signal
    import sys
    from types import SimpleNamespace

    if sys.argv[2] == 'fixed':
        import mmrepmlp  # noqa: F401  (applies the fixes)
    from mmengine.fileio import get_file_backend
    from mmengine.hooks import CheckpointHook
    from mmengine.logging import MessageHub

    work_dir = sys.argv[1]
    hook = CheckpointHook(interval=1, by_epoch=False)
    hook.out_dir, hook.file_backend = work_dir, get_file_backend(work_dir)
    hook.filename_tmpl = 'iter_{}.pth'
    # the checkpoint itself is saved; the kernel kills the process while it writes the path of
    # the checkpoint into last_checkpoint, after the first 10 bytes
    runner = SimpleNamespace(work_dir=work_dir, message_hub=MessageHub.get_current_instance(),
                             save_checkpoint=lambda *args, **kwargs: None)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (10, resource.RLIM_INFINITY))
    hook._save_checkpoint_with_step(runner, 7, meta={})
    """)


def _kill_while_writing_last_checkpoint(folder, mode):
    folder.mkdir()
    previous = str(folder / 'iter_6.pth')
    (folder / 'last_checkpoint').write_text(previous)
    script = folder / 'hook.py'
    script.write_text(HOOK_WRITES_LAST_CHECKPOINT)
    result = subprocess.run([sys.executable, str(script), str(folder), mode], cwd=folder,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGXFSZ, result.stderr[-2000:]
    return previous, (folder / 'last_checkpoint').read_text()


def test_killed_while_writing_last_checkpoint_upstream_truncates_it_fixed_keeps_it(tmp_path):
    previous, upstream = _kill_while_writing_last_checkpoint(tmp_path / 'upstream', 'upstream')
    previous_fixed, fixed = _kill_while_writing_last_checkpoint(tmp_path / 'fixed', 'fixed')

    assert upstream == str(tmp_path / 'upstream' / 'iter_7.pth')[:10]  # a path cut short
    assert fixed == previous_fixed  # the previous checkpoint, which --resume then continues
    leftovers = sorted(p.name for p in (tmp_path / 'fixed').iterdir())
    assert leftovers[0].startswith('.last_checkpoint.') and leftovers[1:] == [
        'hook.py', 'last_checkpoint']  # the killed writer's partial temporary file


def test_the_checkpoint_hook_writes_last_checkpoint_completely(tmp_path):
    from types import SimpleNamespace

    from mmengine.fileio import get_file_backend
    from mmengine.hooks import CheckpointHook
    from mmengine.logging import MessageHub

    import mmrepmlp  # noqa: F401  (applies the fixes)

    hook = CheckpointHook(interval=1, by_epoch=False)
    hook.out_dir, hook.file_backend = str(tmp_path), get_file_backend(str(tmp_path))
    hook.filename_tmpl = 'iter_{}.pth'
    runner = SimpleNamespace(work_dir=str(tmp_path), message_hub=MessageHub.get_current_instance(),
                             save_checkpoint=lambda *args, **kwargs: None)

    hook._save_checkpoint_with_step(runner, 3, meta={})

    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_3.pth')
    assert os.listdir(tmp_path) == ['last_checkpoint']
