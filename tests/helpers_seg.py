"""Shared by the segmentation tests: a generated data set in Cityscapes' layout."""
import numpy as np
from PIL import Image

IMAGE = (128, 256)  # (h, w) of the generated images: larger than the tests' crops


def make_cityscapes(root):
    """``leftImg8bit/{train,val}/city/*_leftImg8bit.png`` and the matching
    ``gtFine/.../*_gtFine_labelTrainIds.png`` (19 classes, 255 ignored)."""
    rng = np.random.default_rng(0)
    for split, count in (('train', 3), ('val', 2)):
        for folder in ('leftImg8bit', 'gtFine'):
            (root / folder / split / 'city').mkdir(parents=True)
        for index in range(count):
            name = f'city_{index:06d}_000019'
            labels = (np.arange(IMAGE[1])[None, :] * 19 // IMAGE[1]).repeat(IMAGE[0], 0)
            labels[:8] = 255
            image = rng.integers(0, 256, (*IMAGE, 3), dtype=np.uint8)
            image[..., 0] = labels.clip(0, 18) * 12  # the class shows in the red channel
            Image.fromarray(image).save(root / 'leftImg8bit' / split / 'city' /
                                        f'{name}_leftImg8bit.png')
            Image.fromarray(labels.astype(np.uint8)).save(
                root / 'gtFine' / split / 'city' / f'{name}_gtFine_labelTrainIds.png')
    return root
