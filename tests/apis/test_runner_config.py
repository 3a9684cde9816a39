"""Config preparation of tools/train.py and tools/test.py (mmrepmlp.apis.config and .checks)."""
import os
import os.path as osp
from argparse import Namespace

import pytest
import torch
from mmengine.config import Config

from mmrepmlp.apis import ToolError, fit_config_to_device, prepare_test_config
from mmrepmlp.apis import prepare_train_config as prepare_train

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'configs')
CLS_CONFIG = osp.join(CONFIGS, 'tiny_repmlp_resnet.py')
SEG_CONFIG = osp.join(CONFIGS, 'tiny_repmlp_pspnet.py')


def train_args(config=CLS_CONFIG, **overrides):
    args = dict(config=config, work_dir=None, resume=None, amp=False, no_validate=False,
                auto_scale_lr=False, no_pin_memory=False, no_persistent_workers=False,
                cfg_options=None, launcher='none')
    return Namespace(**{**args, **overrides})


def eval_args(config=CLS_CONFIG, **overrides):
    args = dict(config=config, checkpoint=config, work_dir=None, out=None, out_item=None,
                cfg_options=None, amp=False, show_dir=None, show=False, interval=1,
                wait_time=2, no_pin_memory=False, tta=False, launcher='none')
    return Namespace(**{**args, **overrides})



@pytest.fixture(autouse=True)
def data_folders(tmp_path, monkeypatch):
    """The tiny configs' data folders (relative paths), so that the data check passes."""
    monkeypatch.chdir(tmp_path)
    for folder in ('data/tiny_imagenet', 'data/tiny_seg/img', 'data/tiny_seg/ann'):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


@pytest.fixture
def with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)


def norm_types(node):
    """The ``type`` of every ``norm_cfg`` in a nested config."""
    if isinstance(node, dict):
        own = [node['norm_cfg']['type']] if 'norm_cfg' in node else []
        return own + [t for value in node.values() for t in norm_types(value)]
    if isinstance(node, (list, tuple)):
        return [t for item in node for t in norm_types(item)]
    return []


def test_without_cuda_syncbn_becomes_bn_and_gloo_is_used(no_cuda):
    cfg = Config.fromfile(SEG_CONFIG)
    cfg.sync_bn = 'torch'

    fit_config_to_device(cfg)

    assert norm_types(cfg.model) == ['BN'] * 3  # backbone and two heads
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert 'sync_bn' not in cfg


def test_with_cuda_the_config_is_kept(with_cuda):
    cfg = Config.fromfile(SEG_CONFIG)

    fit_config_to_device(cfg, amp=True)

    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


def test_amp_without_cuda_is_an_error(no_cuda):
    with pytest.raises(ToolError, match='--amp needs a CUDA GPU'):
        prepare_train(Config.fromfile(CLS_CONFIG), train_args(amp=True))


def test_train_defaults_and_options(no_cuda):
    cfg = prepare_train(Config.fromfile(CLS_CONFIG), train_args(
        resume='auto', no_validate=True, cfg_options={'train_cfg.max_iters': 7}))

    assert cfg.work_dir == osp.join('./work_dirs', 'tiny_repmlp_resnet')
    assert cfg.resume is False and cfg.load_from is None  # no checkpoint to resume from
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert cfg.train_cfg.max_iters == 7
    loader = cfg.train_dataloader
    # no CUDA: nothing to pin; no workers: nothing to keep alive
    assert loader.pin_memory is False and loader.persistent_workers is False
    assert loader.collate_fn == dict(type='default_collate')
    assert cfg.model.backbone.norm_cfg.type == 'BN'


def test_resume_from_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(ToolError, match='the checkpoint does not exist'):
        prepare_train(Config.fromfile(CLS_CONFIG), train_args(resume=str(tmp_path / 'x.pth')))


