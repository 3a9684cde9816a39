"""The segmentation task end to end on a generated Cityscapes-layout data set, through the
tools: the real PSPNet-RepMLP-Res50-g4/8 config with a reduced crop trains a few iterations
(SyncBN becomes BN on the CPU), validates (mIoU), resumes, converts (exactly), and the deploy
model predicts the same maps and mIoU as the training-time one, in slide and whole modes."""
import re

import numpy as np
import pytest
from helpers_seg import IMAGE, make_cityscapes
from helpers_tools import (
    REPO_ROOT,
    assert_resumed_from,
    assert_same_final_state,
    probe_hooks,
    run_tool,
)
from PIL import Image

from mmrepmlp.apis import convert_checkpoint

SEG_CONFIGS = f'{REPO_ROOT}/configs/repmlp_pspnet'
REPMLP_CONFIG = f'{SEG_CONFIGS}/pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713.py'
CROP = 96
THREE_ITERS = ['--cfg-options', 'train_cfg.max_iters=3', 'train_cfg.val_interval=3']


def seg_config(path, data_root, mode, dump=None):
    """The real config at a CPU test's scale: 96 crops, 2 iterations, no pretrained weights
    (their loading has its own test), and no dropout: its masks come from torch's generator,
    whose state a checkpoint does not hold, so a resumed run could not end as an
    uninterrupted one. With ``dump``, training runs dump their state there (probe_hooks)."""
    test_cfg = (f'dict(mode="slide", crop_size={(CROP, CROP)}, stride=(64, 64))'
                if mode == 'slide' else 'dict(_delete_=True, mode="whole")')
    windows = "repmlp_cfg=dict(larger_input='windows')," if mode == 'whole' else ''
    loader = (f'dict(num_workers=0, persistent_workers=False, '
              f'dataset=dict(data_root={str(data_root)!r}))')
    path.write_text(f"""_base_ = [{REPMLP_CONFIG!r}]
crop_size = {(CROP, CROP)}
model = dict(data_preprocessor=dict(size=crop_size),
             backbone=dict(img_size=crop_size, init_cfg=None, {windows}),
             decode_head=dict(dropout_ratio=0), auxiliary_head=dict(dropout_ratio=0),
             test_cfg={test_cfg})
train_dataloader = {loader}
train_dataloader['dataset']['pipeline'] = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size), dict(type='PackSegInputs')]
val_dataloader = {loader}
# the images keep their size (Cityscapes' are 1024x2048 already, which the real config keeps)
val_dataloader['dataset']['pipeline'] = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2, by_epoch=False)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
randomness = dict(seed=0)
""" + ('' if dump is None else probe_hooks(dump)))
    return str(path)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A checkpoint after 2 iterations and a resume to 3, and its deploy conversion."""
    root = tmp_path_factory.mktemp('seg')
    data = make_cityscapes(root / 'cityscapes')
    training = seg_config(root / 'train.py', data, 'slide', root / 'dump')
    work = root / 'work'
    trained = run_tool(['train.py', training, '--work-dir', work], root)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    assert re.search(r'mIoU: [0-9.]+', trained.stdout + trained.stderr)  # validated
    resumed = run_tool(['train.py', training, '--work-dir', work, '--resume', *THREE_ITERS],
                       root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r'Iter\(train\) \[3/3\]', resumed.stdout + resumed.stderr)
    checkpoint = str(work / 'iter_3.pth')
    config = seg_config(root / 'slide.py', data, 'slide')
    result = convert_checkpoint(config, checkpoint, log=lambda line: None)
    assert result.max_rel_diff <= 1e-5
    return root, data, checkpoint, result


def test_resumed_run_ends_as_an_uninterrupted_run(trained):
    """Trained 2 iterations, resumed to 3 from the checkpoint of 2: the weights and optimizer
    state of 3 iterations in one run (validating changes neither)."""
    root, data, _, _ = trained
    assert_resumed_from(root / 'dump', root / 'work' / 'iter_2.pth')
    config = seg_config(root / 'plain.py', data, 'slide', root / 'dump_plain')

    plain = run_tool(['train.py', config, '--work-dir', root / 'plain', '--no-validate',
                      *THREE_ITERS], root)

    assert plain.returncode == 0, plain.stderr[-3000:]
    assert_same_final_state(root / 'dump', root / 'dump_plain', iters=3)


@pytest.mark.parametrize('mode', ['slide', 'whole'])
def test_deploy_model_predicts_the_same_maps_and_miou(trained, mode):
    root, data, checkpoint, result = trained
    config = seg_config(root / f'{mode}.py', data, mode)
    deploy_config = root / f'{mode}_deploy.py'
    deploy_config.write_text(f"_base_ = [{config!r}]\nmodel = dict(backbone=dict(deploy=True))\n")

    maps, miou = {}, {}
    for form, (cfg, ckpt) in {'train': (config, checkpoint),
                              'deploy': (str(deploy_config), result.checkpoint)}.items():
        out = root / f'maps_{mode}_{form}'
        tested = run_tool(['test.py', cfg, ckpt, '--work-dir', root / f'test_{mode}_{form}',
                           '--out', out], root)
        assert tested.returncode == 0, tested.stderr[-3000:]
        miou[form] = re.findall(r'mIoU: ([0-9.]+)', tested.stdout + tested.stderr)[-1]
        maps[form] = {p.name: np.array(Image.open(p)) for p in sorted(out.iterdir())}
    assert len(maps['train']) == 2
    for name, prediction in maps['train'].items():
        assert prediction.shape == IMAGE
        assert np.array_equal(maps['deploy'][name], prediction), name
    assert miou['deploy'] == miou['train']
