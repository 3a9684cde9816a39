"""tools/analysis_tools/face_ijb.py on a generated IJB-C set with a tiny RepMLP-FaceRes: the table,
the saved results, resuming from saved embedding chunks, and one error line for bad input."""
import json
import re

import numpy as np
import pytest
import torch
from helpers_ijb import write_ijb_set
from helpers_tools import REPO_ROOT, load_tool

from mmrepmlp.apis import load_model

FACE_CONFIG = f'{REPO_ROOT}/configs/repmlp_face/repmlp-faceres50_8xb64_ms1mv2-112px.py'
# RepMLP-FaceRes at a test's scale: one block per stage, the aligned faces resized to 64x64.
TINY_CONFIG = f"""_base_ = [{FACE_CONFIG!r}]
model = dict(
    backbone=dict(_delete_=True, type='RepMLPResNet', img_size=64, out_indices=(3, ),
                  arch=dict(num_blocks=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                            block_type=('base', 'bottleneck', 'bottleneck', 'base'), r=2,
                            groups=2, partition=4, local_kernels=(1, 3))),
    neck=dict(in_channels=128, in_size=2, embedding_dim=16),
    head=dict(num_classes=4, in_channels=16))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='Resize', scale=(64, 64)),
    dict(type='PackInputs', meta_keys=('sample_idx', 'set_name', 'index_in_set', 'issame'))]))
"""
CHUNK = 5  # 18 images: chunks of 5, 5, 5 and 3


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp('ijb_model')
    (root / 'tiny.py').write_text(TINY_CONFIG)
    torch.manual_seed(0)
    model = load_model(str(root / 'tiny.py'))[0]
    for seed, name in ((0, 'a.pth'), (1, 'b.pth')):
        torch.manual_seed(seed)
        state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                 for k, v in model.state_dict().items()}
        torch.save({'state_dict': state}, root / name)
    return str(root / 'tiny.py'), str(root / 'a.pth'), str(root / 'b.pth')


@pytest.fixture(scope='module')
def ijb_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('ijbc')
    write_ijb_set(root, 'ijbc')
    return root


def run(argv):
    """The tool's main in this process: ``(result, error line or None)``."""
    try:
        return load_tool('analysis_tools/face_ijb.py').main([str(a) for a in argv]), None
    except SystemExit as stop:
        return None, stop.code


def test_evaluates_saves_and_resumes(model_files, ijb_root, tmp_path, capsys):
    config, checkpoint, _ = model_files
    argv = [config, checkpoint, '--data-root', ijb_root, '--work-dir', tmp_path / 'work',
            '--chunk-size', CHUNK, '--batch-size', 4, '--num-workers', 0]

    result, error = run(argv)

    assert error is None
    out = capsys.readouterr().out
    assert 'IJBC: 18 images, 6 templates, 15 pairs' in out
    assert len(re.findall(r'embedded images', out)) == 4
    row = re.search(r'\| tiny-IJBC-N1D1F2 \| (.*) \|', out)[1].split(' | ')
    assert [float(v) for v in row] == pytest.approx(100 * result.tar, abs=0.005)
    summary = json.loads((tmp_path / 'work' / 'ijbc_N1D1F2.json').read_text())
    assert summary['positive_pairs'] == 3 and summary['negative_pairs'] == 12
    scores = np.load(tmp_path / 'work' / 'ijbc_N1D1F2.npy')
    assert scores.shape == (15, ) and np.all(np.abs(scores) <= 1 + 1e-6)
    assert (tmp_path / 'work' / 'ijbc_N1D1F2.png').stat().st_size > 0
    chunks = sorted((tmp_path / 'work' / 'embeddings').glob('chunk_*.npy'))
    assert [np.load(c).shape for c in chunks] == [(5, 16)] * 3 + [(3, 16)]

    # a chunk lost (an interrupted run): only it is embedded again, to the same embeddings
    saved = np.load(chunks[1])
    chunks[1].unlink()
    again, error = run(argv)
    out = capsys.readouterr().out
    assert error is None
    assert len(re.findall(r'embedded images', out)) == 1 and 'embedded images 5..9' in out
    assert np.allclose(np.load(chunks[1]), saved, atol=1e-5)
    assert np.allclose(np.load(tmp_path / 'work' / 'ijbc_N1D1F2.npy'), scores, atol=1e-6)

    # the other modes reuse the embeddings
    other, error = run(argv + ['--no-detector-score', '--normalize-images'])
    out = capsys.readouterr().out
    assert error is None and 'embedded images' not in out
    assert (tmp_path / 'work' / 'ijbc_N0D0F2.json').is_file()


def test_bad_input_ends_with_one_error_line(model_files, ijb_root, tmp_path):
    config, checkpoint, other_checkpoint = model_files
    base = ['--work-dir', tmp_path / 'work', '--chunk-size', CHUNK, '--num-workers', 0]

    _, error = run([config, checkpoint, '--data-root', tmp_path / 'nowhere'] + base)
    assert error.startswith('error: cannot read') and 'loose_crop/ and meta/' in error

    assert run([config, checkpoint, '--data-root', ijb_root] + base)[1] is None
    _, error = run([config, other_checkpoint, '--data-root', ijb_root] + base)
    assert error.startswith('error: the saved embeddings') and 'checkpoint_sha256' in error

    broken = tmp_path / 'broken'
    write_ijb_set(broken, 'ijbc')
    (broken / 'loose_crop' / '7.jpg').write_bytes(b'not an image')
    _, error = run([config, checkpoint, '--data-root', broken, '--work-dir', tmp_path / 'w2',
                    '--num-workers', 0])
    assert error.startswith('error: cannot read image') and '7.jpg (line 7' in error
    for message in (error, ):
        assert '\n' not in message
