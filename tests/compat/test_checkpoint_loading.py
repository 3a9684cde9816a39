"""mmrepmlp.compat.checkpoint_loading and mmrepmlp.utils.checkpoint.safe_load: MMEngine's
checkpoints load through every MMEngine path on torch>=2.6, and nothing else does.

Checkpoints are written by real MMEngine Runners at several points of training (before the
first iteration, after one, after validation, with the EMA hook, with optimizer and
parameter-scheduler state), so that what the allow-list accepts is what MMEngine writes.
"""
import os
import os.path as osp
import pickle
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers_compat import Payload, TinyModel, ToyDataset, runner_kwargs, state_equal
from mmengine.hooks import Hook

from mmrepmlp.utils.checkpoint import safe_load


def test_runner_checkpoint_fails_upstream(upstream):
    kind, message = upstream['load_checkpoint']
    assert kind == 'UnpicklingError' and 'Weights only load failed' in message
    assert 'HistoryBuffer' in message or 'numpy' in message


def test_safe_torch_load_reads_runner_checkpoint(trained):
    from mmengine.logging import HistoryBuffer

    ckpt = safe_load(trained['ckpt'], map_location='cpu')
    assert ckpt['meta']['iter'] == 3
    assert state_equal(ckpt['state_dict'], trained['weights'])
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer) and len(loss.data[0]) == 3
    assert loss.statistics('min') == loss.min()
    # map_location is honoured (a callable sees every storage)
    seen = []
    ckpt = safe_load(trained['ckpt'],
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

    for load in (safe_load, lambda p: load_checkpoint(TinyModel(), p),
                 lambda p: load_from_local(p, None)):
        with pytest.raises(pickle.UnpicklingError) as info:
            load(path)
        assert name in str(info.value) and 'could run code' in str(info.value)
    # torch.load keeps its own weights_only default: nothing was turned off globally
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not marker.exists()


def test_getattr_reaches_only_history_buffer_methods(tmp_path):
    from mmengine.logging import HistoryBuffer

    # getattr may only reach HistoryBuffer's public methods
    path = str(tmp_path / 'getattr.pth')
    torch.save({'m': Payload(getattr, HistoryBuffer, 'min')}, path)
    assert safe_load(path)['m'] is HistoryBuffer.min
    for target, attr in ((HistoryBuffer, 'register_statistics'), (HistoryBuffer, '__init__'),
                         (Counter, 'fromkeys')):
        torch.save({'m': Payload(getattr, target, attr)}, path)
        with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
            safe_load(path)


def test_torchscript_archive_is_refused(tmp_path):
    path = str(tmp_path / 'scripted.pt')
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)
    with pytest.raises(pickle.UnpicklingError, match='TorchScript'):
        safe_load(path)


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


class SaveBeforeTrainHook(Hook):
    """Register a scalar not logged yet (an empty HistoryBuffer: empty numpy arrays, which
    pickle ``b''`` as ``bytes()``) and save a checkpoint before the first iteration."""

    def before_train(self, runner):
        from mmengine.logging import HistoryBuffer

        runner.message_hub.log_scalars['custom/not_logged_yet'] = HistoryBuffer()
        runner.message_hub._resumed_keys['custom/not_logged_yet'] = True  # i.e. saved
        runner.save_checkpoint(runner.work_dir, 'iter_0.pth', save_optimizer=True,
                               save_param_scheduler=True)


def _runner_checkpoints(work_dir):
    """``{name: path}`` of checkpoints a Runner writes at different points of training."""
    from mmengine.evaluator import BaseMetric
    from mmengine.runner import Runner

    class MeanOutput(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results.append(float(torch.stack(data_samples).mean()))

        def compute_metrics(self, results):
            return dict(mean_output=np.float32(np.mean(results)))

    loader = dict(dataset=ToyDataset(), batch_size=4, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    runner = Runner(**runner_kwargs(
        work_dir, max_iters=2,
        train_cfg=dict(by_epoch=False, max_iters=2, val_interval=1),
        val_dataloader=loader, val_cfg=dict(), val_evaluator=[MeanOutput()],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='EMAHook'), SaveBeforeTrainHook()]))
    runner.train()
    return {name: osp.join(work_dir, f'{name}.pth') for name in ('iter_0', 'iter_1', 'iter_2')}


@pytest.fixture(scope='module')
def runner_checkpoints(tmp_path_factory):
    return _runner_checkpoints(str(tmp_path_factory.mktemp('points')))


@pytest.mark.parametrize('point', ['iter_0', 'iter_1', 'iter_2'])
def test_runner_checkpoints_at_every_point_load_and_resume(runner_checkpoints, point, tmp_path):
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import _load_checkpoint

    path = runner_checkpoints[point]
    checkpoint = _load_checkpoint(path, map_location='cpu')
    assert checkpoint['meta']['iter'] == int(point[-1])
    assert {'state_dict', 'optimizer', 'param_schedulers', 'message_hub'} <= set(checkpoint)
    assert 'ema_state_dict' in checkpoint
    scalars = checkpoint['message_hub']['log_scalars']
    assert len(scalars['custom/not_logged_yet'].data[0]) == 0
    if point != 'iter_0':
        assert len(scalars['train/loss'].data[0]) == int(point[-1])
    if point == 'iter_2':  # saved after the validation of iteration 1
        assert len(scalars['val/mean_output'].data[0]) == 1
    milestones = checkpoint['param_schedulers'][0]['milestones']
    assert isinstance(milestones, Counter)

    runner = Runner(**runner_kwargs(tmp_path, max_iters=3, resume=True, load_from=path,
                                    custom_hooks=[dict(type='EMAHook')]))
    runner.train()
    assert runner.iter == 3


NUMPY_SCALAR_TYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                      np.uint32, np.uint64, np.float16, np.float32, np.float64, np.longdouble,
                      np.complex64, np.complex128, np.clongdouble)


def test_numpy_values_of_every_dtype(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint

    values = {t.__name__: t(1) for t in NUMPY_SCALAR_TYPES}
    values.update({f'{t.__name__}_array': np.arange(3).astype(t) for t in NUMPY_SCALAR_TYPES})
    values.update({f'{t.__name__}_empty': np.zeros(0, t) for t in NUMPY_SCALAR_TYPES})
    values.update(datetime=np.datetime64('2026-01-01'), delta=np.timedelta64(5, 's'),
                  text=np.str_('abc'), raw=np.bytes_(b'ab'), empty_bytes=b'',
                  empty_history=HistoryBuffer(),
                  fortran=np.asfortranarray(np.ones((2, 3))))
    path = str(tmp_path / 'numpy.pth')
    torch.save({'state_dict': {}, 'meta': values}, path)

    loaded = _load_checkpoint(path, map_location='cpu')['meta']

    assert loaded.keys() == values.keys()
    assert len(loaded.pop('empty_history').data[0]) == 0
    values.pop('empty_history')
    for key, value in values.items():
        assert type(loaded[key]) is type(value), key
        assert np.array_equal(loaded[key], value), key
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype, key