def test_auto_scale_lr_needs_a_base_batch_size():
    cfg = Config.fromfile(CLS_CONFIG)
    assert prepare_train(cfg, train_args(auto_scale_lr=True)).auto_scale_lr.enable is True

    cfg = Config.fromfile(CLS_CONFIG)
    cfg.pop('auto_scale_lr')
    with pytest.raises(ToolError, match='base_batch_size'):
        prepare_train(cfg, train_args(auto_scale_lr=True))


def test_mmseg_configs_keep_their_collate_and_get_mmseg_out_and_show(tmp_path):
    cfg = Config.fromfile(SEG_CONFIG)
    test_output = prepare_test_config(cfg, eval_args(
        SEG_CONFIG, out=str(tmp_path / 'maps'), show_dir=str(tmp_path / 'shows')))

    assert 'collate_fn' not in cfg.test_dataloader
    # the maps go to a staging folder beside --out, moved there when the test succeeds
    staging = cfg.test_evaluator.output_dir
    assert os.path.dirname(staging) == str(tmp_path) and os.path.isdir(staging)
    (tmp_path / os.path.basename(staging) / '0.png').write_bytes(b'map')
    test_output.commit(True)
    assert (tmp_path / 'maps' / '0.png').read_bytes() == b'map'
    assert not os.path.exists(staging)
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == str(tmp_path / 'shows')
    assert cfg.load_from == SEG_CONFIG


def test_classifier_show_dir_and_flip_tta(tmp_path):
    cfg = Config.fromfile(CLS_CONFIG)
    prepare_test_config(cfg, eval_args(show_dir=str(tmp_path / 'shows'), tta=True))

    hook = cfg.default_hooks.visualization
    assert hook.enable is True and hook.out_dir == str(tmp_path / 'shows')
    assert cfg.model.type == 'mmpretrain.AverageClsScoreTTA'
    assert cfg.model.module.backbone.type == 'RepMLPResNet'
    assert cfg.test_dataloader.dataset.pipeline[-1].type == 'TestTimeAug'


def test_out_item_needs_out():
    with pytest.raises(ToolError, match='--out-item needs --out'):
        prepare_test_config(Config.fromfile(CLS_CONFIG), eval_args(out_item='metrics'))


def test_missing_data_is_one_error_naming_each_path_and_key(tmp_path):
    cfg = Config.fromfile(SEG_CONFIG)
    cfg.test_dataloader.dataset.data_root = str(tmp_path / 'nowhere')

    with pytest.raises(ToolError) as error:
        prepare_test_config(cfg, eval_args(SEG_CONFIG, checkpoint=SEG_CONFIG))

    message = str(error.value)
    assert message.startswith('missing data: ')
    for key, path in (('data_root', 'nowhere'), ('data_prefix.img_path', 'nowhere/img'),
                      ('data_prefix.seg_map_path', 'nowhere/ann')):
        assert f'{tmp_path / path} (from test_dataloader.dataset.{key})' in message
    assert '--cfg-options test_dataloader.dataset.data_root=' in message


def test_num_workers_zero_from_cfg_options_keeps_no_workers_alive(no_cuda):
    cfg = prepare_train(Config.fromfile(CLS_CONFIG), train_args(
        cfg_options={'train_dataloader.num_workers': 0, 'val_dataloader.num_workers': 2}))

    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True


def training_checkpoint(path, step):
    """What the Runner saves in training (the parts resuming needs), written by torch.save."""
    torch.save({'meta': {'iter': step, 'epoch': 0}, 'message_hub': {}, 'optimizer': {},
                'state_dict': {'weight': torch.full((2, ), float(step))}}, path)
    return str(path)


@pytest.mark.parametrize('pointer', ['', 'truncated', None], ids=['empty', 'names a truncated '
                                                                   'checkpoint', 'missing'])
