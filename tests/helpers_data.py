"""Small generated data sets in the layouts the docs describe, for the tests that run the
documented commands: MMSegmentation's Cityscapes layout, a folder of faces per identity, face
pairs, and MMPretrain's ImageNet layout."""
import numpy as np
from PIL import Image

CITYSCAPES_IMAGE = (128, 256)  # (h, w): Cityscapes' 1:2 aspect, small
CITYSCAPES_CLASSES = 19


def make_cityscapes(root, splits=(('train', 3), ('val', 2)), label_maps=True):
    """``leftImg8bit/<split>/city/*_leftImg8bit.png`` and, with ``label_maps``, the
    ``gtFine/<split>/city/*_gtFine_labelTrainIds.png`` that MMSeg's converter writes (19
    classes, 255 ignored); without them only the released ``*_gtFine_polygons.json``."""
    rng = np.random.default_rng(0)
    h, w = CITYSCAPES_IMAGE
    for split, count in splits:
        for folder in ('leftImg8bit', 'gtFine'):
            (root / folder / split / 'city').mkdir(parents=True, exist_ok=True)
        for index in range(count):
            name = f'city_{index:06d}_000019'
            labels = (np.arange(w)[None, :] * CITYSCAPES_CLASSES // w).repeat(h, 0)
            labels[:8] = 255
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            image[..., 0] = labels.clip(0, 18) * 12  # the class shows in the red channel
            Image.fromarray(image).save(root / 'leftImg8bit' / split / 'city' /
                                        f'{name}_leftImg8bit.png')
            ground_truth = root / 'gtFine' / split / 'city'
            (ground_truth / f'{name}_gtFine_polygons.json').write_text('{"objects": []}')
            if label_maps:
                Image.fromarray(labels.astype(np.uint8)).save(
                    ground_truth / f'{name}_gtFine_labelTrainIds.png')
    return root
