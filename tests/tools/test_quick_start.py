"""The quick start (`make demo`): a short real run on the bundled digits, and the CLI's verdict."""
import dataclasses
import os.path as osp

import pytest
import torch
from helpers_tools import REPO_ROOT, load_script, load_tool, relative_difference
from mmengine.runner import Runner

from mmrepmlp.apis.build import forward_raw, load_model
from mmrepmlp.apis.quick_start import (
    QuickStartResult,
    format_report,
    preprocessed_split,
    run_quick_start,
)
from mmrepmlp.utils.checkpoint import safe_load

DIGITS_CONFIG = osp.join(REPO_ROOT, 'configs', 'repmlp_cifar', 'pure-mlp_1xb32_digits.py')


@pytest.fixture(scope='module')
def one_epoch(tmp_path_factory):
    """The quick start for one epoch: its result and work dir."""
    work_dir = tmp_path_factory.mktemp('quick_start')
    return run_quick_start(epochs=1, work_dir=str(work_dir), speed_rounds=1), work_dir


def test_one_epoch_trains_converts_and_reports(one_epoch):
    result, work_dir = one_epoch

    assert result.num_val == 360
    assert result.deploy_accuracy == result.train_accuracy
    assert result.deploy_accuracy > 40  # chance is 10%
    # the written checkpoints: the deploy form computes the trained model within 1e-5
    # relative, and the reported difference is that small relative to the logits
    trained = load_model(DIGITS_CONFIG, str(work_dir / 'epoch_1.pth'))[0]
    deployed, cfg = load_model(DIGITS_CONFIG, result.deploy_path,
                               {'model.backbone.deploy': True})
    inputs, _ = preprocessed_split(Runner.build_dataloader(cfg.val_dataloader),
                                   trained.data_preprocessor)
    with torch.no_grad():
        expected = forward_raw(trained, inputs)
        assert relative_difference(forward_raw(deployed, inputs), expected) <= 1e-5
    assert result.max_abs_diff <= 1e-5 * expected.abs().max()
    assert result.deploy_flops < result.train_flops / 2
    assert result.deploy_params < result.train_params
    assert result.train_speed > 0 and result.deploy_speed > 0
    with open(result.plot_path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    state_dict = safe_load(result.deploy_path)
    assert any(k.endswith('fc3.bias') for k in state_dict)
    assert not any('local_perceptron' in k or 'fc3_bn' in k for k in state_dict)
    assert all(torch.isfinite(v).all() for v in state_dict.values() if v.is_floating_point())

    report = format_report(result)
    assert f'{result.deploy_accuracy:.2f}' in report
    assert report.splitlines()[-1] == f'deploy weights: {result.deploy_path}'


def test_accuracy_benchmark_quick_run_keeps_bfloat16_within_a_point(one_epoch, capsys):
    """benchmarks/deploy_accuracy.py on the quick start's checkpoint: every path of it runs,
    and bfloat16 autocast costs at most one point (3.6 of the 360 images) of float32's top-1.
    (int8 and QAT have their own accuracy tests in tests/deployment/test_quantization.py.)"""
    result, work_dir = one_epoch
    benchmark = load_script('benchmarks/deploy_accuracy.py')

    rows = benchmark.main(['--checkpoint', str(work_dir / 'epoch_1.pth'), '--quick'])

    # the same model on the same images (the quick start counts in float32)
    assert rows['float32'] == pytest.approx(result.train_accuracy, abs=1e-4)
    assert abs(rows['bfloat16 autocast'] - rows['float32']) <= 1.0
    assert len(rows) == 5 and all(0 <= accuracy <= 100 for accuracy in rows.values())
    table = capsys.readouterr().out
    assert '| QAT fine-tuning (4 iterations), fake-quantized |' in table
    assert f'| bfloat16 autocast | {rows["bfloat16 autocast"]:.2f} |' in table


def fake_result(**changes):
    result = QuickStartResult(
        epochs=3, num_val=360, train_accuracy=97.5, deploy_accuracy=97.5, max_abs_diff=1e-6,
        train_params=2, deploy_params=1, train_flops=2, deploy_flops=1, train_speed=1.0,
        deploy_speed=2.0, plot_path='plot.png', deploy_path='deploy.pth')
    return dataclasses.replace(result, **changes)


@pytest.mark.parametrize('result, passes', [
    (fake_result(), True),
    (fake_result(train_accuracy=89.0, deploy_accuracy=89.0), False),
    (fake_result(deploy_accuracy=97.2), False),
])
def test_cli_exit_status_follows_the_verdict(monkeypatch, capsys, result, passes):
    tool = load_tool('quick_start.py')
    calls = []
    monkeypatch.setattr(tool, 'run_quick_start',
                        lambda **kwargs: calls.append(kwargs) or result)
    if passes:
        tool.main(['--epochs', '2', '--work-dir', 'somewhere'])
    else:
        with pytest.raises(SystemExit, match='FAILED'):
            tool.main([])
    assert calls[0]['epochs'] == (2 if passes else 3)
    assert 'speed-up of the deploy form: 2.00x' in capsys.readouterr().out


def test_cli_rejects_zero_epochs(capsys):
    with pytest.raises(SystemExit):
        load_tool('quick_start.py').main(['--epochs', '0'])
    assert 'must be at least 1' in capsys.readouterr().err
