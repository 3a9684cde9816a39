"""Tests of :mod:`mmrepmlp.compat`.

Each fix is shown to be needed (the upstream failure is reproduced in a fresh interpreter
that does not apply it) and to work (in a fresh interpreter that applies it, and in this
process, where ``import mmrepmlp.compat`` has applied all fixes).

The fresh interpreters load ``compat.py`` by file path instead of ``import mmrepmlp.compat``:
the package ``__init__`` applies the fixes itself (which the "without" runs must avoid) and
imports all models (which the "with" runs do not need).
"""
import io
import json
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys
import textwrap
import uuid
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmrepmlp import compat

COMPAT_PATH = osp.abspath(compat.__file__)

# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

# setuptools>=81 has no pkg_resources; None in sys.modules makes any import of it fail.
BLOCK_PKG_RESOURCES = "import sys\nsys.modules['pkg_resources'] = None\n"

LOAD_COMPAT = textwrap.dedent(f"""\
    import importlib.util, sys
    _spec = importlib.util.spec_from_file_location('compat_under_test', {COMPAT_PATH!r})
    compat = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = compat
    _spec.loader.exec_module(compat)
    """)

# runs ``fn`` and records 'ok' or the exception, so one interpreter can try several things
ATTEMPT = textwrap.dedent("""\
    import json
    results = {}

    def attempt(name, fn):
        try:
            value = fn()
            results[name] = ['ok', value]
        except BaseException as e:
            results[name] = [type(e).__name__, str(e)]
    """)


