"""The launchers: tools/dist_train.sh with two CPU processes (gloo) that stay in sync, and the
command lines that dist_test.sh and the Slurm scripts compose."""
import os.path as osp
import re

import torch
from helpers_tools import (
    REPO_ROOT,
    TINY_SEG_CONFIG,
    free_port,
    make_image_folders,
    make_segmentation_folders,
    probe_config,
    run_tool,
    tool_env,
)

# BN running statistics are per process (MMEngine's DDP does not broadcast buffers).
PER_RANK_BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


def dist_train(config, tmp_path, *args):
    """``tools/dist_train.sh CONFIG 2`` on the CPU; the CompletedProcess."""
    env = dict(tool_env(), PORT=str(free_port()), CUDA_VISIBLE_DEVICES='')
    result = run_tool(['dist_train.sh', config, 2, '--work-dir', tmp_path / 'work', *args],
                      cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert 'Distributed training: True' in result.stdout + result.stderr
    return result


def assert_ranks_end_with_same_trained_weights(dump, iters):
    before = torch.load(dump / 'before_train_rank0.pth')
    ranks = [torch.load(dump / f'after_train_rank{r}.pth') for r in (0, 1)]
    assert [r['iter'] for r in ranks] == [iters, iters]
    weights = [{k: v for k, v in r['state_dict'].items() if not k.endswith(PER_RANK_BUFFERS)}
               for r in ranks]
    assert weights[0].keys() == weights[1].keys()
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
    # and training did change them
    assert any(not torch.equal(value, before['state_dict'][key])
               for key, value in weights[0].items())


def test_dist_train_two_cpu_processes_end_with_same_weights(tmp_path):
    data = make_image_folders(tmp_path / 'data')
    config = probe_config(tmp_path / 'tiny.py', data, tmp_path / 'dump')

    dist_train(config, tmp_path, '--no-validate')

    assert_ranks_end_with_same_trained_weights(tmp_path / 'dump', iters=4)
    assert (tmp_path / 'work' / 'iter_4.pth').is_file()


def test_dist_train_two_cpu_processes_train_and_validate_a_segmentor(tmp_path):
    """The tiny PSPNet (default_scope 'mmseg', SyncBN in it) on two processes: trained in
    sync, then validated with the distributed mIoU."""
    data = make_segmentation_folders(tmp_path / 'data')
    config = probe_config(tmp_path / 'seg.py', data, tmp_path / 'dump', base=TINY_SEG_CONFIG)

    result = dist_train(config, tmp_path)

    assert_ranks_end_with_same_trained_weights(tmp_path / 'dump', iters=2)
    assert re.search(r'mIoU: [0-9.]+', result.stdout + result.stderr)
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()
    assert not (tmp_path / '.dist_test').exists()


CALL_MARK = '--- call ---'


def fake_command(folder, name):
    """An executable ``folder/name`` that prints a mark, then its arguments, one per line."""
    path = folder / name
    path.write_text(f'#!/usr/bin/env bash\necho "{CALL_MARK}"\nprintf "%s\\n" "$@"\n')
    path.chmod(0o755)
    return path


def calls(stdout):
    """The argument lists of each call of a fake command, in order."""
    return [call.splitlines() for call in stdout.split(CALL_MARK + '\n')[1:]]


def test_dist_test_passes_launcher_settings_to_torchrun(tmp_path):
    env = dict(tool_env(), PYTHON=str(fake_command(tmp_path, 'python')), NNODES='2',
               NODE_RANK='1', MASTER_ADDR='10.0.0.5', PORT='29600')

    result = run_tool(['dist_test.sh', 'cfg.py', 'ckpt.pth', 3, '--out', 'r.pkl'], tmp_path, env)

    assert result.returncode == 0, result.stderr
    # the interpreter is asked for torch first (the dry run's output is discarded)
    probe, *_, args = calls(result.stdout)
    assert probe[0] == '-c' and 'torch' in probe[1]
    assert args[:7] == ['-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
                        '--master_addr=10.0.0.5', '--master_port=29600', '--nproc_per_node=3']
    assert args[7].endswith('tools/test.py')
    assert args[8:] == ['cfg.py', 'ckpt.pth', '--out', 'r.pkl', '--launcher', 'pytorch']


def test_slurm_train_on_cpu_nodes_asks_for_no_gpus(tmp_path):
    env = dict(tool_env(), PATH=f'{tmp_path}:{tool_env()["PATH"]}', GPUS='4', GPUS_PER_NODE='0',
               CPUS_PER_TASK='2', SRUN_ARGS='--time=10 --mem=1G')
    fake_command(tmp_path, 'srun')

    result = run_tool(['slurm_train.sh', 'cpu', 'job', 'cfg.py', 'wd', '--amp'], tmp_path, env)

    assert result.returncode == 0, result.stderr
    [args] = calls(result.stdout)
    assert args[:8] == ['-p', 'cpu', '--job-name=job', '--ntasks=4', '--cpus-per-task=2',
                        '--kill-on-bad-exit=1', '--time=10', '--mem=1G']
    assert not any(a.startswith('--gres') for a in args)
    assert args[8:11] == [env['PYTHON'], '-u', osp.join(REPO_ROOT, 'tools', 'train.py')]
    assert args[11:] == ['cfg.py', '--work-dir=wd', '--amp', '--launcher', 'slurm']


def test_launchers_print_usage_without_arguments(tmp_path):
    result = run_tool(['dist_train.sh', 'cfg.py'], tmp_path)

    assert result.returncode == 2
    assert 'usage:' in result.stderr and 'NUM_PROCESSES' in result.stderr
