"""IJB-B / IJB-C 1:1 template verification, as insightface evaluates it.

From the embedding of every image (the image's plus its horizontal flip's, insightface's F2):

1. image features: optionally L2-normalised (N0; insightface keeps the norm, N1, by default,
   so that blurry faces with small embeddings weigh less), optionally multiplied by the face
   detector's score (D1, the default);
2. template features: the images of a template are grouped by media (a photo, or the frames
   of one video); each media's features are averaged, the template is the sum over its media,
   L2-normalised;
3. the score of a template pair is the cosine of its two template features;
4. the ROC of the scores against the pair labels (``sklearn.metrics.roc_curve``), and for each
   FAR of 1e-6 ... 1e-1 the TAR of the ROC point whose FAR is closest to it (at equal FAR the
   largest TAR).
"""
import dataclasses

import numpy as np
import scipy.sparse
from sklearn.metrics import auc, roc_curve

__all__ = [
    'IJB_FAR_TARGETS', 'IJBResult', 'evaluate_ijb', 'image_features', 'pair_scores',
    'tar_at_far', 'template_features'
]

IJB_FAR_TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
PAIR_CHUNK = 100_000


@dataclasses.dataclass
class IJBResult:
    """What :func:`tar_at_far` measures.

    Attributes:
        far_targets (tuple[float]): the FARs asked for.
        tar (np.ndarray): the TAR at each of them (fractions).
        far (np.ndarray): the FAR of the ROC point each TAR was read at.
        thresholds (np.ndarray): the score thresholds of those points.
        roc_far (np.ndarray): FAR of every ROC point (``roc_curve``'s order, rising).
        roc_tar (np.ndarray): TAR of every ROC point.
        auc (float): area under the ROC curve.
        num_positive (int): pairs of the same person.
        num_negative (int): pairs of different people.
    """
    far_targets: tuple
    tar: np.ndarray
    far: np.ndarray
    thresholds: np.ndarray
    roc_far: np.ndarray
    roc_tar: np.ndarray
    auc: float
    num_positive: int
    num_negative: int


def image_features(embeddings, detector_scores=None, keep_norm=True):
    """Each image's feature: its embedding, L2-normalised unless ``keep_norm`` (N1 / N0),
    times its detector score when ``detector_scores`` are given (D1 / D0).

    Args:
        embeddings (np.ndarray): ``(N, D)`` image + flip embeddings.
        detector_scores (np.ndarray, optional): ``(N,)``.
        keep_norm (bool): keep the embeddings' norms. Defaults to True.

    Returns:
        np.ndarray: ``(N, D)`` float32.
    """
    features = np.asarray(embeddings, dtype=np.float32)
    if not np.isfinite(features).all():
        raise ValueError('the embeddings hold NaN or infinite values; the model or its weights '
                         'are broken')
    if not keep_norm:
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True),
                                         np.finfo(np.float32).tiny)
    if detector_scores is not None:
        features = features * np.asarray(detector_scores, dtype=np.float32)[:, None]
    return features


def template_features(features, templates, medias):
    """Template features: per template the sum over its medias of the mean feature of each
    media's images, L2-normalised (a zero sum stays zero).

    Args:
        features (np.ndarray): ``(N, D)`` image features.
        templates (np.ndarray): ``(N,)`` template id of each image.
        medias (np.ndarray): ``(N,)`` media id of each image.

    Returns:
        tuple[np.ndarray, np.ndarray]: the sorted template ids ``(T,)`` and their float64
        features ``(T, D)``.
    """
    groups, group_of = np.unique(np.stack([templates, medias], axis=1), axis=0,
                                 return_inverse=True)
    group_of = group_of.ravel()
    template_ids, template_of_group = np.unique(groups[:, 0], return_inverse=True)
    group_sizes = np.bincount(group_of, minlength=len(groups))
    # one sparse (templates x images) matrix: 1 / (images of the media) where an image belongs;
    # float32 like the features, so that they are not copied
    weights = (1.0 / group_sizes[group_of]).astype(np.float32)
    pooling = scipy.sparse.csr_matrix(
        (weights, (template_of_group[group_of], np.arange(len(group_of)))),
        shape=(len(template_ids), len(group_of)))
    pooled = np.asarray(pooling @ np.asarray(features, dtype=np.float32), dtype=np.float64)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return template_ids, pooled / np.where(norms > 0, norms, 1.0)