def run_pythons(jobs, tmp_path, timeout=180):
    """Run each ``(code, env)`` of ``jobs`` in a fresh interpreter, all at once; return the
    JSON each printed on its last line."""
    procs = []
    try:
        for code, env in jobs:
            script = tmp_path / f'script_{uuid.uuid4().hex[:8]}.py'
            script.write_text(code)
            procs.append(subprocess.Popen(
                [sys.executable, '-W', 'ignore', str(script)], env=env, cwd=str(tmp_path),
                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        outs = [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    results = []
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, out[-3000:] + err[-5000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# the tiny mmengine model/dataset of the Runner tests, as text: the DDP workers run it too
TINY_SOURCE = textwrap.dedent("""\
    import torch
    import torch.nn as nn
    from mmengine.model import BaseModel
    from torch.utils.data import Dataset


    class TinyModel(BaseModel):

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.fc(inputs)
            if mode == 'loss':
                return dict(loss=((out - labels) ** 2).mean())
            return out


    class ToyDataset(Dataset):

        def __len__(self):
            return 16

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return dict(inputs=torch.randn(4, generator=g),
                        labels=torch.randn(2, generator=g))
    """)


_tiny = {}
exec(compile(TINY_SOURCE, '<tiny>', 'exec'), _tiny)
TinyModel, ToyDataset = _tiny['TinyModel'], _tiny['ToyDataset']


def runner_kwargs(work_dir, max_iters, **kwargs):
    cfg = dict(
        model=TinyModel(),
        work_dir=str(work_dir),
        experiment_name=f'compat_{uuid.uuid4().hex}',
        train_dataloader=dict(dataset=ToyDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3,
                                           by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        default_scope=None,  # do not make 'mmengine' the current scope for later tests
    )
    cfg.update(kwargs)
    return cfg


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def state_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


class Payload:
    """Pickles as ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny model trained 3 iterations by an mmengine Runner, checkpoint at iter 3."""
    from mmengine.runner import Runner

    work_dir = tmp_path_factory.mktemp('train')
    runner = Runner(**runner_kwargs(work_dir, max_iters=3))
    runner.train()
    ckpt = work_dir / 'iter_3.pth'
    assert ckpt.is_file()
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}
    return dict(ckpt=str(ckpt), work_dir=work_dir, weights=weights)


@pytest.fixture(scope='module')
def config_files(tmp_path_factory):
    root = tmp_path_factory.mktemp('configs')
    pre = root / 'cls.py'
    pre.write_text("_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'\n"
                   'model = dict(head=dict(num_classes=7))\n')
    seg = root / 'seg.py'
    seg.write_text("_base_ = 'mmseg::_base_/models/pspnet_r50-d8.py'\n"
                   'model = dict(decode_head=dict(num_classes=5))\n')
    return dict(mmpretrain=str(pre), mmseg=str(seg))


def upstream_job(trained, config_files):
    """What the pinned stack does WITHOUT mmrepmlp.compat (fresh interpreter, no
    pkg_resources as with setuptools>=81)."""
    code = BLOCK_PKG_RESOURCES + ATTEMPT + textwrap.dedent(f"""\
        import importlib
        from mmengine import Config

        attempt('config_mmpretrain',
                lambda: Config.fromfile({config_files['mmpretrain']!r}).model.type)
        attempt('config_mmseg', lambda: Config.fromfile({config_files['mmseg']!r}).model.type)

        import numpy as np
        attempt('np_in1d', lambda: np.in1d([1, 2], [2]).tolist())

        import torch
        from mmengine.runner import load_checkpoint
        model = torch.nn.Module()
        model.fc = torch.nn.Linear(4, 2)
        attempt('load_checkpoint',
                lambda: sorted(load_checkpoint(model, {trained['ckpt']!r}).keys()))

        # CPU-only distributed set-up (env of a 1-process torchrun, CUDA hidden)
        import torch.distributed as dist
        from mmengine.dist import init_dist
        from mmengine.model.wrappers import MMDistributedDataParallel

        attempt('init_dist_cpu', lambda: init_dist('pytorch'))
        if not dist.is_initialized():
            dist.init_process_group('gloo')
        attempt('ddp_wrap_cpu', lambda: type(MMDistributedDataParallel(
            module=torch.nn.Linear(2, 2), device_ids=[0])).__name__)
        dist.destroy_process_group()

        attempt('import_mmseg_models', lambda: bool(importlib.import_module('mmseg.models')))
        print(json.dumps(results))
        """)
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()), RANK='0',
               LOCAL_RANK='0', WORLD_SIZE='1', CUDA_VISIBLE_DEVICES='')
    return code, env


def fixed_job(config_files):
    """The same scenarios in a fresh interpreter after ``compat.apply_all()``, plus a PSPNet
    built from mmseg's registry and run forward (needs mmcv.ops)."""
    code = BLOCK_PKG_RESOURCES + LOAD_COMPAT + ATTEMPT + textwrap.dedent(f"""\
        results['applied'] = compat.apply_all()
        from mmengine import Config

        def load_cfg(path):
            cfg = Config.fromfile(path)
            return [cfg.model.type, cfg.model.backbone.type,
                    cfg.model.get('head', cfg.model.get('decode_head'))['num_classes']]

        attempt('config_mmpretrain', lambda: load_cfg({config_files['mmpretrain']!r}))
        attempt('config_mmseg', lambda: load_cfg({config_files['mmseg']!r}))

        def pspnet():
            import torch
            import mmseg.models  # noqa: F401
            from mmseg.registry import MODELS
            from mmseg.utils import register_all_modules

            from mmengine.config import ConfigDict

            register_all_modules()
            norm_cfg = dict(type='BN', requires_grad=True)
            model = MODELS.build(ConfigDict(
                type='EncoderDecoder',
                data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.0] * 3,
                                       std=[1.0] * 3, size=(32, 32)),
                backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                              out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                              strides=(1, 2, 1, 1), norm_cfg=norm_cfg),
                decode_head=dict(type='PSPHead', in_channels=64, in_index=3, channels=16,
                                 pool_scales=(1, 2, 3, 6), dropout_ratio=0.1, num_classes=3,
                                 norm_cfg=norm_cfg, align_corners=False,
                                 loss_decode=dict(type='CrossEntropyLoss',
                                                  use_sigmoid=False, loss_weight=1.0)),
                train_cfg=dict(), test_cfg=dict(mode='whole')))
            model.eval()
            with torch.no_grad():
                logits = model(torch.rand(2, 3, 32, 32), mode='tensor')
                pred = model(torch.rand(1, 3, 32, 32), mode='predict')
            return [type(model).__name__, type(model.decode_head).__name__,
                    list(logits.shape), bool(torch.isfinite(logits).all()),
                    list(pred[0].pred_sem_seg.data.shape)]

        attempt('pspnet', pspnet)
        print(json.dumps(results))
        """)
    return code, None


@pytest.fixture(scope='module')
def fresh_interpreters(trained, config_files, tmp_path_factory):
    upstream, fixed = run_pythons([upstream_job(trained, config_files), fixed_job(config_files)],
                                  tmp_path_factory.mktemp('fresh'))
    return dict(upstream=upstream, fixed=fixed)


@pytest.fixture(scope='module')
def upstream(fresh_interpreters):
    return fresh_interpreters['upstream']


@pytest.fixture(scope='module')
def fixed(fresh_interpreters):
    return fresh_interpreters['fixed']


# ------------------------------------------------------------------------------------------
# apply_all
# ------------------------------------------------------------------------------------------

def test_apply_all_is_idempotent():
    compat.apply_all()
    assert compat.apply_all() == {fix.__name__: False for fix in compat.FIXES}


def test_apply_all_changes_things_in_a_fresh_interpreter(fixed):
    assert fixed['applied'] == {fix.__name__: True for fix in compat.FIXES}


# ------------------------------------------------------------------------------------------
# 1. mmcv.ops on mmcv-lite
# ------------------------------------------------------------------------------------------

def test_mmseg_models_needs_mmcv_ops_upstream(upstream):
    kind, message = upstream['import_mmseg_models']
    assert kind == 'ModuleNotFoundError' and 'mmcv._ext' in message


def test_pspnet_builds_and_runs_with_fix(fixed):
    kind, value = fixed['pspnet']
    assert kind == 'ok', value
    # output stride 8 of a 32x32 input; predict resizes to the input size
    assert value == ['EncoderDecoder', 'PSPHead', [2, 3, 4, 4], True, [1, 32, 32]]


def test_mmcv_ops_stub_contents():
    import mmcv
    import mmcv.ops
    from mmcv.ops import point_sample, sigmoid_focal_loss

    assert mmcv.ops is sys.modules['mmcv.ops']
    assert point_sample is compat.point_sample
    assert sigmoid_focal_loss is compat.sigmoid_focal_loss
    # mmseg's optional imports catch ModuleNotFoundError: any other op must raise exactly that
    with pytest.raises(ModuleNotFoundError, match='full mmcv'):
        from mmcv.ops import CrissCrossAttention  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match='full mmcv'):
        mmcv.ops.SyncBatchNorm  # noqa: B018
    with pytest.raises(ModuleNotFoundError, match='full mmcv'):
        import mmcv.ops.nms  # noqa: F401
    with pytest.raises(ModuleNotFoundError):
        from mmcv.ops.point_sample import bilinear_grid_sample  # noqa: F401
    # dunder lookups keep the normal protocol (no crash in hasattr/inspect)
    assert not hasattr(mmcv.ops, '__file__')
    # the guarded imports of mmseg now resolve to "not available"
    from mmseg.models.decode_heads import cc_head, psa_head

    assert cc_head.CrissCrossAttention is None and psa_head.PSAMask is None


def test_mmcv_ops_untouched_when_full_mmcv_is_installed(monkeypatch):
    monkeypatch.setattr(compat, '_mmcv_ext_available', lambda: True)
    monkeypatch.delitem(sys.modules, 'mmcv.ops')
    assert compat.fix_mmcv_ops() is False
    assert 'mmcv.ops' not in sys.modules


def _bilinear_reference(img, x, y, align_corners):
    """Bilinear sample of img (C, H, W) at relative (x, y) in [0, 1], zero padding."""
    c, h, w = img.shape
    if align_corners:
        px, py = x * (w - 1), y * (h - 1)
    else:
        px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    out = torch.zeros(c, dtype=img.dtype)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= xx < w and 0 <= yy < h:
                out += wx * wy * img[:, yy, xx]
    return out


@pytest.mark.parametrize('align_corners', [False, True])
def test_point_sample_matches_manual_bilinear(align_corners):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)
    points = torch.rand(2, 6, 2, generator=g, dtype=torch.float64)
    points[0, 0] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # corners: padding matters
    out = compat.point_sample(feats, points, align_corners=align_corners)
    assert out.shape == (2, 3, 6)
    for n in range(2):
        for p in range(6):
            x, y = points[n, p].tolist()
            ref = _bilinear_reference(feats[n], x, y, align_corners)
            torch.testing.assert_close(out[n, :, p], ref)
    # grid-shaped points (N, Hg, Wg, 2) give (N, C, Hg, Wg)
    grid = points.view(2, 2, 3, 2)
    out_grid = compat.point_sample(feats, grid, align_corners=align_corners)
    assert out_grid.shape == (2, 3, 2, 3)
    torch.testing.assert_close(out_grid.reshape(2, 3, 6), out)


