"""IJB-B/IJB-C meta files and the 5-point alignment on a generated set: aligned faces put their
landmarks on the ArcFace template, and malformed meta files are refused naming file and line."""
import cv2
import numpy as np
import pytest
from helpers_ijb import loose_crop, write_ijb_set

from mmrepmlp.datasets.face import (
    ARCFACE_TEMPLATE,
    align_face,
    five_landmarks,
    read_ijb_meta,
    similarity_transform,
)
from mmrepmlp.utils.errors import InputError

WINDOW = 5  # pixels around a template landmark where its blob is looked for


def blob_centres(face):
    """The intensity-weighted centre of the blob near each template landmark."""
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).astype(np.float64)
    centres = []
    for x, y in np.round(ARCFACE_TEMPLATE).astype(int):
        patch = gray[y - WINDOW:y + WINDOW + 1, x - WINDOW:x + WINDOW + 1]
        patch = np.clip(patch - np.median(patch), 0, None)  # the face's background removed
        ys, xs = np.mgrid[y - WINDOW:y + WINDOW + 1, x - WINDOW:x + WINDOW + 1]
        centres.append([(xs * patch).sum() / patch.sum(), (ys * patch).sum() / patch.sum()])
    return np.array(centres)


@pytest.mark.parametrize('seed', range(4))
def test_aligned_landmarks_land_on_the_template(seed):
    image, landmarks = loose_crop(np.random.default_rng(seed), identity=seed % 3)

    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    moved = landmarks @ matrix[:, :2].T + matrix[:, 2]
    aligned = align_face(image, landmarks)

    assert aligned.shape == (112, 112, 3)
    assert np.abs(moved - ARCFACE_TEMPLATE).max() <= 1e-3
    assert np.abs(blob_centres(aligned) - ARCFACE_TEMPLATE).max() <= 1.0


def test_similarity_transform_is_the_least_squares_one():
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 100, (5, 2))
    target = rng.uniform(0, 100, (5, 2))
    matrix = similarity_transform(source, target)
    a, b = matrix[0, 0], matrix[1, 0]

    assert np.isclose(matrix[1, 1], a) and np.isclose(matrix[0, 1], -b)  # rotation and scale

    def residual(a, b, tx, ty):
        moved = source @ np.array([[a, -b], [b, a]]).T + [tx, ty]
        return ((moved - target)**2).sum()

    best = residual(a, b, *matrix[:, 2])
    for step in rng.normal(0, 1e-3, (50, 4)):
        assert residual(a + step[0], b + step[1], *(matrix[:, 2] + step[2:])) >= best


def test_mirrored_landmarks_are_rotated_not_reflected():
    mirrored = ARCFACE_TEMPLATE * [-1, 1]  # a reflection would fit them exactly

    matrix = similarity_transform(mirrored, ARCFACE_TEMPLATE)

    assert np.linalg.det(matrix[:, :2]) > 0


def test_68_landmarks_reduce_to_eye_centres_nose_and_mouth_corners():
    points = np.zeros((68, 2), np.float32)
    points[36], points[39], points[42], points[45] = (10, 20), (20, 22), (40, 20), (50, 22)
    points[30], points[48], points[54] = (30, 40), (18, 60), (42, 60)

    assert five_landmarks(points).tolist() == [[15, 21], [45, 21], [30, 40], [18, 60],
                                               [42, 60]]
    with pytest.raises(ValueError, match='5 or 68'):
        five_landmarks(points[:7])


def test_meta_files_are_read_in_order(tmp_path):
    count = write_ijb_set(tmp_path, 'ijbb')

    meta = read_ijb_meta(str(tmp_path), 'IJBB')

    assert len(meta.names) == count == 18 and meta.names[:2] == ['1.jpg', '2.jpg']
    assert meta.landmarks.shape == (18, 5, 2) and meta.detector_scores.shape == (18, )
    assert meta.templates.tolist()[:6] == [1, 1, 1, 2, 2, 2]
    assert meta.medias.tolist()[:6] == [1, 1, 2, 3, 3, 4]
    assert meta.pairs.shape == (15, 2) and meta.labels.sum() == 3


@pytest.mark.parametrize('suffix, old, new, message', [
    ('name_5pts_score', '.jpg ', '.jpg x ', 'line 1'),
    ('face_tid_mid', ' 1 1\n', ' 1\n', 'name template media'),
    ('face_tid_mid', '1.jpg', 'other.jpg', 'first difference at line 1'),
    ('template_pair_label', '1 2 1', '1 2 7', 'labels must be 0 or 1'),
    ('template_pair_label', '1 2 1', '1 99 1', 'without images'),
    ('template_pair_label', '1 2 1', '1 2', 'every line must be'),
    ('template_pair_label', '1 2 1', '1 two 1', 'other than integers'),
])
def test_malformed_meta_files_are_refused(tmp_path, suffix, old, new, message):
    write_ijb_set(tmp_path, 'ijbc', identities=2)
    path = tmp_path / 'meta' / f'ijbc_{suffix}.txt'
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))

    with pytest.raises(InputError, match=message):
        read_ijb_meta(str(tmp_path), 'IJBC')


def test_missing_meta_files_name_the_layout(tmp_path):
    with pytest.raises(InputError, match='loose_crop/ and meta/'):
        read_ijb_meta(str(tmp_path), 'IJBC')
    with pytest.raises(InputError, match='not one of'):
        read_ijb_meta(str(tmp_path), 'IJBA')
