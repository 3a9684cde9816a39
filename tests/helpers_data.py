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


IMAGENET_CLASSES = ('n01440764', 'n01443537')  # ImageNet's first two synsets


def make_imagenet(root, images_per_class=2):
    """MMPretrain's ImageNet layout: ``train/<synset>/*.JPEG`` and ``val/*.JPEG``, listed with
    their labels in ``meta/train.txt`` and ``meta/val.txt``; small random images of two
    classes."""
    rng = np.random.default_rng(0)
    (root / 'meta').mkdir(parents=True)
    (root / 'val').mkdir()
    lists = {'train': [], 'val': []}
    for label, synset in enumerate(IMAGENET_CLASSES):
        (root / 'train' / synset).mkdir(parents=True)
        for index in range(images_per_class):
            for split in ('train', 'val'):
                image = rng.integers(0, 156, (96, 128, 3), dtype=np.uint8)
                image[..., label] += 100
                name = (f'{synset}/{synset}_{index}.JPEG' if split == 'train' else
                        f'ILSVRC2012_val_{label * images_per_class + index + 1:08d}.JPEG')
                Image.fromarray(image).save(root / split / name, format='JPEG')
                lists[split].append(f'{name} {label}')
    for split, lines in lists.items():
        (root / 'meta' / f'{split}.txt').write_text('\n'.join(lines) + '\n')
    return root


def face_image(rng, identity):
    """A 112x112 aligned 'face': an identity-specific colour pattern plus noise."""
    base = np.zeros((112, 112, 3), np.uint8)
    base[:, :, identity % 3] = 60 + 40 * identity
    base[identity * 20:identity * 20 + 30] = 200
    return np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)


def make_face_folders(root, identities=4, images=3):
    """``<root>/id<k>/<i>.jpg`` and, beside them, the lists the face docs describe:
    ``pairs.txt`` (``image_a image_b issame``), ``probe.txt`` (``image identity``) and
    ``distractors.txt`` (``image``), paths relative to ``root``."""
    rng = np.random.default_rng(0)
    for identity in range(identities):
        (root / f'id{identity}').mkdir(parents=True)
        for index in range(images):
            Image.fromarray(face_image(rng, identity)).save(root / f'id{identity}' / f'{index}.jpg')
    pairs = [f'id{k % identities}/0.jpg id{(k + k % 2) % identities}/1.jpg {1 - k % 2}'
             for k in range(12)]  # the protocol's 10 folds need 10 pairs or more
    (root / 'pairs.txt').write_text('\n'.join(pairs) + '\n')
    probe = [f'id{k}/{i}.jpg {k}' for k in range(identities) for i in range(2)]
    (root / 'probe.txt').write_text('\n'.join(probe) + '\n')
    (root / 'distractors.txt').write_text('id0/2.jpg\nid1/2.jpg\n')
    return root