def pair_scores(template_ids, features, pairs, chunk=PAIR_CHUNK):
    """The cosine score of each template pair, ``chunk`` pairs at a time.

    Args:
        template_ids (np.ndarray): ``(T,)`` sorted ids, as :func:`template_features` gives.
        features (np.ndarray): ``(T, D)`` L2-normalised template features.
        pairs (np.ndarray): ``(P, 2)`` template ids.
        chunk (int): pairs per step (bounds the memory of the gathered features).

    Returns:
        np.ndarray: ``(P,)`` float64.
    """
    rows = np.searchsorted(template_ids, pairs)
    rows = np.minimum(rows, len(template_ids) - 1)
    if not np.array_equal(template_ids[rows], pairs):
        raise ValueError('a pair names a template that has no image')
    scores = np.empty(len(pairs))
    for start in range(0, len(pairs), chunk):
        first, second = rows[start:start + chunk].T
        scores[start:start + chunk] = np.einsum('ij,ij->i', features[first], features[second])
    return scores


def tar_at_far(labels, scores, far_targets=IJB_FAR_TARGETS):
    """The ROC of ``scores`` against ``labels`` and the TAR at each FAR of ``far_targets``.

    Args:
        labels (np.ndarray): ``(P,)`` 1 for pairs of the same person, 0 otherwise; both kinds
            must occur.
        scores (np.ndarray): ``(P,)`` higher for more similar pairs.
        far_targets (Sequence[float]): the FARs to read the TAR at.

    Returns:
        IJBResult: the TARs and the curve.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        raise ValueError('the pairs must include both same-person and different-person pairs')
    if not np.isfinite(scores).all():
        raise ValueError('the scores hold NaN or infinite values')
    roc_far, roc_tar, thresholds = roc_curve(labels, scores)
    # reversed, so that among points of equal FAR the first one found has the largest TAR
    far_desc, tar_desc, thresholds_desc = roc_far[::-1], roc_tar[::-1], thresholds[::-1]
    chosen = np.array([np.argmin(np.abs(far_desc - target)) for target in far_targets])
    return IJBResult(tuple(far_targets), tar_desc[chosen], far_desc[chosen],
                     thresholds_desc[chosen], roc_far, roc_tar, float(auc(roc_far, roc_tar)),
                     int(labels.sum()), int((~labels).sum()))


def evaluate_ijb(embeddings, templates, medias, pairs, labels, detector_scores=None,
                 keep_norm=True, far_targets=IJB_FAR_TARGETS):
    """The whole protocol (see the module docstring) from image embeddings to the TAR table.

    Args:
        embeddings (np.ndarray): ``(N, D)`` image + flip embeddings.
        templates (np.ndarray): ``(N,)`` template of each image.
        medias (np.ndarray): ``(N,)`` media of each image.
        pairs (np.ndarray): ``(P, 2)`` template ids.
        labels (np.ndarray): ``(P,)`` 1 for the same person.
        detector_scores (np.ndarray, optional): ``(N,)`` weights of the images (D1); None for
            D0.
        keep_norm (bool): N1 (True) or N0.
        far_targets (Sequence[float]): the FARs of the table.

    Returns:
        tuple[IJBResult, np.ndarray]: the result and the ``(P,)`` pair scores.
    """
    features = image_features(embeddings, detector_scores, keep_norm)
    template_ids, pooled = template_features(features, templates, medias)
    scores = pair_scores(template_ids, pooled, pairs)
    return tar_at_far(labels, scores, far_targets), scores
