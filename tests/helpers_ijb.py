"""A generated IJB-B/IJB-C set in insightface's layout: 'faces' drawn on the 112x112 template
(an identity's colours and a bright blob on each of the five template landmarks), placed in
larger loose crops by random similarity transforms whose landmarks the meta files list."""
import os

import cv2
import numpy as np

from mmrepmlp.datasets.face import ARCFACE_TEMPLATE

LOOSE_SIZE = 160
IMAGES_PER_MEDIA = (2, 1)  # each template: a media of two images (video frames), a photo


def template_face(identity, size=112):
    """A BGR face: background and stripes of the identity, a Gaussian blob (sigma 1.5) centred
    on each template landmark."""
    face = np.zeros((size, size, 3), np.float32)
    face[..., identity % 3] = 40 + 30 * identity
    face[10 + 8 * identity:20 + 8 * identity, :, (identity + 1) % 3] = 90
    ys, xs = np.mgrid[:size, :size]
    for x, y in ARCFACE_TEMPLATE:
        face += 255 * np.exp(-((xs - x)**2 + (ys - y)**2) / (2 * 1.5**2))[..., None]
    return np.clip(face, 0, 255).astype(np.uint8)


def random_placement(rng):
    """A ``2 x 3`` similarity (rotation up to 30 degrees, scale 0.8 to 1.2) from the 112x112
    face into the middle of a loose crop."""
    angle, scale = np.deg2rad(rng.uniform(-30, 30)), rng.uniform(0.8, 1.2)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)],
                                 [np.sin(angle), np.cos(angle)]])
    shift = LOOSE_SIZE / 2 + rng.uniform(-8, 8, 2) - rotation @ np.array([56.0, 56.0])
    return np.hstack([rotation, shift[:, None]])


def loose_crop(rng, identity):
    """``(image, landmarks (5, 2))``: a template face placed in a loose crop, and where its
    landmarks went."""
    placement = random_placement(rng)
    image = cv2.warpAffine(template_face(identity), placement, (LOOSE_SIZE, LOOSE_SIZE),
                           borderValue=0)
    landmarks = ARCFACE_TEMPLATE @ placement[:, :2].T + placement[:, 2]
    return image, landmarks


def write_ijb_set(root, target='ijbc', identities=3, templates_per_identity=2, seed=0):
    """Write ``root/loose_crop`` and ``root/meta/<target>_*.txt``; every pair of templates is a
    pair (label 1 for the same identity). Returns the number of images."""
    rng = np.random.default_rng(seed)
    os.makedirs(root / 'loose_crop', exist_ok=True)
    os.makedirs(root / 'meta', exist_ok=True)
    landmark_lines, template_lines, owners = [], [], []
    media = 0
    for identity in range(identities):
        for _ in range(templates_per_identity):
            template = len(owners) + 1
            owners.append(identity)
            for count in IMAGES_PER_MEDIA:
                media += 1
                for _ in range(count):
                    name = f'{len(landmark_lines) + 1}.jpg'
                    image, landmarks = loose_crop(rng, identity)
                    cv2.imwrite(str(root / 'loose_crop' / name), image,
                                [cv2.IMWRITE_JPEG_QUALITY, 98])
                    points = ' '.join(f'{v:.4f}' for v in landmarks.ravel())
                    landmark_lines.append(f'{name} {points} {rng.uniform(0.5, 1.0):.4f}')
                    template_lines.append(f'{name} {template} {media}')
    pair_lines = [f'{a + 1} {b + 1} {int(owners[a] == owners[b])}'
                  for a in range(len(owners)) for b in range(a + 1, len(owners))]
    for suffix, lines in (('name_5pts_score', landmark_lines), ('face_tid_mid', template_lines),
                          ('template_pair_label', pair_lines)):
        (root / 'meta' / f'{target}_{suffix}.txt').write_text('\n'.join(lines) + '\n')
    return len(landmark_lines)
