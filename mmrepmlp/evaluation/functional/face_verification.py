"""Face verification on image pairs: the 10-fold protocol of LFW (Huang et al., "Labeled Faces
in the Wild", 2007), also used for CFP-FP and AgeDB-30.

Each image's embedding (in the protocol: the embedding of the image plus that of its
horizontal flip) is L2-normalised; a pair's distance is the squared Euclidean distance of its
two unit embeddings, in ``[0, 4]``, and a pair is declared *same* when its distance is below a
threshold. The pairs are split into ``num_folds`` consecutive folds (in order, not shuffled;
the first ``P % num_folds`` folds hold one pair more). For each fold:

* accuracy: the threshold of ``thresholds`` (default 0, 0.01, ..., 3.99) with the best
  accuracy on the other folds (the smallest one on ties) is applied to the held-out fold;
* TAR at FAR: on the other folds FAR(threshold) is measured at ``far_thresholds`` (default
  0, 0.001, ..., 3.999) and interpolated linearly; the largest threshold whose interpolated FAR
  does not exceed ``far_target`` (the last grid point if FAR never exceeds it) is applied to
  the held-out fold, giving its TAR and the FAR it actually reaches.

The mean and standard deviation (``np.std``, over folds) are reported.
"""
import dataclasses

import numpy as np

__all__ = [
    'ACCURACY_THRESHOLDS', 'FAR_THRESHOLDS', 'VerificationResult', 'acceptance_rates',
    'evaluate_verification', 'fold_indices', 'pair_distances', 'split_pairs',
    'threshold_at_far', 'unit_embeddings'
]


def _read_only(array):
    array.flags.writeable = False
    return array


ACCURACY_THRESHOLDS = _read_only(np.arange(0.0, 4.0, 0.01))
FAR_THRESHOLDS = _read_only(np.arange(0.0, 4.0, 0.001))


@dataclasses.dataclass
class VerificationResult:
    """What :func:`evaluate_verification` measures; accuracies and rates are fractions.

    Attributes:
        accuracy (float): mean of ``fold_accuracies``.
        accuracy_std (float): their standard deviation.
        fold_accuracies (np.ndarray): ``(num_folds,)`` accuracy on each held-out fold.
        best_thresholds (np.ndarray): ``(num_folds,)`` the threshold chosen on the other folds.
        far_target (float): the FAR asked for.
        tar (float): mean TAR over the held-out folds at ``far_target``.
        tar_std (float): its standard deviation.
        far (float): mean FAR actually reached on the held-out folds.
        far_std (float): its standard deviation.
        far_thresholds_chosen (np.ndarray): ``(num_folds,)`` the interpolated thresholds.
        distances (np.ndarray): ``(P,)`` squared distances of the pairs.
        issame (np.ndarray): ``(P,)`` bool, the ground truth.
        roc_thresholds (np.ndarray): the thresholds of the ROC curve (``far_thresholds``).
        roc_tar (np.ndarray): TAR over all pairs at each of ``roc_thresholds``.
        roc_far (np.ndarray): FAR over all pairs at each of ``roc_thresholds``.
    """

    accuracy: float
    accuracy_std: float
    fold_accuracies: np.ndarray
    best_thresholds: np.ndarray
    far_target: float
    tar: float
    tar_std: float
    far: float
    far_std: float
    far_thresholds_chosen: np.ndarray
    distances: np.ndarray
    issame: np.ndarray
    roc_thresholds: np.ndarray
    roc_tar: np.ndarray
    roc_far: np.ndarray


def unit_embeddings(embeddings, what='embeddings'):
    """``embeddings`` ``(N, D)`` as float64 rows of norm 1.

    Args:
        embeddings (array-like): ``(N, D)`` embeddings.
        what (str): how error messages name them.

    Raises:
        ValueError: not 2-D, NaN or infinite values, or a zero row (no direction).
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(f'{what} must be a 2-D (N, D) array, got shape {embeddings.shape}')
    bad_rows = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if bad_rows.size:
        raise ValueError(f'{what}: {bad_rows.size} of {len(embeddings)} rows hold NaN or '
                         f'infinite values (the first is row {bad_rows[0]}); the model '
                         'produced them, so check it (e.g. a diverged or fp16-overflowed run)')
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    zero_rows = np.flatnonzero(norms[:, 0] == 0)
    if zero_rows.size:
        raise ValueError(f'{what}: {zero_rows.size} rows are all zeros (the first is row '
                         f'{zero_rows[0]}) and have no direction to compare')
    return embeddings / norms


def split_pairs(embeddings):
    """Embeddings of ``2P`` images in pair order -> ``(first, second)``, each ``(P, D)``.

    Raises:
        ValueError: an odd number of embeddings.
    """
    embeddings = np.asarray(embeddings)
    if len(embeddings) % 2:
        raise ValueError(f'got {len(embeddings)} embeddings, an odd number: images 2k and 2k+1 '
                         'form pair k, so every pair needs both of its images')
    return embeddings[0::2], embeddings[1::2]


def pair_distances(first, second):
    """Squared Euclidean distances ``(P,)`` between the L2-normalised rows of two arrays."""
    return _squared_distances(unit_embeddings(first, 'embeddings of the first images'),
                              unit_embeddings(second, 'embeddings of the second images'))


def _squared_distances(first_units, second_units):
    if first_units.shape != second_units.shape:
        raise ValueError(f'the two embedding arrays differ in shape: {first_units.shape} and '
                         f'{second_units.shape}')
    return np.square(first_units - second_units).sum(axis=1)


def fold_indices(num_pairs, num_folds):
    """The pair indices of each fold: consecutive, the first ``num_pairs % num_folds`` folds
    one pair longer (what an unshuffled k-fold split gives)."""
    if num_folds < 2:
        raise ValueError(f'num_folds must be at least 2, got {num_folds}')
    if num_pairs < num_folds:
        raise ValueError(f'{num_pairs} pairs cannot fill {num_folds} folds; give at least '
                         f'{num_folds} pairs or fewer folds')
    return np.array_split(np.arange(num_pairs), num_folds)


def acceptance_rates(distances, issame, thresholds):
    """TAR and FAR at each threshold: the fraction of same (resp. different) pairs whose
    distance is below it; 0 where there are no such pairs.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(tar, far)``, each shaped like ``thresholds``.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    return tuple(_fraction_below(distances[mask], thresholds) for mask in (issame, ~issame))


