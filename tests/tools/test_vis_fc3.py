"""tools/visualizations/vis_fc3.py: the paper's Fig. 5 as a PNG, and the weights behind it."""
import struct

import pytest
import torch
from helpers_tools import TINY_CONFIG, load_tool

from mmrepmlp.apis import load_model
from mmrepmlp.utils.errors import InputError
from mmrepmlp.visualization import fc3_point_weights, find_repmlp_block

BLOCK = 'backbone.stage2.1.repmlp'  # c3 of the tiny model: 8x8 input, 4x4 partitions, K=1,3


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    model, _ = load_model(TINY_CONFIG)
    path = tmp_path_factory.mktemp('vis') / 'tiny.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def png_size(path):
    """(width, height) from the PNG signature and IHDR chunk; fails for anything else."""
    data = open(path, 'rb').read(24)
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR'
    return struct.unpack('>II', data[16:24])


def test_writes_a_png(checkpoint, tmp_path):
    out = tmp_path / 'figs' / 'fc3.png'

    load_tool('visualizations/vis_fc3.py').main(
        [TINY_CONFIG, checkpoint, '--block', BLOCK, '--out', str(out), '--point', '1', '2'])

    width, height = png_size(out)
    assert 400 <= width <= 2000 and 200 <= height <= 1200
    assert out.stat().st_size > 5000  # two panels with colour bars, not an empty canvas
    assert [p.name for p in out.parent.iterdir()] == ['fc3.png']  # no temporary left


def test_merging_changes_only_the_largest_kernel_window():
    model, _ = load_model(TINY_CONFIG)
    block = find_repmlp_block(model, BLOCK)

    before, after = fc3_point_weights(block, point=(0, 1), out_channel=3, in_channel=1)

    assert before.shape == after.shape == (4, 4)
    changed = (after - before).abs() > 1e-7
    # K = 3 around (0, 1): rows 0-1 (row -1 is padding), columns 0-2
    window = torch.zeros(4, 4, dtype=torch.bool)
    window[0:2, 0:3] = True
    assert changed[window].all() and not changed[~window].any()


def test_wrong_block_lists_the_blocks():
    model, _ = load_model(TINY_CONFIG)

    with pytest.raises(InputError, match=r'not a RepMLP block .*backbone\.stage3\.1\.repmlp'):
        find_repmlp_block(model, 'backbone.stage2.1')
