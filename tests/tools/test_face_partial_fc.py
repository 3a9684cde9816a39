"""A model with a PartialFCHead trained by tools/dist_train.sh on two CPU processes (gloo) from the
synthetic-faces config, then resumed by tools/train.py on one (in this process): the checkpoint
holds the whole centre matrix and momentum, and the single process resumes at the same
iteration, learning rate, centres and momentum."""
import torch
from helpers_tools import REPO_ROOT, free_port, load_tool, run_tool, tool_env

from mmrepmlp.utils.checkpoint import safe_load

SYNTHETIC_CONFIG = (f'{REPO_ROOT}/configs/repmlp_face/'
                    'repmlp-faceres50-pfc_8xb128_synthetic2m-112px.py')
NUM_CLASSES = 7  # slices of 4 and 3 classes on two processes


def tiny_config(path, dump_dir):
    """The synthetic-faces Partial FC config with a tiny RepMLP-FaceRes (64x64, 16-d), 8 images
    of 7 identities, 2 per process and iteration: one epoch is 2 iterations on 2 processes."""
    path.write_text(f"""_base_ = [{SYNTHETIC_CONFIG!r}]
custom_imports = dict(imports=['mmrepmlp', 'probe_hooks'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='RepMLPResNet', img_size=64, out_indices=(3, ),
                  arch=dict(num_blocks=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                            block_type=('base', 'bottleneck', 'bottleneck', 'base'), r=2,
                            groups=2, partition=4, local_kernels=(1, 3))),
    neck=dict(in_channels=128, in_size=2, embedding_dim=16),
    head=dict(num_classes={NUM_CLASSES}, in_channels=16, sample_ratio=1.0))
data_preprocessor = dict(num_classes={NUM_CLASSES})
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(num_identities={NUM_CLASSES}, num_images=8, img_size=64))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                        end=10)]
default_hooks = dict(logger=dict(interval=1))
custom_hooks = [dict(type='PartialFCCheckpointHook'),
                dict(type='DumpTrainStateHook', out_dir={str(dump_dir)!r}),
                dict(type='DumpHeadShardHook', out_dir={str(dump_dir)!r})]
randomness = dict(seed=0)
""")
    return str(path)


def test_train_on_two_processes_resume_on_one(tmp_path):
    config = tiny_config(tmp_path / 'pfc.py', tmp_path / 'dump2')
    work = tmp_path / 'work'
    env = dict(tool_env(), PORT=str(free_port()), CUDA_VISIBLE_DEVICES='')

    trained = run_tool(['dist_train.sh', config, 2, '--work-dir', work], tmp_path, env)

    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    assert 'Distributed training: True' in trained.stdout + trained.stderr
    shards = [torch.load(tmp_path / 'dump2' / f'head_shard_rank{r}.pth') for r in (0, 1)]
    assert [s['classes'] for s in shards] == [(0, 4), (4, 7)]
    ends = [torch.load(tmp_path / 'dump2' / f'after_train_rank{r}.pth') for r in (0, 1)]
    start = torch.load(tmp_path / 'dump2' / 'before_train_rank0.pth')
    centres = torch.cat([s['weight'] for s in shards])
    momentum = torch.cat([s['momentum'] for s in shards])
    assert not torch.equal(centres, start['state_dict']['head.weight'])  # it trained
    checkpoint = safe_load(work / 'epoch_1.pth')
    assert checkpoint['meta']['iter'] == 2
    index = _centres_index(checkpoint['optimizer'])
    for state in (ends[0], ends[1], checkpoint):
        assert torch.equal(state['state_dict']['head.weight'], centres)
        assert torch.equal(state['optimizer']['state'][index]['momentum_buffer'], momentum)

    config = tiny_config(tmp_path / 'pfc1.py', tmp_path / 'dump1')
    load_tool('train.py').main([config, '--work-dir', str(work), '--resume'])

    restart = torch.load(tmp_path / 'dump1' / 'before_train_rank0.pth')
    assert restart['iter'] == 2
    assert torch.equal(restart['state_dict']['head.weight'], centres)
    assert torch.equal(restart['optimizer']['state'][index]['momentum_buffer'], momentum)
    lrs = [[group['lr'] for group in state['optimizer']['param_groups']]
           for state in (ends[0], restart)]
    assert lrs[1] == lrs[0] and lrs[0][0] != 0.2 * 0.1  # the schedule moved it
    for key, value in ends[0]['state_dict'].items():
        assert torch.equal(restart['state_dict'][key], value), key


def _centres_index(optimizer_state):
    """The optimizer state's key of the centres: the last parameter (the head's)."""
    return [i for group in optimizer_state['param_groups'] for i in group['params']][-1]
