"""Interrupted training through tools/train.py: a run killed with SIGKILL in the middle of an
epoch, resumed with --resume, ends with exactly the weights, optimizer state and metrics of
an uninterrupted run with the same seed; a run killed while writing a checkpoint leaves the
previous one, which --resume continues from; runs killed at several points of a save, each
resumed, end with the uninterrupted run's weights."""
import signal

import pytest
import torch
from helpers_tools import (
    assert_resumed_from,
    assert_same_final_state,
    make_image_folders,
    run_tool,
    write_config,
)

from mmrepmlp.utils.checkpoint import safe_load

# Three epochs of three iterations, a checkpoint per epoch, no random augmentation (its
# numpy state is not part of a checkpoint), data order from the seeded sampler.
EPOCHS = """
train_dataloader['dataset']['pipeline'] = [dict(type='LoadImageFromFile'),
                                           dict(type='PackInputs')]
train_dataloader['sampler'] = dict(type='DefaultSampler', shuffle=True)
train_cfg = dict(_delete_=True, by_epoch=True, max_epochs=3, val_interval=3)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=True))
custom_imports = dict(imports=['mmrepmlp', 'probe_hooks'], allow_failed_imports=False)
"""


def epoch_config(path, data, dump, *hooks):
    hooks = [f'dict(type="DumpTrainStateHook", out_dir={str(dump)!r})', *hooks]
    return write_config(path, data, extra=EPOCHS + f'custom_hooks = [{", ".join(hooks)}]\n')


def accuracy(result):
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if 'accuracy/top1' in line]
    return lines[-1].split('accuracy/top1:')[1].split()[0]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """The data, and a run never killed: its output and the folder of its state dumps."""
    root = tmp_path_factory.mktemp('uninterrupted')
    data = make_image_folders(root / 'data')
    plain = run_tool(['train.py', epoch_config(root / 'plain.py', data, root / 'dump'),
                      '--work-dir', root / 'work'], root)
    assert plain.returncode == 0, plain.stderr[-3000:]
    return data, plain, root / 'dump'


def test_killed_mid_epoch_and_resumed_equals_an_uninterrupted_run(uninterrupted, tmp_path):
    data, plain, plain_dump = uninterrupted

    killing = epoch_config(tmp_path / 'kill.py', data, tmp_path / 'd1',
                           'dict(type="KillAfterIterHook", at_iter=5)')  # epoch 2 of 3
    killed = run_tool(['train.py', killing, '--work-dir', tmp_path / 'w1'], tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / 'w1' / 'epoch_1.pth').is_file()
    assert not (tmp_path / 'w1' / 'epoch_2.pth').exists()
    resumed = run_tool(['train.py', epoch_config(tmp_path / 'resume.py', data, tmp_path / 'd1'),
                        '--work-dir', tmp_path / 'w1', '--resume'], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert_resumed_from(tmp_path / 'd1', tmp_path / 'w1' / 'epoch_1.pth')  # not from scratch
    assert_same_final_state(tmp_path / 'd1', plain_dump, iters=9)
    assert accuracy(resumed) == accuracy(plain)


def test_killed_while_saving_leaves_the_previous_checkpoint_to_resume_from(tmp_path):
    data = make_image_folders(tmp_path / 'data')
    work = tmp_path / 'work'
    killing = epoch_config(tmp_path / 'kill.py', data, tmp_path / 'dump',
                           'dict(type="KillWhileSavingHook", at_epoch=2, '
                           'previous="epoch_1.pth")')

    killed = run_tool(['train.py', killing, '--work-dir', work], tmp_path)

    assert killed.returncode == -signal.SIGXFSZ, killed.stderr[-3000:]
    assert not (work / 'epoch_2.pth').exists()  # never a truncated checkpoint
    assert (work / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert safe_load(str(work / 'epoch_1.pth'))['meta']['epoch'] == 1
    resumed = run_tool(['train.py', epoch_config(tmp_path / 'resume.py', data,
                                                 tmp_path / 'dump'),
                        '--work-dir', work, '--resume'], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(tmp_path / 'dump' / 'before_train_rank0.pth')['iter'] == 3
    assert (work / 'epoch_3.pth').is_file()


def partial_saves(work):
    return sorted(path.name for path in work.iterdir() if '.tmp' in path.name)


def test_kills_during_saves_resume_to_the_weights_of_an_uninterrupted_run(uninterrupted,
                                                                          tmp_path):
    """Three runs killed at three points of a save (in the checkpoint, in last_checkpoint, at
    the rename of a complete checkpoint), each resumed with --resume, end with exactly the
    weights and optimizer state of a run never killed. Each start removes the partial files
    of the previous kill."""
    data, _, plain_dump = uninterrupted
    work, dump = tmp_path / 'work', tmp_path / 'dump'
    kills = [  # (the epoch whose save is killed, where, how the process ends)
        (2, 'point="checkpoint", previous="epoch_1.pth"', -signal.SIGXFSZ),
        (2, 'point="last_checkpoint"', -signal.SIGXFSZ),
        (3, 'point="commit"', -signal.SIGKILL),
    ]
    left_before = []
    for round_, (epoch, point, status) in enumerate(kills):
        killing = epoch_config(tmp_path / f'kill{round_}.py', data, dump,
                               f'dict(type="KillDuringSaveHook", at_epoch={epoch}, {point})')
        resume = ['--resume'] if round_ else []

        killed = run_tool(['train.py', killing, '--work-dir', work, *resume], tmp_path)

        assert killed.returncode == status, (round_, killed.stderr[-3000:])
        left = partial_saves(work)
        assert left and not set(left) & set(left_before), (round_, left, left_before)
        left_before = left
        last = (work / 'last_checkpoint').read_text()
        assert last == str(work / f'epoch_{epoch - 1}.pth'), (round_, last)
    assert (work / 'epoch_2.pth').is_file() and not (work / 'epoch_3.pth').exists()

    resumed = run_tool(['train.py', epoch_config(tmp_path / 'resume.py', data, dump),
                        '--work-dir', work, '--resume'], tmp_path)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert partial_saves(work) == [] and (work / 'epoch_3.pth').is_file()
    assert_same_final_state(dump, plain_dump, iters=9)
