"""IJB-B and IJB-C 1:1 verification sets in the layout insightface distributes them:

- ``loose_crop/``: the images;
- ``meta/<target>_name_5pts_score.txt``: per image ``name x1 y1 ... x5 y5 score``, its five
  landmarks (eyes, nose, mouth corners) and the face detector's score;
- ``meta/<target>_face_tid_mid.txt``: per image, in the same order, ``name template media``;
- ``meta/<target>_template_pair_label.txt``: per pair ``template_1 template_2 label`` (1: the
  same person).

``target`` is ``ijbb`` or ``ijbc``.
"""
import os.path as osp
from dataclasses import dataclass

import numpy as np

from ...utils.errors import InputError

IJB_TARGETS = ('IJBB', 'IJBC')
IMAGE_FOLDER = 'loose_crop'


@dataclass
class IJBMeta:
    """What the meta files of one IJB set say.

    Attributes:
        names (list[str]): the image files, relative to ``loose_crop/``.
        landmarks (np.ndarray): ``(N, 5, 2)`` float32 (x, y) of each image's landmarks.
        detector_scores (np.ndarray): ``(N,)`` float32.
        templates (np.ndarray): ``(N,)`` int64 the template of each image.
        medias (np.ndarray): ``(N,)`` int64 the media (photo or video) of each image.
        pairs (np.ndarray): ``(P, 2)`` int64 template ids.
        labels (np.ndarray): ``(P,)`` int8, 1 for pairs of the same person.
    """
    names: list
    landmarks: np.ndarray
    detector_scores: np.ndarray
    templates: np.ndarray
    medias: np.ndarray
    pairs: np.ndarray
    labels: np.ndarray


def ijb_files(root, target):
    """``{'images', 'landmarks', 'templates', 'pairs'}``: the folder and files of ``target``."""
    if str(target).upper() not in IJB_TARGETS:
        raise InputError(f'IJB target {target!r} is not one of {IJB_TARGETS}')
    prefix = osp.join(root, 'meta', str(target).lower())
    return dict(images=osp.join(root, IMAGE_FOLDER),
                landmarks=f'{prefix}_name_5pts_score.txt',
                templates=f'{prefix}_face_tid_mid.txt',
                pairs=f'{prefix}_template_pair_label.txt')


def _lines(path):
    try:
        with open(path) as f:
            return [line.split() for line in f if line.strip()]
    except OSError as error:
        raise InputError(f'cannot read {path} ({error.strerror}); the IJB root must hold '
                         f'{IMAGE_FOLDER}/ and meta/ as insightface distributes them') from error


def _bad_line(path, number, fields, form):
    return InputError(f'{path} line {number}: {" ".join(fields)!r} is not "{form}"')


def read_landmarks(path):
    """``(names, landmarks (N, 5, 2), detector scores (N,))`` of a ``*_name_5pts_score.txt``."""
    names, values = [], []
    for number, fields in enumerate(_lines(path), start=1):
        try:
            numbers = [float(field) for field in fields[1:]]
        except ValueError:
            numbers = []
        if len(numbers) != 11:
            raise _bad_line(path, number, fields, 'name x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 score')
        names.append(fields[0])
        values.append(numbers)
    values = np.array(values, dtype=np.float32).reshape(-1, 11)
    return names, values[:, :10].reshape(-1, 5, 2), values[:, 10]


def read_templates(path):
    """``(names, templates (N,), medias (N,))`` of a ``*_face_tid_mid.txt``."""
    names, values = [], []
    for number, fields in enumerate(_lines(path), start=1):
        if len(fields) != 3 or not all(_is_int(field) for field in fields[1:]):
            raise _bad_line(path, number, fields, 'name template media')
        names.append(fields[0])
        values.append((int(fields[1]), int(fields[2])))
    values = np.array(values, dtype=np.int64).reshape(-1, 2)
    return names, values[:, 0], values[:, 1]


def _is_int(text):
    return text.lstrip('-').isdigit()


def read_pairs(path):
    """``(pairs (P, 2), labels (P,))`` of a ``*_template_pair_label.txt`` (IJB-C has about 15.7M
    lines: parsed by numpy)."""
    try:
        with open(path, 'rb') as f:
            text = f.read().rstrip()
        values = np.fromstring(text, dtype=np.int64, sep=' ') if text else np.empty(0, np.int64)
    except OSError as error:
        raise InputError(f'cannot read {path} ({error.strerror}); the IJB root must hold '
                         f'{IMAGE_FOLDER}/ and meta/ as insightface distributes them') from error
    except ValueError as error:  # a token that is not an integer
        raise InputError(f'{path} holds something other than integers; every line must be '
                         '"template_1 template_2 label"') from error
    lines = text.count(b'\n') + 1 if text else 0
    if values.size != 3 * lines:
        raise InputError(f'{path}: {values.size} integers on {lines} lines; every line must be '
                         '"template_1 template_2 label"')
    values = values.reshape(-1, 3)
    if not np.isin(values[:, 2], (0, 1)).all():
        raise InputError(f'{path}: labels must be 0 or 1 (the third column)')
    return values[:, :2], values[:, 2].astype(np.int8)


def read_ijb_meta(root, target):
    """The :class:`IJBMeta` of ``target`` (``'IJBB'`` or ``'IJBC'``) under ``root``.

    Raises:
        InputError: a file is missing or malformed, the two per-image files list different
            images, or a pair names a template without images.
    """
    files = ijb_files(root, target)
    names, landmarks, scores = read_landmarks(files['landmarks'])
    template_names, templates, medias = read_templates(files['templates'])
    if template_names != names:
        first = next((i for i, (a, b) in enumerate(zip(names, template_names)) if a != b),
                     min(len(names), len(template_names)))
        raise InputError(f'{files["landmarks"]} and {files["templates"]} list other images '
                         f'(first difference at line {first + 1}); both must list the same '
                         'images in the same order')
    if not names:
        raise InputError(f'{files["landmarks"]} lists no image')
    pairs, labels = read_pairs(files['pairs'])
    unknown = np.setdiff1d(pairs, templates)
    if unknown.size:
        listed = ', '.join(map(str, unknown[:3])) + (' ...' if unknown.size > 3 else '')
        raise InputError(f'{files["pairs"]} names templates without images in '
                         f'{files["templates"]} ({listed}); the meta files do not belong '
                         'together')
    return IJBMeta(names, landmarks, scores, templates, medias, pairs, labels)
