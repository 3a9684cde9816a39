"""tools/dataset_converters/face_pairs_to_bin.py: a verification .bin from one's own pairs, read
back by the verification set's reader exactly as insightface's files are."""
import cv2
import numpy as np
import pytest
from helpers_tools import load_tool

from mmrepmlp.datasets.face import load_verification_bin


@pytest.fixture
def pairs(tmp_path):
    """``faces/<a|b|c>.jpg`` and ``pairs.txt`` naming three pairs relative to its folder."""
    rng = np.random.default_rng(0)
    (tmp_path / 'faces').mkdir()
    for name in 'abc':
        image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / 'faces' / f'{name}.jpg'), image)
    (tmp_path / 'pairs.txt').write_text('faces/a.jpg faces/b.jpg 1\n'
                                        'faces/a.jpg faces/c.jpg 0\n\n'
                                        'faces/b.jpg faces/c.jpg 0\n')
    return tmp_path


def test_packs_pairs_the_reader_reads(pairs, capsys):
    tool = load_tool('dataset_converters/face_pairs_to_bin.py')
    tool.main([str(pairs / 'pairs.txt'), str(pairs / 'mine.bin')])

    images, issame = load_verification_bin(str(pairs / 'mine.bin'))
    files = {name: (pairs / 'faces' / f'{name}.jpg').read_bytes() for name in 'abc'}
    assert images == [files[n] for n in ('a', 'b', 'a', 'c', 'b', 'c')]
    assert issame.tolist() == [True, False, False]
    assert 'packed 3 pairs (1 same, 2 different)' in capsys.readouterr().out


@pytest.mark.parametrize('line, fragment', [
    ('faces/a.jpg faces/b.jpg yes', 'line 1'),
    ('faces/a.jpg faces/missing.jpg 1', 'missing.jpg'),
])
def test_bad_pairs_give_one_line_and_write_nothing(pairs, line, fragment):
    (pairs / 'bad.txt').write_text(line + '\n')
    tool = load_tool('dataset_converters/face_pairs_to_bin.py')
    with pytest.raises(SystemExit) as exit_info:  # a message: Python prints it, exit status 1
        tool.main([str(pairs / 'bad.txt'), str(pairs / 'bad.bin')])
    error = exit_info.value.code
    assert error.startswith('error: ') and fragment in error and '\n' not in error
    assert not (pairs / 'bad.bin').exists()
