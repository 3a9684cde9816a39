"""Fixtures of the compat tests: a checkpoint written by a real MMEngine Runner, configs with
external bases, and what the pinned stack does in fresh interpreters without and with
``import mmrepmlp`` (all scenarios of all fixes in two interpreters, run at once)."""
import os
import textwrap

import pytest
from helpers_compat import (
    ATTEMPT,
    BLOCK_PKG_RESOURCES,
    free_port,
    run_pythons,
    runner_kwargs,
)


@pytest.fixture(scope='session')
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


@pytest.fixture(scope='session')
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
        import sys
        from mmengine import Config

        # the installed start-up hook would import mmrepmlp (and its fixes) before mmseg
        sys.meta_path[:] = [finder for finder in sys.meta_path
                            if type(finder).__name__ != 'ImportMmrepmlpBeforeMmseg']

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
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()), RANK='0',
               LOCAL_RANK='0', WORLD_SIZE='1', CUDA_VISIBLE_DEVICES='')
    return code, env


def fixed_job(config_files):
    """The same scenarios in a fresh interpreter after ``import mmrepmlp``, plus a PSPNet built
    from mmseg's registry and run forward (needs mmcv.ops)."""
    code = BLOCK_PKG_RESOURCES + ATTEMPT + textwrap.dedent(f"""\
        import mmrepmlp  # applies every fix

        results['applied_again'] = mmrepmlp.compat.apply_all()
        import sys

        import mmengine.dist.dist
        import mmengine.fileio
        import mmengine.dist.utils
        import mmengine.infer
        import mmengine.runner.checkpoint
        import mmengine.utils
        import mmpretrain.apis.model
        import numpy as np
        from mmrepmlp.compat.marks import is_ours

        results['patched'] = dict(
            fix_mmcv_ops=is_ours(sys.modules['mmcv.ops']),
            fix_pkg_resources=is_ours(mmengine.utils.get_installed_path),
            fix_numpy_in1d=is_ours(np.in1d),
            fix_checkpoint_loading=is_ours(mmengine.runner.checkpoint.load_from_local),
            fix_checkpoint_saving=is_ours(mmengine.fileio.LocalBackend.put),
            fix_cpu_distributed=is_ours(mmengine.dist.utils._init_dist_pytorch),
            fix_dist_test_dir=is_ours(mmengine.dist.dist.collect_results_cpu),
            fix_inference_model=is_ours(mmpretrain.apis.model.inference_model),
            fix_inferencer_model_names=is_ours(
                mmengine.infer.BaseInferencer._load_model_from_metafile))
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


@pytest.fixture(scope='session')
def fresh_interpreters(trained, config_files, tmp_path_factory):
    upstream, fixed = run_pythons([upstream_job(trained, config_files), fixed_job(config_files)],
                                  tmp_path_factory.mktemp('fresh'))
    return dict(upstream=upstream, fixed=fixed)


@pytest.fixture(scope='session')
def upstream(fresh_interpreters):
    return fresh_interpreters['upstream']


@pytest.fixture(scope='session')
def fixed(fresh_interpreters):
    return fresh_interpreters['fixed']
