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
