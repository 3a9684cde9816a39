"""tools/analysis_tools/face_identification.py: rank-1 from saved embedding files, in-process
and as a command, and one-line errors for bad input."""
import re

import numpy as np
import pytest
from helpers_tools import load_tool, run_tool

from mmrepmlp.evaluation import identification_rank1

TOOL = 'analysis_tools/face_identification.py'


@pytest.fixture
def features(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 4)
    probe = (rng.normal(size=(5, 16))[labels] + rng.normal(size=(20, 16))).astype(np.float32)
    distractors = rng.normal(size=(300, 16)).astype(np.float32)
    np.savez(tmp_path / 'probe.npz', embeddings=probe, labels=labels)
    np.save(tmp_path / 'distractors.npy', distractors)
    np.savez(tmp_path / 'distractors.npz', embeddings=distractors)
    return tmp_path, identification_rank1(probe, labels, distractors, backend='numpy')


def reported(output):
    """``(rank-1 percent, correct, trials)`` from the tool's first line."""
    match = re.search(r'rank-1: ([\d.]+)% \((\d+) of (\d+) ', output)
    return float(match[1]), int(match[2]), int(match[3])


@pytest.mark.parametrize('distractors, budget', [
    ('distractors.npy', ['--chunk-size', '7']),
    ('distractors.npz', ['--memory-mb', '0.01']),
])
def test_reports_rank1_and_counts(features, capsys, distractors, budget):
    root, expected = features

    load_tool(TOOL).main(['--probe', str(root / 'probe.npz'), '--distractors',
                          str(root / distractors), '--backend', 'numpy'] + budget)

    output = capsys.readouterr().out
    assert reported(output) == (round(100 * expected.rank1, 2), expected.num_correct,
                                expected.num_trials)
    assert 0 < expected.num_correct < expected.num_trials
    assert 'distractors: 300' in output and '20 images of 5 identities' in output


def test_runs_as_a_command(features):
    root, expected = features

    done = run_tool([TOOL, '--probe', root / 'probe.npz', '--distractors',
                     root / 'distractors.npy', '--backend', 'torch', '--device', 'cpu'],
                    cwd=root)

    assert done.returncode == 0, done.stderr
    assert reported(done.stdout)[1:] == (expected.num_correct, expected.num_trials)


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize('make_args, message', [
    (lambda root: ['--probe', str(root / 'nope.npz')], r'--probe .*nope\.npz: no such file'),
    (lambda root: ['--probe', write_npz(root / 'p.npz', embeddings=np.ones((2, 4)))],
     r"has no array 'labels' \(it holds embeddings\)"),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--distractors',
                   write_npz(root / 'd.npz', embeddings=np.ones((3, 5)))],
     r'distractors must be an \(N, 16\) array'),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--distractors',
                   write_npz(root / 'd.npz', embeddings=np.full((3, 16), np.nan))],
     'distractors: row 0 is NaN'),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--chunk-size', '0'],
     'chunk_size must be at least 1'),
    (lambda root: ['--probe', str(root / 'garbage.npy')], 'not a readable .npy/.npz file'),
])
def test_bad_input_is_one_line(features, make_args, message):
    root, _ = features
    (root / 'garbage.npy').write_bytes(b'\x93NUMPY garbage')

    with pytest.raises(SystemExit) as exited:
        load_tool(TOOL).main(make_args(root) + ['--backend', 'numpy'])

    error = str(exited.value.code)
    assert error.startswith('error: ') and '\n' not in error
    assert re.search(message, error), error