def _focal_reference(logits, target, gamma, alpha, weight):
    n, c = logits.shape
    loss = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        for j in range(c):
            p = 1 / (1 + np.exp(-logits[i, j].item()))
            if target[i] == j:
                v = -alpha * (1 - p) ** gamma * np.log(p)
            else:
                v = -(1 - alpha) * p ** gamma * np.log(1 - p)
            if weight is not None and 0 <= target[i] < c:
                v *= weight[target[i]].item()
            loss[i, j] = v
    return loss


def test_sigmoid_focal_loss_matches_reference_formula():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
    target = torch.tensor([0, 3, 1, 4, 2])  # 4 == num_classes: background
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    for gamma, alpha, w in ((2.0, 0.25, None), (1.5, 0.6, weight)):
        ref = _focal_reference(logits, target, gamma, alpha, w)
        none = compat.sigmoid_focal_loss(logits, target, gamma, alpha, w, 'none')
        torch.testing.assert_close(none, ref)
        torch.testing.assert_close(
            compat.sigmoid_focal_loss(logits, target, gamma, alpha, w, 'sum'), ref.sum())
        torch.testing.assert_close(
            compat.sigmoid_focal_loss(logits, target, gamma, alpha, w), ref.sum() / 5)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: compat.sigmoid_focal_loss(x, target, 2.0, 0.25, weight, 'mean'), (logits,))