def _fraction_below(values, thresholds):
    if values.size == 0:
        return np.zeros(thresholds.shape)
    return np.searchsorted(np.sort(values), thresholds, side='left') / values.size


def _accuracies(distances, issame, thresholds):
    tar, far = acceptance_rates(distances, issame, thresholds)
    num_same = issame.sum()
    return (tar * num_same + (1 - far) * (issame.size - num_same)) / issame.size


def threshold_at_far(far, thresholds, far_target):
    """The largest threshold whose linearly interpolated FAR does not exceed ``far_target``.

    Args:
        far (np.ndarray): FAR at each threshold (non-decreasing, as FAR is).
        thresholds (np.ndarray): increasing thresholds.
        far_target (float): the FAR to reach.

    Returns:
        float: the threshold; ``thresholds[-1]`` if FAR never exceeds the target,
        ``thresholds[0]`` if it exceeds it everywhere.
    """
    last_within = np.searchsorted(far, far_target, side='right') - 1
    if last_within < 0:
        return float(thresholds[0])
    if last_within == len(far) - 1:
        return float(thresholds[-1])
    low, high = last_within, last_within + 1
    step = (far_target - far[low]) / (far[high] - far[low])
    return float(thresholds[low] + step * (thresholds[high] - thresholds[low]))


def _check_thresholds(thresholds, what):
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size == 0 or np.any(np.diff(thresholds) <= 0):
        raise ValueError(f'{what} must be a non-empty, strictly increasing 1-D sequence')
    return thresholds


def evaluate_verification(embeddings, issame, second_embeddings=None, num_folds=10,
                          thresholds=ACCURACY_THRESHOLDS, far_target=1e-3,
                          far_thresholds=FAR_THRESHOLDS):
    """Run the verification protocol (see the module docstring) on embeddings of pairs.

    Args:
        embeddings (array-like): ``(2P, D)`` embeddings of the images in pair order (images
            ``2k`` and ``2k+1`` form pair ``k``), or ``(P, D)`` of the first images when
            ``second_embeddings`` is given. Not necessarily normalised.
        issame (array-like): ``(P,)`` bool, whether each pair shows one person.
        second_embeddings (array-like, optional): ``(P, D)`` embeddings of the second images.
        num_folds (int): folds of the cross-validation. Defaults to 10.
        thresholds (array-like): the distance thresholds searched for the best accuracy.
            Defaults to 0, 0.01, ..., 3.99.
        far_target (float): the FAR at which TAR is reported. Defaults to 1e-3.
        far_thresholds (array-like): the thresholds at which FAR is interpolated. Defaults to
            0, 0.001, ..., 3.999.

    Returns:
        VerificationResult: the fold statistics and what a ROC plot needs.

    Raises:
        ValueError: an odd number of embeddings, NaN/infinite or zero embeddings, ``issame``
            of another length than the pairs, fewer pairs than folds.
    """
    if second_embeddings is None:
        # normalised before splitting, so that errors name the image's own index
        distances = _squared_distances(*split_pairs(unit_embeddings(embeddings)))
    else:
        distances = pair_distances(embeddings, second_embeddings)
    issame = np.asarray(issame).astype(bool).ravel()
    if issame.size != distances.size:
        raise ValueError(f'issame holds {issame.size} values for {distances.size} pairs')
    thresholds = _check_thresholds(thresholds, 'thresholds')
    far_thresholds = _check_thresholds(far_thresholds, 'far_thresholds')
    folds = fold_indices(distances.size, num_folds)

    fold_accuracies, best_thresholds, tars, fars, far_thresholds_chosen = [], [], [], [], []
    for test in folds:
        train = np.ones(distances.size, dtype=bool)
        train[test] = False
        best = thresholds[np.argmax(_accuracies(distances[train], issame[train], thresholds))]
        best_thresholds.append(best)
        fold_accuracies.append(_accuracies(distances[test], issame[test], [best])[0])

        _, train_far = acceptance_rates(distances[train], issame[train], far_thresholds)
        chosen = threshold_at_far(train_far, far_thresholds, far_target)
        far_thresholds_chosen.append(chosen)
        tar, far = acceptance_rates(distances[test], issame[test], [chosen])
        tars.append(tar[0])
        fars.append(far[0])

    roc_tar, roc_far = acceptance_rates(distances, issame, far_thresholds)
    return VerificationResult(
        accuracy=float(np.mean(fold_accuracies)), accuracy_std=float(np.std(fold_accuracies)),
        fold_accuracies=np.array(fold_accuracies), best_thresholds=np.array(best_thresholds),
        far_target=float(far_target), tar=float(np.mean(tars)), tar_std=float(np.std(tars)),
        far=float(np.mean(fars)), far_std=float(np.std(fars)),
        far_thresholds_chosen=np.array(far_thresholds_chosen), distances=distances,
        issame=issame, roc_thresholds=far_thresholds, roc_tar=roc_tar, roc_far=roc_far)
