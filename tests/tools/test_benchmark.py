"""tools/analysis_tools/benchmark.py: two models timed side by side, with a ratio line."""
import re

from helpers_tools import TINY_CONFIG, run_tool, write_config

from mmrepmlp.apis.benchmark import SpeedResult, format_results

RATIO_LINE = re.compile(r'^ratio (.+) / (.+): ([0-9.]+)x images/s$', re.MULTILINE)


def test_vs_prints_a_ratio_line(tmp_path):
    # The same tiny network with plain bottlenecks only (no RepMLP) as the baseline.
    baseline = write_config(tmp_path / 'tiny_base.py', tmp_path,
                            extra="model = dict(backbone=dict(arch=dict(block_type='base')))\n")

    result = run_tool(['analysis_tools/benchmark.py', TINY_CONFIG, '--deploy', '--vs', baseline,
                       '--vs-deploy', '--batch', 2, '--rounds', 2, '--warmup', 1, '--device',
                       'cpu'], tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    first, second, ratio = RATIO_LINE.search(result.stdout).groups()
    # plain bottlenecks have conv-BN pairs to fuse too
    assert (first, second) == ('tiny_repmlp_resnet (deploy)', 'tiny_base (deploy)')
    assert float(ratio) > 0
    assert 'tiny_repmlp_resnet (deploy)' in result.stdout.splitlines()[-3]
    # what was asked only: the machine lines and the table, no weight-initialization log
    assert len((result.stdout + result.stderr).splitlines()) < 15, result.stdout[:2000]


def test_ratio_is_images_per_second_of_first_over_second():
    results = [SpeedResult('a', (3, 8, 8), 10, latency_s=0.5, batch=4),
               SpeedResult('b', (3, 8, 8), 10, latency_s=0.25, batch=4)]

    table = format_results(results)

    assert RATIO_LINE.search(table).groups() == ('a', 'b', '0.500')
    assert ' 8.0 ' in table.splitlines()[1] and ' 500.00' in table.splitlines()[1]