def test_sigmoid_focal_loss_agrees_with_mmseg_python_version():
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss

    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 3, generator=g)
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    one_hot = nn.functional.one_hot(target, 3).float()
    ours = compat.sigmoid_focal_loss(logits, target, 2.0, 0.5, None, 'none')
    theirs = py_sigmoid_focal_loss(logits, one_hot, alpha=0.5, gamma=2.0, reduction='none')
    torch.testing.assert_close(ours, theirs)


# ------------------------------------------------------------------------------------------
# 2. checkpoints under torch>=2.6
# ------------------------------------------------------------------------------------------

def test_runner_checkpoint_fails_upstream(upstream):
    kind, message = upstream['load_checkpoint']
    assert kind == 'UnpicklingError' and 'Weights only load failed' in message
    assert 'HistoryBuffer' in message or 'numpy' in message


def test_safe_torch_load_reads_runner_checkpoint(trained):
    from mmengine.logging import HistoryBuffer

    ckpt = compat.safe_torch_load(trained['ckpt'], map_location='cpu')
    assert ckpt['meta']['iter'] == 3
    assert state_equal(ckpt['state_dict'], trained['weights'])
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer) and len(loss.data[0]) == 3
    assert loss.statistics('min') == loss.min()
    # map_location is honoured (a callable sees every storage)
    seen = []
    ckpt = compat.safe_torch_load(trained['ckpt'],
                                  map_location=lambda storage, loc: seen.append(loc) or storage)
    assert len(seen) >= len(trained['weights'])
    assert all(v.device.type == 'cpu' for v in ckpt['state_dict'].values())


