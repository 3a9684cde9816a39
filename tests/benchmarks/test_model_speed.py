"""benchmarks/model_speed.py: its CI mode runs end to end and prints the ratio lines.

No timing is asserted (timings belong to the benchmark's own report); the test checks that
every measurement is produced and is sane.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_tools import load_script

SCRIPT = Path(__file__).resolve().parents[2] / 'benchmarks' / 'model_speed.py'


def table_row(output, name):
    match = re.search(rf'^\| {re.escape(name)} \|(.*)\|$', output, re.M)
    assert match, f'no table row for {name} in:\n{output}'
    return [cell.strip() for cell in match.group(1).split('|')]


def test_quick_run_prints_every_measurement_and_the_ratios():
    result = subprocess.run([sys.executable, str(SCRIPT), '--quick', '--breakdown'],
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    base = table_row(out, 'res50-base')
    assert base[2] == '1.00x' and base[4] == '1.00x'
    light = table_row(out, 'res50-light-g8')
    params, images_per_s, speed_ratio, train_ms, train_ratio = light[:5]
    deploy_mib, train_mib, switch_s = (float(v) for v in light[5:8])
    assert float(params.rstrip('M')) > float(base[0].rstrip('M'))  # RepMLP adds FC weights
    assert float(images_per_s) > 0 and float(train_ms) > 0 and switch_s > 0
    # Training holds weights, gradients, momentum and activations: more than inference.
    assert 0 < deploy_mib < train_mib
    ratio = re.search(r'^ratio res50-light-g8: deploy speed (\S+)x, training step time (\S+)x '
                      r'ResNet-50; switch_to_deploy (\S+) s$', out, re.M)
    assert ratio, out
    assert ratio.group(1) == speed_ratio.rstrip('x') and ratio.group(2) == train_ratio.rstrip('x')
    reference = re.search(r'^# reference: torchvision resnet50 .* runs at (\S+) img/s; '
                          r'res50-base .* at (\S+)x its speed$', out, re.M)
    assert reference and float(reference.group(1)) > 0 and float(reference.group(2)) > 0, out
    # The breakdown table follows, one row per model: whole, replaced blocks, rest, RepMLP
    # layers, their FC3 matmuls alone, the matmuls' rate and the ceiling they set.
    breakdown = out[out.index('# deploy time breakdown'):]
    base_whole, base_replaced, _, *base_repmlp = table_row(breakdown, 'res50-base')
    # timings of one quick round: positive, not ordered (a shared machine can reorder them)
    assert float(base_whole) > 0 and float(base_replaced) > 0 and base_repmlp == ['-'] * 4
    light_whole, light_replaced, _, light_repmlp, fc3_ms, gmacs, ceiling = table_row(
        breakdown, 'res50-light-g8')
    assert float(light_whole) > 0 and float(light_replaced) > 0
    float(light_repmlp)  # a number (a difference of two timings: its sign is not asserted)
    assert float(fc3_ms) > 0 and float(gmacs) > 0
    # the ceiling sums differences of timings: a ratio, or 'noisy' where they left none
    assert ceiling == 'noisy' or float(ceiling.rstrip('x')) > 0, breakdown
    assert re.search(r'^# for scale, in the same rounds: .* runs at \d+ GMAC/s$', breakdown,
                     re.M), breakdown


@pytest.mark.parametrize('argv, message', [
    (['--amp'], '--amp needs --device cuda'),
    (['--presets', 'res50-huge'], 'unknown presets'),
    (['--batch', '0'], 'must be >= 1'),
])
def test_bad_options_name_the_problem(argv, message, capsys):
    script = load_script('benchmarks/model_speed.py')
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('base_replaced, light, row', [
    # ResNet-50: 300 ms, 100 of them in the replaced blocks (rest 200). The RepMLP model's
    # replaced blocks take 60 ms, 30 of them in RepMLP layers whose FC3 matmuls alone take
    # 20: with the rest at 200 ms, free non-matmul work would give 300 / (200 + 60 - 30 + 20).
    # Its own rest (215 ms) is noise of the run and does not enter the ceiling.
    (0.100, dict(whole=0.275, replaced=0.060, repmlp=0.030, fc3=0.020),
     ['275.0', '60.0', '215.0', '30.0', '20.0', '75', '1.20x']),
    # ResNet-50's replaced blocks timed alone (350 ms) outlast the whole network: its rest is
    # -50 ms, and -50 + 20 - 10 + 5 ms is no time a ratio can be taken over.
    (0.350, dict(whole=0.275, replaced=0.020, repmlp=0.010, fc3=0.005),
     ['275.0', '20.0', '255.0', '10.0', '5.0', '300', 'noisy']),
])
def test_breakdown_ceiling_counts_only_fc3_matmuls_or_says_noisy(
        base_replaced, light, row, capsys):
    split = {
        'res50-base': dict(whole=0.300, replaced=base_replaced, repmlp=None, fc3=None,
                           fc3_macs=None),
        'res50-light-g8': dict(**light, fc3_macs=1.5e9),
    }
    script = load_script('benchmarks/model_speed.py')
    script.print_breakdown(split, 80e9, script.parse_args(['--breakdown']))
    out = capsys.readouterr().out
    assert table_row(out, 'res50-light-g8') == row
    assert 'runs at 80 GMAC/s' in out
