"""The tools on RepMLPNet: deploy_convert on an ImageNet RepMLPNet config and on MMPretrain's own
``repmlp-base`` config, export to ONNX, TorchScript and AOTInductor (the block's 7-D
un-partitioning, maps run as partitions, a dynamic batch), get_flops and benchmark --vs.

The configs are the zoo's and MMPretrain's with a small arch and 32x32 inputs: the point is the
tools, not the presets (whose counts the get_flops test reads at full size)."""
import json
import os.path as osp
import re

import onnxruntime
import pytest
import torch
from helpers_tools import REPO_ROOT, load_tool, relative_difference, run_tool
from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain import get_model

from mmrepmlp.apis import convert_checkpoint, load_model
from mmrepmlp.apis.build import input_shape
from mmrepmlp.apis.export import export_checkpoint
from mmrepmlp.deployment import convert_model, forward_raw, random_batch
from mmrepmlp.reparam import randomize_norm_layers

ZOO = osp.join(REPO_ROOT, 'configs', 'repmlpnet')
COUNTS = osp.join(REPO_ROOT, 'tests', 'data', 'official_repmlpnet', 'counts.json')
SIZE = 32
# Four stages of maps 8, 4, 2 and 1 pixels at 32x32; the Global Perceptron of MMPretrain's
# block needs channels // 4 to be a multiple of 8.
SMALL = f"""_base_ = [{osp.join(ZOO, 'repmlpnet-t_8xb32_in1k.py')!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, channels=(8, 16, 16, 32), num_blocks=(1, 1, 2, 1),
                            num_sharesets=(1, 2, 4, 8)), img_size={SIZE}{{extra}}),
    head=dict(num_classes=10, in_channels=32))
"""
MMPRETRAIN_SMALL = """_base_ = ['mmpretrain::repmlp/{config}']
model = dict(
    backbone=dict(arch=dict(_delete_=True, channels=[32, 64, 64, 128], depths=[1, 1, 2, 1],
                            sharesets_nums=[1, 2, 4, 8]), img_size=32),
    head=dict(num_classes=10, in_channels=128))
"""
MMPRETRAIN_TRAIN = 'repmlp-base_8xb64_in1k.py'
MMPRETRAIN_DEPLOY = 'repmlp-base_delopy_8xb64_in1k.py'  # (sic) MMPretrain's file name
# The windows config is exported at a size of several partitions per map, not a multiple of
# them (the maps are padded and cropped back).
WINDOWS_SHAPE = (44, 40)
OTHER_BATCH = 5


def write(path, text):
    path.write_text(text)
    return str(path)


