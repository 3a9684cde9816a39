"""The equivalence demo and the block speed benchmark run and report what they promise."""
import re

from helpers_tools import load_script

from mmrepmlp.reparam.__main__ import DEMO_BLOCKS
from mmrepmlp.reparam.__main__ import main as demo_main


def test_demo_prints_small_differences_for_every_block(capsys):
    demo_main(['--batch', '1', '--rounds', '1'])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if re.search(r' float(32|64) ', line)]
    assert len(rows) == 2 * len(DEMO_BLOCKS)
    for row in rows:
        dtype, max_abs, max_rel = re.search(r' (float\d+) +(\S+) +(\S+)', row).groups()
        assert float(max_rel) <= (1e-5 if dtype == 'float32' else 1e-10), row
        if dtype == 'float32':
            assert re.search(r'\d+\.\d+x$', row), row  # the deploy speedup is reported


def test_benchmark_quick_mode_measures_every_shape(capsys):
    module = load_script('benchmarks/block_speed.py')
    rows = module.main(['--quick'])
    assert rows.keys() == module.SHAPES.keys()
    for seconds in rows.values():
        assert set(seconds) == {'deploy matmul', 'deploy conv', 'train per_branch',
                                'train fused', 'train conv_fc3', 'train no_local',
                                'train convs_only'}
        assert all(s > 0 for s in seconds.values())
    assert 'batch 2' in capsys.readouterr().out
