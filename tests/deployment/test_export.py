"""Export (mmrepmlp.deployment.export, mmrepmlp.apis.export, tools/deployment/export.py): ONNX,
AOTInductor and TorchScript artifacts of tiny models match PyTorch on another batch size, pt2
packages run in a fresh process, training checkpoints are converted first, and bad input fails
before any output."""
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap

import onnxruntime
import pytest
import torch
from helpers_tools import (
    REPO_ROOT,
    TINY_CONFIG,
    TINY_PURE_MLP_CONFIG,
    TINY_SEG_CONFIG,
    load_tool,
    run_tool,
    tool_env,
)
from mmpretrain.registry import MODELS
from torch import nn

from mmrepmlp.apis import convert_checkpoint, load_model
from mmrepmlp.apis.build import input_shape
from mmrepmlp.apis.export import export_checkpoint
from mmrepmlp.deployment import EXPORTERS, convert_model, forward_raw, random_batch
from mmrepmlp.reparam import randomize_norm_layers
from mmrepmlp.utils.errors import InputError

FACE_CONFIG = osp.join(REPO_ROOT, 'configs', 'repmlp_face', 'repmlp-faceres50_8xb64_ms1mv2.py')
# RepMLP-FaceRes at a test's scale: one block per stage, a 2x2 last map at 64x64 inputs.
TINY_FACE_CONFIG = f"""_base_ = [{FACE_CONFIG!r}]
model = dict(
    backbone=dict(_delete_=True, type='RepMLPResNet', img_size=64, out_indices=(3, ),
                  arch=dict(num_blocks=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                            block_type=('base', 'bottleneck', 'bottleneck', 'base'), r=2,
                            groups=2, partition=4, local_kernels=(1, 3))),
    neck=dict(in_channels=128, in_size=2, embedding_dim=16),
    head=dict(num_classes=4, in_channels=16))
"""
TOLERANCE = 1e-4
OTHER_BATCH = 5  # neither the example batch (2) nor the library's second check (3)


@MODELS.register_module(force=True)
class DataDependentNeck(nn.Module):
    """Pools the last map and doubles it when its mean is positive: a Python branch on a
    tensor value, which torch.export cannot capture."""

    def forward(self, inputs):
        pooled = inputs[-1].mean((2, 3))
        if pooled.mean() > 0:
            pooled = pooled * 2
        return (pooled, )


def write_checkpoint(config, path):
    """A checkpoint of ``config`` with random BN statistics, so that converting is no
    identity."""
    model = randomize_norm_layers(load_model(config)[0])
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """``{name: (config, training checkpoint)}`` for the tiny models of every task."""
    root = tmp_path_factory.mktemp('export')
    face_config = root / 'tiny_face.py'
    face_config.write_text(TINY_FACE_CONFIG)
    configs = {'classifier': TINY_CONFIG, 'pure_mlp': TINY_PURE_MLP_CONFIG,
               'segmentor': TINY_SEG_CONFIG, 'face': str(face_config)}
    return {name: (config, write_checkpoint(config, root / f'{name}.pth'))
            for name, config in configs.items()}


def deploy_model(config, checkpoint):
    model, cfg = load_model(config, checkpoint)
    convert_model(model, log=lambda line: None)
    return model, cfg


def pytorch_output(model, inputs):
    with torch.no_grad():
        return forward_raw(model, inputs)


def assert_close(outputs, reference):
    difference = (outputs - reference).abs().max() / reference.abs().max()
    assert outputs.shape == reference.shape and difference <= TOLERANCE


def run_onnx(path, inputs):
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return torch.from_numpy(session.run(None, {'input': inputs.numpy()})[0])


def run_torchscript(path, inputs):
    with torch.no_grad():
        return torch.jit.load(path)(inputs)