def checkpoint_of(config, path, seed=0):
    """A checkpoint of ``config`` with random BN statistics (so that converting is no
    identity); returns its path."""
    torch.manual_seed(seed)
    model = randomize_norm_layers(load_model(config)[0], seed=seed)
    torch.save({'meta': {'dataset_meta': {'classes': [str(i) for i in range(10)]}},
                'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """``{name: (config, training checkpoint)}``: the zoo config with a small arch, the same
    with ``larger_input='windows'``, and MMPretrain's config with a small arch."""
    root = tmp_path_factory.mktemp('repmlpnet_tools')
    configs = {
        'zoo': write(root / 'small.py', SMALL.format(extra='')),
        'windows': write(root / 'small_windows.py',
                         SMALL.format(extra=", larger_input='windows'")),
        'mmpretrain': write(root / 'mmpretrain_small.py',
                            MMPRETRAIN_SMALL.format(config=MMPRETRAIN_TRAIN)),
    }
    return {name: (config, checkpoint_of(config, root / f'{name}.pth'))
            for name, config in configs.items()}


def logits(model, inputs):
    with torch.no_grad():
        return forward_raw(model.eval(), inputs)


# -------------------------------------------------------------------------- deploy_convert
def test_deploy_convert_tool_on_a_repmlpnet_config(small, tmp_path):
    config, checkpoint = small['zoo']
    out = tmp_path / 'deploy' / 'small_deploy.pth'

    converted = run_tool(['deploy_convert.py', config, checkpoint, '--out', out], tmp_path)

    assert converted.returncode == 0, converted.stdout[-2000:] + converted.stderr[-3000:]
    relative = float(re.search(r'max relative difference ([0-9.e+-]+)', converted.stdout)[1])
    assert relative <= 1e-5
    blocks = re.findall(r'converted (backbone\.\S+) \(RepMLPNetBlock\)', converted.stdout)
    assert blocks == [f'backbone.stages.{s}.{u}.repmlp' for s, u in
                      [(0, 0), (1, 0), (2, 0), (2, 1), (3, 0)]]
    deploy_config = str(tmp_path / 'deploy' / 'small_deploy.py')
    assert Config.fromfile(deploy_config).model.backbone.deploy is True
    state = _load_checkpoint(str(out), map_location='cpu')['state_dict']
    assert not any('local_perceptron' in key or 'fc3_bn' in key for key in state)
    # MMPretrain's get_model builds the deploy config and loads the checkpoint strictly.
    deployed = get_model(deploy_config, pretrained=str(out))
    inputs = random_batch(3, (3, SIZE, SIZE), seed=3)
    trained = load_model(config, checkpoint)[0]
    assert relative_difference(logits(deployed, inputs), logits(trained, inputs)) <= 1e-5


def test_deploy_convert_on_mmpretrains_repmlp_config(small, tmp_path):
    """MMPretrain's own config: its RepMLPNet converts by mmrepmlp's locality injection, and
    MMPretrain's own deploy config loads the result and computes the same."""
    config, checkpoint = small['mmpretrain']
    lines = []

    result = convert_checkpoint(config, checkpoint, str(tmp_path / 'deploy.pth'),
                                log=lines.append)

    assert result.max_rel_diff <= 1e-5
    assert sum(bool(re.match(r'converted backbone\.stages\.\d\.\d\.repmlp_block '
                             r'\(RepMLPBlock\)', line)) for line in lines) == 5
    assert any(line.endswith('deploy flags set on: model.backbone') for line in lines)
    theirs = write(tmp_path / 'mmpretrain_deploy.py',
                   MMPRETRAIN_SMALL.format(config=MMPRETRAIN_DEPLOY))
    deployed = get_model(theirs, pretrained=result.checkpoint)  # strict
    blocks = [m for m in deployed.modules() if hasattr(m, 'local_inject')]
    assert len(blocks) == 5 and all(block.deploy for block in blocks)
    inputs = random_batch(3, (3, SIZE, SIZE), seed=3)
    trained = load_model(config, checkpoint)[0]
    # float32 rounding in another order (MMPretrain's FC3 is a grouped conv), on logits of
    # hundreds: within the tool's default tolerance
    assert relative_difference(logits(deployed, inputs), logits(trained, inputs)) <= 1e-4


# ---------------------------------------------------------------------------------- export
def run_artifact(fmt, path, inputs):
    if fmt == 'onnx':
        session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        return torch.from_numpy(session.run(None, {'input': inputs.numpy()})[0])
    if fmt == 'torchscript':
        with torch.no_grad():
            return torch.jit.load(path)(inputs)
    return torch._inductor.aoti_load_package(path)(inputs)


@pytest.mark.parametrize('name, fmt', [('zoo', 'onnx'), ('zoo', 'torchscript'),
                                       ('windows', 'onnx'), ('windows', 'torchscript'),
                                       ('windows', 'pt2')])
def test_export_with_a_dynamic_batch_matches_pytorch(small, tmp_path, name, fmt):
    config, checkpoint = small[name]
    shape = WINDOWS_SHAPE if name == 'windows' else None
    out = str(tmp_path / f'model.{fmt}')

    result = export_checkpoint(config, checkpoint, fmt, out=out, shape=shape,
                               dynamic_batch=True, log=lambda line: None)

    assert [check[0] for check in result.checks] == [2, 3] and result.max_rel_diff <= 1e-4
    assert len(result.converted) == 5  # the RepMLP blocks, converted before exporting
    model, cfg = load_model(config, checkpoint)
    convert_model(model, log=lambda line: None)
    inputs = random_batch(OTHER_BATCH, input_shape(cfg, shape), seed=7)
    expected = logits(model, inputs)
    actual = run_artifact(fmt, out, inputs)
    assert actual.shape == expected.shape == (OTHER_BATCH, 10)
    assert relative_difference(actual, expected) <= 1e-4


def test_export_tool_refuses_another_size_without_windows(small, tmp_path):
    config, checkpoint = small['zoo']

    with pytest.raises(SystemExit) as exited:
        load_tool('deployment/export.py').main([config, checkpoint, '--format', 'onnx',
                                                '--out', str(tmp_path / 'model.onnx'),
                                                '--shape', '44', '40'])

    message = str(exited.value.code)
    assert message.startswith('error: ') and 'img_size' in message and '--shape' in message
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- get_flops
def test_get_flops_counts_the_official_t224(capsys):
    """The tool's parameter and conv/FC MAC counts of the zoo's T224 in both forms are the
    official architecture's (counted by the official code)."""
    with open(COUNTS) as f:
        expected = json.load(f)['RepMLPNet-T224']

    load_tool('analysis_tools/get_flops.py').main([osp.join(ZOO, 'repmlpnet-t_8xb32_in1k.py')])

    rows = [line.split(' | ') for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[2] for row in rows] == ['train', 'deploy']
    for row in rows:
        params, macs = (int(re.search(r'\((\d+)\)', cell)[1]) for cell in (row[3], row[5]))
        assert row[1] == '224x224'
        assert (params, macs) == (expected[f'params_{row[2]}'], expected[f'macs_{row[2]}'])


# ------------------------------------------------------------------------------- benchmark
def test_benchmark_vs_mmpretrains_repmlpnet(small, tmp_path):
    ours, _ = small['zoo']
    theirs, _ = small['mmpretrain']

    ran = run_tool(['analysis_tools/benchmark.py', ours, '--deploy', '--vs', theirs,
                    '--vs-deploy', '--batch', 2, '--rounds', 1, '--warmup', 1, '--device',
                    'cpu'], tmp_path)

    assert ran.returncode == 0, ran.stderr[-3000:]
    ratio = re.search(r'^ratio small \(deploy\) / mmpretrain_small \(deploy\): ([0-9.]+)x '
                      r'images/s$', ran.stdout, re.MULTILINE)
    assert ratio and float(ratio[1]) > 0