def test_load_from(trained, tmp_path):
    from mmengine.runner import Runner

    runner = Runner(**runner_kwargs(tmp_path, max_iters=3, load_from=trained['ckpt']))
    assert not state_equal(runner.model.state_dict(), trained['weights'])
    runner.load_or_resume()
    assert state_equal(runner.model.state_dict(), trained['weights'])
    assert runner.iter == 0  # load_from without resume: weights only


@pytest.mark.parametrize('how', ['auto', 'path'])
def test_resume(trained, tmp_path, how):
    import shutil

    from mmengine.runner import Runner

    if how == 'auto':  # resume=True finds work_dir/last_checkpoint
        shutil.copy(trained['ckpt'], tmp_path / 'iter_3.pth')
        (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_3.pth'))
        kwargs = dict(resume=True)
    else:
        kwargs = dict(resume=True, load_from=trained['ckpt'])
    runner = Runner(**runner_kwargs(tmp_path, max_iters=5, **kwargs))
    runner.train()
    assert runner.iter == 5
    # the message hub came back from the checkpoint: 3 old + 2 new losses
    assert len(runner.message_hub.get_scalar('train/loss').data[0]) == 5
    # the scheduler state came back too (milestone at 2 already passed)
    assert runner.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.01)]


def test_mmengine_load_checkpoint(trained):
    from mmengine.runner import load_checkpoint

    model = TinyModel()
    ckpt = load_checkpoint(model, trained['ckpt'], map_location='cpu')
    assert state_equal(model.state_dict(), trained['weights'])
    assert ckpt['meta']['iter'] == 3


def test_mmpretrain_get_model_pretrained(tmp_path):
    from mmengine import Config
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import save_checkpoint
    from mmpretrain import get_model

    cfg = Config(dict(model=dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                      out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64,
                  loss=dict(type='CrossEntropyLoss')))))
    source = get_model(cfg)
    path = str(tmp_path / 'cls.pth')
    save_checkpoint({
        'meta': dict(dataset_meta=dict(classes=('cat', 'dog', 'bird')), epoch=np.int64(2),
                     best=np.float64(0.5), hist=np.arange(3)),
        'state_dict': source.state_dict(),
        'message_hub': dict(log_scalars=dict(loss=HistoryBuffer([1.0, 0.5], [1, 1]))),
    }, path)
    fresh = get_model(cfg)
    assert not state_equal(fresh.state_dict(), source.state_dict())
    loaded = get_model(cfg, pretrained=path)
    assert state_equal(loaded.state_dict(), source.state_dict())
    assert loaded._dataset_meta['classes'] == ('cat', 'dog', 'bird')  # set by get_model


@pytest.mark.parametrize('func,args,name', [
    (subprocess.call, 'touch', 'subprocess.call'),
    (os.system, 'touch', os.system.__module__ + '.system'),
    (eval, 'eval', 'builtins.eval'),
])
def test_malicious_checkpoint_is_refused(tmp_path, func, args, name):
    from mmengine.runner import load_checkpoint

    marker = tmp_path / 'pwned'
    if args == 'touch':
        args = (['touch', str(marker)], ) if func is subprocess.call else (f'touch {marker}', )
    else:
        args = (f"open({str(marker)!r}, 'w')", )
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'fc.weight': torch.zeros(2, 4)},
                'meta': {'x': Payload(func, *args)}}, path)
    from mmengine.runner.checkpoint import load_from_local

    for load in (compat.safe_torch_load, lambda p: load_checkpoint(TinyModel(), p),
                 lambda p: load_from_local(p, None)):
        with pytest.raises(pickle.UnpicklingError) as info:
            load(path)
        assert f"'{name}'" in str(info.value) and "mmrepmlp's allow-list" in str(info.value)
    # torch.load keeps its own weights_only default: nothing was turned off globally
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not marker.exists()