def run_pt2_in_fresh_process(path, inputs, tmp_path):
    """The package's output on ``inputs``, computed by a new Python that imports torch only."""
    torch.save(inputs, tmp_path / 'inputs.pt')
    script = textwrap.dedent(f"""
        import sys, torch
        package = torch._inductor.aoti_load_package({str(path)!r})
        outputs = package(torch.load({str(tmp_path / 'inputs.pt')!r}))
        assert 'mmrepmlp' not in sys.modules  # the package needs torch only
        torch.save(outputs, {str(tmp_path / 'outputs.pt')!r})
    """)
    ran = subprocess.run([sys.executable, '-c', script], env=tool_env(), capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return torch.load(tmp_path / 'outputs.pt')


def exported(config, checkpoint, fmt, out, **options):
    """``export_checkpoint`` with a dynamic batch; asserts its own checks passed."""
    result = export_checkpoint(config, checkpoint, fmt, out=str(out), dynamic_batch=True,
                               log=lambda line: None, **options)
    assert [check[0] for check in result.checks] == [2, 3]
    assert result.max_rel_diff <= TOLERANCE and osp.isfile(out)
    return result


@pytest.mark.parametrize('fmt, run', [('onnx', run_onnx), ('torchscript', run_torchscript)])
@pytest.mark.parametrize('name', ['classifier', 'pure_mlp', 'segmentor', 'face'])
def test_artifact_matches_pytorch_on_another_batch_size(checkpoints, tmp_path, name, fmt,
                                                        run):
    config, checkpoint = checkpoints[name]

    result = exported(config, checkpoint, fmt, tmp_path / f'{name}.{fmt}')

    assert result.converted  # a training checkpoint: converted before exporting
    model, cfg = deploy_model(config, checkpoint)
    inputs = random_batch(OTHER_BATCH, input_shape(cfg), seed=7)
    assert_close(run(result.path, inputs), pytorch_output(model, inputs))


# the classifier's pt2 runs in the tool's test below
@pytest.mark.parametrize('name', ['pure_mlp', 'segmentor', 'face'])
def test_pt2_package_runs_in_a_fresh_process(checkpoints, tmp_path, name):
    config, checkpoint = checkpoints[name]

    result = exported(config, checkpoint, 'pt2', tmp_path / f'{name}.pt2')

    model, cfg = deploy_model(config, checkpoint)
    inputs = random_batch(OTHER_BATCH, input_shape(cfg), seed=7)
    assert_close(run_pt2_in_fresh_process(result.path, inputs, tmp_path),
                 pytorch_output(model, inputs))


def test_tool_converts_a_training_checkpoint_and_writes_pt2_next_to_it(checkpoints, tmp_path):
    config, training = checkpoints['classifier']
    checkpoint = tmp_path / 'tiny.pth'
    checkpoint.write_bytes(open(training, 'rb').read())

    ran = run_tool(['deployment/export.py', config, checkpoint, '--format', 'pt2',
                    '--dynamic-batch'], tmp_path)

    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    assert re.search(r'converted \d+ modules to the deploy form before exporting', ran.stdout)
    assert f'wrote {tmp_path / "tiny.pt2"}' in ran.stdout
    differences = re.findall(r'max relative difference ([0-9.e+-]+)', ran.stdout)
    assert len(differences) == 2 and max(map(float, differences)) <= TOLERANCE
    model, cfg = deploy_model(config, training)
    inputs = random_batch(OTHER_BATCH, input_shape(cfg), seed=7)
    assert_close(run_pt2_in_fresh_process(tmp_path / 'tiny.pt2', inputs, tmp_path),
                 pytorch_output(model, inputs))


def test_tool_exports_a_deploy_checkpoint_without_converting(checkpoints, tmp_path):
    config, training = checkpoints['classifier']
    convert_checkpoint(config, training, out=str(tmp_path / 'deploy.pth'), verify=False,
                       log=lambda line: None)
    out = tmp_path / 'model.ts'

    ran = run_tool(['deployment/export.py', tmp_path / 'tiny_repmlp_resnet_deploy.py',
                    tmp_path / 'deploy.pth', '--format', 'torchscript', '--out', out], tmp_path)

    assert ran.returncode == 0, ran.stderr[-3000:]
    assert 'before exporting' not in ran.stdout and f'wrote {out}' in ran.stdout
    assert len(re.findall(r'max relative difference', ran.stdout)) == 1  # fixed batch


@pytest.fixture
def export_main():
    return load_tool('deployment/export.py').main


def tool_error(main, argv):
    with pytest.raises(SystemExit) as exited:
        main([str(arg) for arg in argv])
    assert str(exited.value.code).startswith('error: ')
    return str(exited.value.code)


def test_missing_checkpoint_is_named(export_main, tmp_path):
    error = tool_error(export_main, [TINY_CONFIG, tmp_path / 'none.pth', '--format', 'onnx'])

    assert 'none.pth does not exist' in error


def test_output_over_the_checkpoint_is_refused(export_main, checkpoints):
    config, checkpoint = checkpoints['classifier']

    error = tool_error(export_main, [config, checkpoint, '--format', 'onnx', '--out',
                                     checkpoint])

    assert 'refusing to write' in error


@pytest.mark.parametrize('fmt, out, expected', [
    # a folder that cannot be created: one of its parents is a file (even root cannot)
    ('onnx', osp.join('{checkpoint}', 'model.onnx'), 'is a file'),
    ('pt2', 'model.bin', 'must be named *.pt2'),
])
def test_unusable_output_fails_before_any_work(export_main, checkpoints, monkeypatch, tmp_path,
                                               fmt, out, expected):
    config, checkpoint = checkpoints['classifier']

    def no_work(*args, **kwargs):
        raise AssertionError('the model was loaded before the output was checked')

    monkeypatch.setattr('mmrepmlp.apis.export.load_model', no_work)
    error = tool_error(export_main, [config, checkpoint, '--format', fmt, '--out',
                                     tmp_path / out.format(checkpoint=checkpoint)])

    assert expected in error


def test_failed_check_writes_nothing(export_main, checkpoints, tmp_path):
    config, checkpoint = checkpoints['classifier']
    out = tmp_path / 'model.onnx'

    error = tool_error(export_main, [config, checkpoint, '--format', 'onnx', '--out', out,
                                     '--tolerance', '-1'])

    assert 'differs from PyTorch' in error
    assert list(tmp_path.iterdir()) == []  # no artifact, no temporary left


def test_dynamic_batch_needs_an_example_batch_of_two(export_main, checkpoints, tmp_path):
    config, checkpoint = checkpoints['classifier']

    error = tool_error(export_main, [config, checkpoint, '--format', 'onnx', '--out',
                                     tmp_path / 'model.onnx', '--batch', '1',
                                     '--dynamic-batch'])

    assert 'example batch of 2 or more' in error


@pytest.mark.parametrize('fmt', ['onnx', 'pt2', 'torchscript'])
def test_unexportable_forward_names_its_module(tmp_path, fmt, capfd):
    config = tmp_path / 'data_dependent.py'
    config.write_text(f'_base_ = [{TINY_CONFIG!r}]\n'
                      "model = dict(neck=dict(type='DataDependentNeck'))\n")
    checkpoint = write_checkpoint(str(config), tmp_path / 'data_dependent.pth')

    with pytest.raises(InputError) as error:
        export_checkpoint(str(config), checkpoint, fmt, out=str(tmp_path / f'model.{fmt}'),
                          log=lambda line: None)

    message = str(error.value)
    assert 'module neck (DataDependentNeck)' in message
    assert re.search(rf'at {re.escape(__file__)}:\d+ \(`if pooled.mean\(\) > 0:`\)', message)
    assert not osp.exists(tmp_path / f'model.{fmt}')
    printed = capfd.readouterr().err
    assert 'def forward' not in printed and 'Unable to find user code' not in printed  # no dump


@pytest.mark.parametrize('fmt', ['onnx', 'pt2', 'torchscript'])
def test_a_full_disk_is_named_and_leaves_nothing(tmp_path, fmt, monkeypatch):
    import mmrepmlp.utils.files as files

    def temporary_on_a_full_disk(path, suffix):
        tmp = real_temporary(path, suffix)
        os.remove(tmp)
        os.symlink('/dev/full', tmp)  # writing it fails with ENOSPC, as on a full disk
        return tmp

    real_temporary = files._new_temporary
    monkeypatch.setattr(files, '_new_temporary', temporary_on_a_full_disk)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    out = tmp_path / f'model.{fmt}'

    with pytest.raises(InputError, match=f'cannot write {re.escape(str(out))}: No space left on '
                       'device.*; free space on that disk or choose another output path'):
        EXPORTERS[fmt](model, str(out), torch.randn(2, 3, 8, 8), log=lambda line: None)

    assert os.listdir(tmp_path) == []
