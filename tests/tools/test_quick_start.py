"""The quick start (`make demo`): a short real run on the bundled digits, and the CLI's verdict."""
import dataclasses

import pytest
import torch
from helpers_tools import load_tool

from mmrepmlp.apis.quick_start import QuickStartResult, format_report, run_quick_start
from mmrepmlp.utils.checkpoint import safe_load


def test_one_epoch_trains_converts_and_reports(tmp_path):
    result = run_quick_start(epochs=1, work_dir=str(tmp_path), speed_rounds=1)

    assert result.num_val == 360
    assert result.deploy_accuracy == result.train_accuracy
    assert result.deploy_accuracy > 40  # chance is 10%
    assert result.max_abs_diff < 1e-3
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