def test_restricted_getattr_and_build(tmp_path):
    from mmengine.logging import HistoryBuffer

    # getattr may only reach HistoryBuffer's public methods
    path = str(tmp_path / 'getattr.pth')
    torch.save({'m': Payload(getattr, HistoryBuffer, 'min')}, path)
    assert compat.safe_torch_load(path)['m'] is HistoryBuffer.min
    for target, attr in ((HistoryBuffer, 'register_statistics'), (HistoryBuffer, '__init__'),
                         (Counter, 'fromkeys')):
        torch.save({'m': Payload(getattr, target, attr)}, path)
        with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
            compat.safe_torch_load(path)
    # BUILD (setstate) on a class would set class attributes: refused
    evil = (b'\x80\x02ccollections\nCounter\nN}X\x04\x00\x00\x00evilK\x01s\x86b.')
    with pytest.raises(pickle.UnpicklingError, match="type 'type'"):
        compat.RestrictedUnpickler(io.BytesIO(evil)).load()
    assert not hasattr(Counter, 'evil')


def test_torchscript_archive_is_refused(tmp_path):
    path = str(tmp_path / 'scripted.pt')
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)
    with pytest.raises(pickle.UnpicklingError, match='TorchScript'):
        compat.safe_torch_load(path)


@pytest.fixture
def evil_and_good(tmp_path, trained):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'meta': Payload(subprocess.call, ['touch', str(marker)])}, str(evil))
    return dict(evil=str(evil), good=trained['ckpt'], marker=marker)


@pytest.mark.parametrize('scheme', ['http', 'open-mmlab', 's3', 'pavi'])
def test_other_checkpoint_schemes_use_the_allow_list(scheme, evil_and_good, tmp_path,
                                                     monkeypatch):
    import shutil
    import types

    import torch.hub
    from mmengine.runner import checkpoint as ckpt_mod

    def source_for(kind):
        src = evil_and_good[kind]
        if scheme == 'http':
            monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / kind))
            monkeypatch.setattr(torch.hub, 'download_url_to_file',
                                lambda url, dst, *a, **k: shutil.copy(src, dst))
            return f'https://example.invalid/{kind}.pth'
        if scheme == 'open-mmlab':
            monkeypatch.setattr(ckpt_mod, '_get_mmengine_home', lambda: osp.dirname(src))
            monkeypatch.setattr(ckpt_mod, 'get_external_models',
                                lambda: {kind: osp.basename(src)})
            monkeypatch.setattr(ckpt_mod, 'get_deprecated_model_names', dict)
            return f'open-mmlab://{kind}'
        if scheme == 's3':
            backend = types.SimpleNamespace(get=lambda name: open(src, 'rb').read())
            monkeypatch.setattr(ckpt_mod, 'get_file_backend', lambda *a, **k: backend)
            return f's3://bucket/{kind}.pth'
        model = types.SimpleNamespace(name='m.pth',
                                      download=lambda dst: shutil.copy(src, dst))
        pavi = types.ModuleType('pavi')
        pavi.modelcloud = types.SimpleNamespace(get=lambda path: model)
        monkeypatch.setitem(sys.modules, 'pavi', pavi)
        return f'pavi://{kind}'

    good = ckpt_mod._load_checkpoint(source_for('good'), map_location='cpu')
    assert good['meta']['iter'] == 3
    with pytest.raises(pickle.UnpicklingError, match='subprocess.call'):
        ckpt_mod._load_checkpoint(source_for('evil'), map_location='cpu')
    assert not evil_and_good['marker'].exists()


