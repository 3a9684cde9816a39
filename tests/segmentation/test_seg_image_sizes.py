"""Test images of other sizes than a RepMLP backbone was built for, through tools/test.py:
slide inference on an image smaller than the crop gives a map of the image's size, and whole
inference of a larger image without windows is one error line naming larger_input."""
import numpy as np
import pytest
import torch
from helpers_tools import TINY_SEG_CONFIG, load_tool
from PIL import Image

from mmrepmlp.apis import load_model


def write_images(root, size):
    """``img/0.png`` and ``ann/0.png`` of ``size`` (h, w)."""
    for folder in ('img', 'ann'):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / 'img' / '0.png')
    Image.fromarray(rng.integers(0, 4, size, dtype=np.uint8)).save(root / 'ann' / '0.png')


def config(path, data_root, test_cfg):
    loader = f'dict(dataset=dict(data_root={str(data_root)!r}))'
    path.write_text(f'_base_ = [{TINY_SEG_CONFIG!r}]\nval_dataloader = {loader}\n'
                    f'test_dataloader = {loader}\nmodel = dict(test_cfg={test_cfg})\n')
    return str(path)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('seg_sizes') / 'tiny_seg.pth'
    torch.save({'state_dict': load_model(TINY_SEG_CONFIG)[0].state_dict()}, path)
    return str(path)


def test_slide_on_an_image_smaller_than_the_crop(checkpoint, tmp_path):
    write_images(tmp_path / 'data', (48, 100))  # crops 64: the image is lower than one
    slide = config(tmp_path / 'slide.py', tmp_path / 'data',
                   "dict(mode='slide', crop_size=(64, 64), stride=(40, 40))")

    load_tool('test.py').main([slide, checkpoint, '--work-dir', str(tmp_path / 'work'),
                               '--out', str(tmp_path / 'maps')])

    assert np.array(Image.open(tmp_path / 'maps' / '0.png')).shape == (48, 100)


def test_whole_image_larger_than_the_backbone_without_windows(checkpoint, tmp_path):
    write_images(tmp_path / 'data', (80, 120))
    whole = config(tmp_path / 'whole.py', tmp_path / 'data', "dict(mode='whole')")

    with pytest.raises(SystemExit) as refused:
        load_tool('test.py').main([whole, checkpoint, '--work-dir', str(tmp_path / 'work')])

    error = refused.value.code
    assert error.startswith('error: ') and '\n' not in error
    assert 'img_size (64, 64)' in error and 'larger than img_size' in error
    assert "larger_input='windows'" in error
