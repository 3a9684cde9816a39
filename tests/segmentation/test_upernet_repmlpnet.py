"""UperNet on RepMLPNet end to end through the tools, on a generated Cityscapes-layout data
set: the real config (a tiny RepMLPNet and reduced crops) initializes its backbone from an
ImageNet classifier's checkpoint, trains 2 iterations (SyncBN becomes BN on the CPU),
validates on whole images (maps of several partitions), converts with the heads kept, and the
deploy model tests to the same mIoU."""
import re

import torch
from helpers_seg import make_cityscapes
from helpers_tools import REPO_ROOT, run_tool
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain.registry import MODELS

import mmrepmlp  # noqa: F401  (registers HierRepMLPNet)

CONFIG = (f'{REPO_ROOT}/configs/repmlpnet_upernet/'
          'upernet_repmlpnet-b-256px_8xb2-80k_cityscapes-512x1024.py')
TINY = dict(channels=(8, 16, 16, 32), num_blocks=(1, 1, 1, 1), num_sharesets=(1, 2, 4, 8))
IMG_SIZE, CROP = 32, (64, 128)  # the crops' maps are 2 x 4 partitions of the ImageNet model's


def imagenet_checkpoint(path):
    """An MMPretrain classifier checkpoint of the tiny RepMLPNet at ``IMG_SIZE``."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='HierRepMLPNet', arch=TINY, img_size=IMG_SIZE),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=TINY['channels'][-1])))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def seg_config(path, data_root, pretrained):
    """The real config at a CPU test's scale."""
    loader = (f'dict(num_workers=0, persistent_workers=False, '
              f'dataset=dict(data_root={str(data_root)!r}))')
    path.write_text(f"""_base_ = [{CONFIG!r}]
crop_size = {CROP}
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch=dict(_delete_=True, **{TINY!r}), img_size={IMG_SIZE},
                  init_cfg=dict(checkpoint={pretrained!r})),
    decode_head=dict(in_channels={list(TINY['channels'])}, channels=16),
    auxiliary_head=dict(in_channels={TINY['channels'][2]}, channels=8))
train_dataloader = {loader}
train_dataloader['dataset']['pipeline'] = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size), dict(type='PackSegInputs')]
val_dataloader = {loader}
# whole images of their own size (Cityscapes' 1024x2048 already are the config's test size)
val_dataloader['dataset']['pipeline'] = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
param_scheduler = [dict(type='PolyLR', power=1.0, begin=0, end=2, by_epoch=False)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
randomness = dict(seed=0)
""")
    return str(path)


def test_upernet_repmlpnet_trains_validates_and_converts_with_its_heads(tmp_path):
    data = make_cityscapes(tmp_path / 'cityscapes')
    pretrained = imagenet_checkpoint(tmp_path / 'imagenet.pth')
    config = seg_config(tmp_path / 'upernet.py', data, pretrained)

    trained = run_tool(['train.py', config, '--work-dir', tmp_path / 'work'], tmp_path)

    log = trained.stdout + trained.stderr
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    assert re.search(rf'HierRepMLPNet: loaded \d+ tensors from {re.escape(pretrained)}', log)
    validated = re.findall(r'mIoU: ([0-9.]+)', log)[-1]
    checkpoint = str(tmp_path / 'work' / 'iter_2.pth')

    deploy = tmp_path / 'deploy' / 'upernet_deploy.pth'
    converted = run_tool(['deploy_convert.py', config, checkpoint, '--out', deploy], tmp_path)

    assert converted.returncode == 0, converted.stdout[-2000:] + converted.stderr[-3000:]
    assert float(re.search(r'max relative difference ([0-9.e+-]+)', converted.stdout)[1]) <= 1e-5
    train_state = _load_checkpoint(checkpoint, map_location='cpu')['state_dict']
    deploy_state = _load_checkpoint(str(deploy), map_location='cpu')['state_dict']
    heads = [key for key in train_state if key.startswith(('decode_head.', 'auxiliary_head.'))]
    assert heads and all(torch.equal(deploy_state[key], train_state[key]) for key in heads)
    assert not any('local_perceptron' in key or 'fc3_bn' in key for key in deploy_state)
    assert 'backbone.stages.0.0.repmlp.fc3.bias' in deploy_state

    tested = run_tool(['test.py', tmp_path / 'deploy' / 'upernet_deploy.py', deploy,
                       '--work-dir', tmp_path / 'test'], tmp_path)

    assert tested.returncode == 0, tested.stderr[-3000:]
    assert re.findall(r'mIoU: ([0-9.]+)', tested.stdout + tested.stderr)[-1] == validated