def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, pointer):
    work = tmp_path / 'work'
    work.mkdir()
    for step in (2, 4, 10):
        training_checkpoint(work / f'iter_{step}.pth', step)
    (work / 'iter_6.pth').write_bytes((work / 'iter_4.pth').read_bytes()[:100])  # cut short
    (work / 'iter_10.pth').write_bytes(b'')  # killed before anything was written
    if pointer is not None:
        (work / 'last_checkpoint').write_text(str(work / 'iter_6.pth') if pointer else '')
    lines = []

    cfg = prepare_train(Config.fromfile(CLS_CONFIG), train_args(
        work_dir=str(work), resume='auto'), log=lines.append)

    assert cfg.resume is True and cfg.load_from == str(work / 'iter_4.pth')
    problem = {'': 'is empty', 'truncated': f'names {work / "iter_6.pth"}, which does not load',
               None: 'is missing'}[pointer]
    assert lines[0].startswith(f'--resume: {work / "last_checkpoint"} {problem}')
    assert f'resuming from {work / "iter_4.pth"}, the newest checkpoint of {work} that loads; ' \
        '2 newer do not load: iter_10.pth (cannot read checkpoint' in lines[0]


def test_resume_follows_last_checkpoint_when_it_loads(tmp_path):
    for step in (2, 4):
        training_checkpoint(tmp_path / f'iter_{step}.pth', step)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    lines = []

    cfg = prepare_train(Config.fromfile(CLS_CONFIG), train_args(
        work_dir=str(tmp_path), resume='auto'), log=lines.append)

    assert cfg.load_from == str(tmp_path / 'iter_2.pth') and lines == []


def test_resume_without_any_checkpoint_that_loads_is_an_error(tmp_path):
    (tmp_path / 'last_checkpoint').write_text('')
    (tmp_path / 'iter_3.pth').write_bytes(b'PK\x03\x04 cut')

    with pytest.raises(ToolError, match=r'last_checkpoint is empty, and no checkpoint of .* '
                       r'loads: iter_3\.pth \(cannot read checkpoint'):
        prepare_train(Config.fromfile(CLS_CONFIG), train_args(work_dir=str(tmp_path),
                                                              resume='auto'))


def test_partial_saves_of_a_killed_run_are_removed(tmp_path):
    from mmrepmlp.apis import remove_partial_saves

    partial = ['.iter_6.pth.k3j_9x2a.tmp.pth', '.last_checkpoint.abcdefgh.tmp',
               '.last_checkpoint.abcdefgh.tmp.bak', '.epoch_2.pth.0a1b2c3d.tmp.pth']
    kept = ['iter_4.pth', 'last_checkpoint', '.notes.abcdefgh.tmp.txt', 'scalars.json']
    work = tmp_path / 'work'
    work.mkdir()
    for name in partial + kept:
        (work / name).write_text('x')
    lines = []

    removed = remove_partial_saves(str(work), log=lines.append)

    assert sorted(os.listdir(work)) == sorted(kept)
    assert removed == sorted(str(work / name) for name in partial)
    assert lines[0].startswith('removed 4 partial files of an interrupted save: ')


def test_load_from_of_another_model_warns_with_non_strict(tmp_path):
    from types import SimpleNamespace

    from mmrepmlp.apis import check_load_from_fits

    model = torch.nn.Linear(2, 3)
    torch.save({'state_dict': torch.nn.Linear(2, 4).state_dict()}, tmp_path / 'other.pth')
    warnings = []
    runner = SimpleNamespace(model=model, logger=SimpleNamespace(warning=warnings.append))
    cfg = Config(dict(load_from=str(tmp_path / 'other.pth')))

    with pytest.raises(ToolError, match=r'does not fit the model of the config: 2 keys with '
                       r'another shape'):
        check_load_from_fits(runner, cfg)
    check_load_from_fits(runner, cfg, strict=False)
    assert warnings and warnings[0].startswith('--non-strict: loading what fits of')
    cfg.resume = True  # resuming is check_resume_fits' business
    check_load_from_fits(runner, cfg)
