"""tools/analysis_tools/face_identification.py: rank-1 from saved embedding files, in-process
and as a command, and one-line errors for bad input."""
import re

import numpy as np
import pytest
import torch
from helpers_tools import load_tool, run_tool

from mmrepmlp.evaluation import identification_rank1
from mmrepmlp.utils.errors import InputError

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


def write_bytes(path, data):
    path.write_bytes(data)
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
    (lambda root: ['--probe', str(root / 'empty.npz')],
     r'--probe .*empty\.npz is empty \(0 bytes\)'),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--distractors', str(root / 'empty.npy')],
     r'--distractors .*empty\.npy is empty'),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--memory-mb', 'inf'],
     '--memory-mb must be a positive number of MiB, got inf'),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--memory-mb', 'nan'],
     '--memory-mb must be a positive number of MiB, got nan'),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--memory-mb', '-5'],
     '--memory-mb must be a positive number of MiB, got -5'),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--device', 'nonsense'],
     '--device nonsense is not a torch device'),
    (lambda root: ['--probe', write_npz(root / 'p.npz', embeddings=np.ones((0, 16)),
                                        labels=np.ones(0, int))],
     r'the probe holds no embedding \(0 rows\)'),
    (lambda root: ['--probe', str(root / 'probe.npz'), '--gallery',
                   write_npz(root / 'g.npz', embeddings=np.ones((2, 8)), labels=np.arange(2))],
     'the gallery embeddings have 8 dimensions and the probe embeddings 16'),
    (lambda root: ['--config', 'c.py', '--checkpoint', 'c.pth',
                   '--probe', write_bytes(root / 'latin1.txt', 'é.jpg 1\n'.encode('latin1'))],
     r'the image list .*latin1\.txt is not UTF-8 text \(byte 0\)'),
    (lambda root: ['--config', 'c.py', '--checkpoint', 'c.pth',
                   '--probe', write_bytes(root / 'list.txt', 'a.jpg ²\n'.encode())],
     r"list\.txt line 1: 'a\.jpg ²' is not \"image_path label\""),
])
def test_bad_input_is_one_line(features, make_args, message):
    root, _ = features
    (root / 'garbage.npy').write_bytes(b'\x93NUMPY garbage')
    (root / 'empty.npz').write_bytes(b'')
    (root / 'empty.npy').write_bytes(b'')

    with pytest.raises(SystemExit) as exited:
        load_tool(TOOL).main(make_args(root) + ['--backend', 'numpy'])

    error = str(exited.value.code)
    assert error.startswith('error: ') and '\n' not in error
    assert re.search(message, error), error


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a GPU')
def test_cuda_device_without_a_gpu_is_one_line(features):
    root, _ = features

    with pytest.raises(SystemExit) as exited:
        load_tool(TOOL).main(['--probe', str(root / 'probe.npz'), '--backend', 'torch',
                              '--device', 'cuda'])

    assert str(exited.value.code) == ('error: --device cuda: torch.cuda.is_available() is False '
                                      'on this machine; pass --device cpu (or leave it out)')


def test_a_finite_distractor_of_huge_magnitude_is_a_valid_direction(features):
    root, _ = features
    probe = np.load(root / 'probe.npz')
    distractors = np.load(root / 'distractors.npy')
    huge = np.concatenate([distractors, 3e38 * np.sign(probe['embeddings'][:1])])

    result = identification_rank1(probe['embeddings'], probe['labels'], huge, backend='numpy',
                                  chunk_size=64)

    expected = identification_rank1(probe['embeddings'], probe['labels'],
                                    np.concatenate([distractors, np.sign(probe['embeddings'][:1])]),
                                    backend='numpy', chunk_size=64)
    assert (result.num_correct, result.num_distractors) == (expected.num_correct, 301)


def test_an_empty_image_in_a_list_is_named(tmp_path):
    from helpers_tools import REPO_ROOT

    from mmrepmlp.apis import load_config
    from mmrepmlp.apis.face import embed_images

    cfg = load_config(f'{REPO_ROOT}/configs/repmlp_face/repmlp-faceres50_8xb64_ms1mv2.py')
    (tmp_path / 'empty.jpg').write_bytes(b'')

    with pytest.raises(InputError, match=r'image .*empty\.jpg is empty \(0 bytes\)'):
        embed_images(None, cfg, [str(tmp_path / 'empty.jpg')])  # refused before the model runs
