"""The Digits dataset: scikit-learn's bundled digits as a registered MMPretrain dataset."""
import numpy as np
import pytest
from mmpretrain.registry import DATASETS
from sklearn.datasets import load_digits

import mmrepmlp  # noqa: F401  (registers Digits)
from mmrepmlp.datasets import Digits


def images_and_labels(dataset):
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    return np.stack([info['img'] for info in infos]), np.array([i['gt_label'] for i in infos])


def test_fixed_split_partitions_all_digits():
    train_images, train_labels = images_and_labels(DATASETS.build(dict(type='Digits')))
    val_images, val_labels = images_and_labels(Digits(split='val'))
    assert (len(train_labels), len(val_labels)) == (1437, 360)
    target = load_digits().target
    np.testing.assert_array_equal(val_labels, target[::5])
    np.testing.assert_array_equal(train_labels, np.delete(target, np.arange(0, len(target), 5)))
    assert set(train_labels) == set(val_labels) == set(range(10))
    # Held-out images are not training images.
    train_rows = {img.tobytes() for img in train_images}
    assert sum(img.tobytes() in train_rows for img in val_images) == 0


def test_images_are_upsampled_uint8_ink():
    images, _ = images_and_labels(Digits(split='val', img_size=32))
    assert images.shape == (360, 32, 32) and images.dtype == np.uint8
    raw = load_digits().images[::5]
    levels = np.round(raw * 255 / 16)
    # Bilinear 4x upsampling: the outermost 2x2 output pixels lie beyond the first input pixel
    # centre and copy it; overall the ink level is kept.
    for rows, cols, corner in ((slice(0, 2), slice(0, 2), (0, 0)),
                               (slice(30, 32), slice(30, 32), (7, 7))):
        np.testing.assert_array_equal(images[:, rows, cols],
                                      np.broadcast_to(levels[:, corner[0], corner[1], None, None],
                                                      (360, 2, 2)))
    np.testing.assert_allclose(images.mean(), levels.mean(), rtol=0.02)
    assert Digits(split='val', img_size=16).get_data_info(0)['img'].shape == (16, 16)


def test_pipeline_packs_single_channel_inputs():
    dataset = Digits(split='val', pipeline=[dict(type='PackInputs')])
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (1, 32, 32)
    assert sample['data_samples'].gt_label.item() == load_digits().target[0]
    assert dataset.metainfo['classes'] == tuple('0123456789')


@pytest.mark.parametrize('kwargs, message', [
    (dict(split='test'), "split must be one of \\('train', 'val'\\)"),
    (dict(val_interval=1), 'val_interval must be at least 2'),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Digits(**kwargs)
