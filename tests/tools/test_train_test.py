"""tools/train.py and tools/test.py on CPU: resume after a crash, and refusing --amp."""
import signal

import pytest
import torch
from helpers_tools import (
    TINY_SEG_CONFIG,
    assert_resumed_from,
    load_tool,
    make_image_folders,
    make_segmentation_folders,
    probe_config,
    run_tool,
    tool_env,
    write_config,
)

import mmrepmlp  # noqa: F401  (safe checkpoint loading)


def test_resume_after_crash_continues_from_the_checkpoint(tmp_path):
    data = make_image_folders(tmp_path / 'data')
    dump, work = tmp_path / 'dump', tmp_path / 'work'
    crashing = probe_config(tmp_path / 'crash.py', data, dump, kill_at_iter=2)
    plain = probe_config(tmp_path / 'tiny.py', data, dump)

    crashed = run_tool(['train.py', crashing, '--work-dir', work, '--no-validate'], tmp_path)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    assert (work / 'iter_2.pth').is_file() and not (work / 'iter_4.pth').exists()

    resumed = run_tool(['train.py', plain, '--work-dir', work, '--resume'], tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert_resumed_from(dump, work / 'iter_2.pth')
    assert torch.load(dump / 'after_train_rank0.pth')['iter'] == 4
    assert (work / 'iter_4.pth').is_file()
    assert 'accuracy/top1' in resumed.stdout + resumed.stderr  # validated at the end


def test_amp_without_cuda_is_refused_with_one_line(tmp_path, monkeypatch):
    config = probe_config(tmp_path / 'tiny.py', tmp_path, tmp_path / 'dump')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)

    with pytest.raises(SystemExit) as exit_info:
        load_tool('train.py').main([config, '--work-dir', str(tmp_path / 'work'), '--amp'])

    message = str(exit_info.value.code)  # sys.exit(message): printed to stderr, status 1
    assert message.startswith('error: --amp needs a CUDA GPU') and '\n' not in message
    assert not (tmp_path / 'work').exists() and not (tmp_path / 'dump').exists()


def test_mmseg_config_trains_and_tests(tmp_path):
    """A config with default_scope 'mmseg' (SyncBN, nccl in it) runs through both tools."""
    data = make_segmentation_folders(tmp_path / 'data')
    config = write_config(tmp_path / 'seg.py', data, base=TINY_SEG_CONFIG)
    env = dict(tool_env(), CUDA_VISIBLE_DEVICES='')

    trained = run_tool(['train.py', config, '--work-dir', tmp_path / 'work'], tmp_path, env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert 'mIoU' in trained.stdout + trained.stderr

    tested = run_tool(['test.py', config, tmp_path / 'work' / 'iter_2.pth', '--work-dir',
                       tmp_path / 'work', '--out', tmp_path / 'maps'], tmp_path, env)
    assert tested.returncode == 0, tested.stderr[-3000:]
    # MMSeg's meaning of --out: one predicted map per image
    assert sorted(p.name for p in (tmp_path / 'maps').iterdir()) == [f'{i}.png' for i in range(4)]