# ------------------------------------------------------------------------------------------
# 3. pkg_resources
# ------------------------------------------------------------------------------------------

def test_external_base_configs_fail_upstream_without_pkg_resources(upstream):
    for key in ('config_mmpretrain', 'config_mmseg'):
        kind, message = upstream[key]
        assert kind == 'ModuleNotFoundError' and 'pkg_resources' in message


def test_external_base_configs_load_with_fix(fixed):
    assert fixed['config_mmpretrain'] == ['ok', ['ImageClassifier', 'ResNet', 7]]
    assert fixed['config_mmseg'] == ['ok', ['EncoderDecoder', 'ResNetV1c', 5]]


def test_package_lookup_without_pkg_resources():
    import mmengine.config.config
    import mmengine.utils
    import mmpretrain
    import mmseg

    import mmrepmlp

    assert mmengine.utils.get_installed_path is compat._get_installed_path
    assert mmengine.config.config.is_installed is compat._is_installed
    assert compat._get_installed_path('mmsegmentation') == osp.dirname(mmseg.__file__)
    assert compat._get_installed_path('mmpretrain') == osp.dirname(mmpretrain.__file__)
    # editable install: the module is not next to the metadata
    assert compat._get_installed_path('mmrepmlp') == osp.dirname(mmrepmlp.__file__)
    assert compat._package2module('mmsegmentation') == 'mmseg'
    assert compat._is_installed('mmsegmentation') and compat._is_installed('mmcv-lite')
    assert not compat._is_installed('surely-not-installed-mmrepmlp-pkg')
    with pytest.raises(ModuleNotFoundError):
        compat._get_installed_path('surely-not-installed-mmrepmlp-pkg')


# ------------------------------------------------------------------------------------------
# 4. numpy.in1d
# ------------------------------------------------------------------------------------------

def test_np_in1d_missing_upstream(upstream):
    assert upstream['np_in1d'][0] == 'AttributeError'


def test_retrieval_metrics_with_in1d_fix(monkeypatch):
    from mmpretrain.evaluation import RetrievalAveragePrecision, RetrievalRecall

    def inputs():
        # ranked predictions per query and the relevant items
        return ([torch.tensor([1, 2, 0]), torch.tensor([2, 0, 1])],
                [torch.tensor([0]), torch.tensor([2])])

    monkeypatch.delattr(np, 'in1d', raising=False)  # numpy>=2.4 as installed
    with pytest.raises(AttributeError):
        RetrievalRecall.calculate(*inputs(), topk=1, pred_indices=True, target_indices=True)
    assert compat.fix_numpy_in1d() is True
    assert compat.fix_numpy_in1d() is False
    recall = RetrievalRecall.calculate(*inputs(), topk=(1, 2, 3), pred_indices=True,
                                       target_indices=True)
    assert [float(r) for r in recall] == pytest.approx([50.0, 50.0, 100.0])
    ap = RetrievalAveragePrecision.calculate(*inputs(), topk=3, pred_indices=True,
                                             target_indices=True)
    assert ap == pytest.approx((100 / 3 + 100) / 2)
    # old in1d semantics: flattened, invert supported
    assert np.in1d([[1, 2], [3, 4]], [2, 3]).tolist() == [False, True, True, False]
    assert np.in1d([1, 2], [2], invert=True).tolist() == [True, False]


# ------------------------------------------------------------------------------------------
# 5. CPU distributed training
# ------------------------------------------------------------------------------------------

DDP_WORKER = TINY_SOURCE + LOAD_COMPAT + textwrap.dedent("""\
    import json
    import os

    compat.apply_all()
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
    port = str(_free_port())
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
    code = LOAD_COMPAT + ATTEMPT + textwrap.dedent(f"""\
        if {apply_fix}:
            compat.apply_all()
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
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()),
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
