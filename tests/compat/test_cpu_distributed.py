"""mmrepmlp.compat.cpu_distributed: MMEngine's launchers and DDP on CPUs (gloo)."""
import os
import textwrap

import pytest
import torch
from helpers_compat import (
    ATTEMPT,
    TINY_SOURCE,
    TinyModel,
    ToyDataset,
    free_port,
    run_pythons,
    state_equal,
)

DDP_WORKER = TINY_SOURCE + textwrap.dedent("""\
    import json
    import os

    import mmrepmlp  # noqa: F401  (applies the fixes)
    import torch.distributed as dist
    from mmengine.dist import init_dist
    from mmengine.model.wrappers import MMDistributedDataParallel
    from mmengine.runner import Runner

    rank = int(os.environ['RANK'])
    out_dir = os.environ['OUT_DIR']
    init_dist('pytorch')
    torch.manual_seed(rank)  # different init per rank: DDP must broadcast rank 0's
    model = TinyModel()
    runner = Runner(
        model=model, work_dir=os.path.join(out_dir, 'work'), launcher='pytorch',
        experiment_name='ddp',
        train_dataloader=dict(dataset=ToyDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=3),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)))
    runner.train()
    torch.save(runner.model.module.state_dict(), os.path.join(out_dir, f'rank{rank}.pth'))
    print(json.dumps(dict(backend=dist.get_backend(),
                          wrapped=isinstance(runner.model, MMDistributedDataParallel),
                          device_ids=runner.model.device_ids, world=dist.get_world_size())))
    dist.destroy_process_group()
    """)


def test_cpu_ddp_fails_upstream(upstream):
    kind, message = upstream['init_dist_cpu']
    # torch.cuda.set_device: 'Found no NVIDIA driver', 'No CUDA GPUs are available', or
    # 'Torch not compiled with CUDA enabled', depending on the machine and build
    assert kind in ('RuntimeError', 'AssertionError'), message
    assert 'cuda' in message.lower() or 'nvidia' in message.lower(), message
    kind, message = upstream['ddp_wrap_cpu']
    assert kind == 'ValueError' and 'device_ids' in message, message


def test_cpu_ddp_two_ranks(tmp_path):
    port = str(free_port())
    jobs = [(DDP_WORKER, dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=port,
                              RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                              CUDA_VISIBLE_DEVICES='', OUT_DIR=str(tmp_path),
                              OMP_NUM_THREADS='1'))
            for rank in range(2)]
    for info in run_pythons(jobs, tmp_path, timeout=120):
        assert info == dict(backend='gloo', wrapped=True, device_ids=None, world=2)
    w0 = torch.load(str(tmp_path / 'rank0.pth'))
    w1 = torch.load(str(tmp_path / 'rank1.pth'))
    assert state_equal(w0, w1)

    # the ranks did data parallel SGD: same as one process on the union of both batches
    torch.manual_seed(0)
    ref = TinyModel()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    data = ToyDataset()
    for it in range(3):
        batch = [data[i] for i in range(4 * it, 4 * it + 4)]
        inputs = torch.stack([b['inputs'] for b in batch])
        labels = torch.stack([b['labels'] for b in batch])
        opt.zero_grad()
        ref(inputs, labels, mode='loss')['loss'].backward()
        opt.step()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(w0[k], v)


# The env each launcher reads for a 1-process job (slurm's MASTER_ADDR is given, so its
# `scontrol` lookup is not needed).
LAUNCHER_ENVS = {
    'mpi': dict(OMPI_COMM_WORLD_LOCAL_RANK='0', OMPI_COMM_WORLD_RANK='0',
                OMPI_COMM_WORLD_SIZE='1'),
    'slurm': dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_NODELIST='localhost',
                  SLURM_LOCALID='0'),
}


def launcher_job(launcher, apply_fix):
    code = ATTEMPT + textwrap.dedent(f"""\
        if {apply_fix}:
            import mmrepmlp  # noqa: F401  (applies the fixes)
        import torch.distributed as dist
        from mmengine.dist import init_dist

        # the Runner's default backend is nccl
        attempt('init', lambda: init_dist({launcher!r}, backend='nccl'))
        if dist.is_initialized():
            results['backend'] = dist.get_backend()
            results['world'] = dist.get_world_size()
            dist.destroy_process_group()
        print(json.dumps(results))
        """)
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
               CUDA_VISIBLE_DEVICES='', **LAUNCHER_ENVS[launcher])
    return code, env


@pytest.mark.parametrize('launcher', sorted(LAUNCHER_ENVS))
def test_slurm_and_mpi_launchers_on_cpu(launcher, tmp_path):
    upstream, fixed = run_pythons(
        [launcher_job(launcher, apply_fix=False), launcher_job(launcher, apply_fix=True)],
        tmp_path, timeout=120)
    kind, message = upstream['init']
    assert kind in ('RuntimeError', 'AssertionError'), message  # torch.cuda.set_device
    assert 'cuda' in message.lower() or 'nvidia' in message.lower(), message
    assert 'backend' not in upstream
    assert fixed['init'][0] == 'ok', fixed['init']
    assert fixed['backend'] == 'gloo' and fixed['world'] == 1
