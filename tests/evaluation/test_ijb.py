"""IJB template verification against hand-computed cases: media pooling, template sums and the
N/D modes on known features, and the TAR at each FAR of a few pairs of known scores."""
import math

import numpy as np
import pytest

from mmrepmlp.evaluation.functional import (
    IJB_FAR_TARGETS,
    evaluate_ijb,
    image_features,
    tar_at_far,
    template_features,
)

# Template 1: media 10 holds images a and b, media 11 image c; template 2 is image d alone.
EMBEDDINGS = np.array([[2, 0], [0, 2], [0, 3], [3, 0]], dtype=np.float32)
TEMPLATES = np.array([1, 1, 1, 2])
MEDIAS = np.array([10, 10, 11, 12])
DETECTOR_SCORES = np.array([0.5, 1.0, 1 / 3, 1.0], dtype=np.float32)


@pytest.mark.parametrize('detector, keep_norm, template_1', [
    # N1D0: media 10 -> mean([2, 0], [0, 2]) = [1, 1]; plus media 11 [0, 3] -> [1, 4]
    (False, True, [1, 4]),
    # N1D1: [1, 0] and [0, 2] -> [0.5, 1]; plus [0, 1] -> [0.5, 2]
    (True, True, [0.5, 2]),
    # N0D0: [1, 0] and [0, 1] -> [0.5, 0.5]; plus [0, 1] -> [0.5, 1.5]
    (False, False, [0.5, 1.5]),
])
def test_templates_pool_medias_then_sum_then_normalise(detector, keep_norm, template_1):
    features = image_features(EMBEDDINGS, DETECTOR_SCORES if detector else None, keep_norm)
    ids, pooled = template_features(features, TEMPLATES, MEDIAS)

    expected = np.array(template_1) / np.linalg.norm(template_1)
    assert ids.tolist() == [1, 2]
    np.testing.assert_allclose(pooled, [expected, [1, 0]], atol=1e-7)
    pairs, labels = np.array([[1, 2], [2, 2]]), np.array([0, 1])
    _, scores = evaluate_ijb(EMBEDDINGS, TEMPLATES, MEDIAS, pairs, labels,
                             DETECTOR_SCORES if detector else None, keep_norm)
    np.testing.assert_allclose(scores, [expected[0], 1.0], atol=1e-7)


# Four same-person pairs and ten different-person pairs with these scores.
POSITIVE = [0.9, 0.8, 0.6, 0.4]
NEGATIVE = [0.7, 0.5, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3, -0.4]


def test_tar_at_far_of_known_scores():
    labels = np.array([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    result = tar_at_far(labels, np.array(POSITIVE + NEGATIVE))

    # FAR 0 is the ROC point closest to 1e-6 ... 1e-2: accepting only what scores above the best
    # negative (0.7) keeps 0.9 and 0.8, TAR 2/4. At FAR 1e-1 one negative (0.7) may pass, so
    # every positive down to 0.6 does: TAR 3/4 (not the 2/4 of the same FAR's other ROC point).
    assert result.far_targets == IJB_FAR_TARGETS
    assert result.tar.tolist() == [0.5] * 5 + [0.75]
    assert result.far.tolist() == [0.0] * 5 + [0.1]
    assert (result.num_positive, result.num_negative) == (4, 10)
    # 37 of the 40 (positive, negative) pairs are ordered right: not 0.6 < 0.7, 0.4 < 0.7, 0.5
    assert math.isclose(result.auc, 37 / 40)


def test_pairs_of_unknown_templates_and_one_sided_labels_are_refused():
    features = image_features(EMBEDDINGS)
    with pytest.raises(ValueError, match='template that has no image'):
        evaluate_ijb(EMBEDDINGS, TEMPLATES, MEDIAS, np.array([[1, 3]]), np.array([1]))
    with pytest.raises(ValueError, match='both'):
        tar_at_far(np.array([1, 1]), np.array([0.2, 0.3]))
    features[0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        image_features(features)
