"""Face verification: the 10-fold protocol against a loop-by-loop computation, TAR@FAR, and
the metric over several sets (order, completeness, NaN, plots, the embedding dump)."""
import logging
import math
import struct

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

import mmrepmlp  # noqa: F401  (registers the metrics)
from mmrepmlp.evaluation import (
    FaceEmbeddingDump,
    FaceVerificationMetric,
    evaluate_verification,
    fold_indices,
)
from mmrepmlp.utils.errors import InputError


def pairs_at_angles(angles):
    """Unit 2-D embeddings ``(2P, 2)`` in pair order whose pair k is ``angles[k]`` apart,
    with squared distance ``2 - 2 cos(angle)``."""
    angles = np.asarray(angles, dtype=np.float64)
    bases = np.linspace(0, 2 * np.pi, len(angles), endpoint=False)
    first = np.stack([np.cos(bases), np.sin(bases)], 1)
    second = np.stack([np.cos(bases + angles), np.sin(bases + angles)], 1)
    return np.stack([first, second], 1).reshape(-1, 2)


def separable_pairs(num_pairs, dim=16, seed=0):
    """Same pairs: a person's vector plus small noise; different pairs: two random people."""
    rng = np.random.default_rng(seed)
    issame = np.arange(num_pairs) % 2 == 0
    people = rng.normal(size=(num_pairs, 2, dim))
    people[issame, 1] = people[issame, 0] + 0.05 * rng.normal(size=(issame.sum(), dim))
    return people.reshape(-1, dim), issame


def test_separable_pairs_are_all_right():
    embeddings, issame = separable_pairs(200)

    result = evaluate_verification(embeddings, issame)

    assert result.accuracy == 1.0 and result.accuracy_std == 0.0
    assert result.tar == 1.0
    assert np.all(result.distances[issame] < result.best_thresholds.min())
    assert np.all(result.distances[~issame] >= result.best_thresholds.max())


def test_random_embeddings_are_chance():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(4000, 32))
    issame = rng.random(2000) < 0.5

    result = evaluate_verification(embeddings, issame)

    assert abs(result.accuracy - 0.5) < 0.05
    assert result.tar < 0.02  # at FAR 1e-3 chance accepts about 1e-3 of the same pairs


def loop_protocol(embeddings, issame, num_folds, thresholds, far_target, far_thresholds):
    """The protocol written out with explicit loops, independently of the implementation."""
    def unit(vector):
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector]

    distances = []
    for k in range(len(issame)):
        a, b = unit(embeddings[2 * k]), unit(embeddings[2 * k + 1])
        distances.append(sum((x - y)**2 for x, y in zip(a, b)))

    def counts(pairs, threshold):
        tp = sum(1 for k in pairs if issame[k] and distances[k] < threshold)
        fp = sum(1 for k in pairs if not issame[k] and distances[k] < threshold)
        num_same = sum(1 for k in pairs if issame[k])
        return tp, fp, num_same, len(pairs) - num_same

    def accuracy(pairs, threshold):
        tp, fp, _, num_different = counts(pairs, threshold)
        return (tp + num_different - fp) / len(pairs)

    sizes = [len(issame) // num_folds + (1 if f < len(issame) % num_folds else 0)
             for f in range(num_folds)]
    accuracies, chosen, tars, fars = [], [], [], []
    start = 0
    for size in sizes:
        test = list(range(start, start + size))
        train = [k for k in range(len(issame)) if k not in test]
        start += size
        best, best_accuracy = None, -1
        for threshold in thresholds:
            if accuracy(train, threshold) > best_accuracy:
                best, best_accuracy = threshold, accuracy(train, threshold)
        chosen.append(best)
        accuracies.append(accuracy(test, best))

        train_far = [counts(train, t)[1] / counts(train, t)[3] for t in far_thresholds]
        last = max(i for i, far in enumerate(train_far) if far <= far_target)
        t0, t1 = far_thresholds[last], far_thresholds[last + 1]
        f0, f1 = train_far[last], train_far[last + 1]
        threshold = t0 + (far_target - f0) * (t1 - t0) / (f1 - f0)
        tp, fp, num_same, num_different = counts(test, threshold)
        tars.append(tp / num_same)
        fars.append(fp / num_different)
    return accuracies, chosen, tars, fars


def test_matches_the_protocol_written_with_loops():
    rng = np.random.default_rng(2)
    num_pairs, num_folds = 47, 10  # folds of 5 and 4 pairs
    issame = rng.random(num_pairs) < 0.5
    fold_starts = np.arange(0, 40, 5).tolist() + [40, 44]  # pairs 0-4, 5-9, ..., 43-46
    issame[fold_starts] = True  # every fold holds both kinds of pairs
    issame[np.add(fold_starts, 1)] = False
    embeddings = rng.normal(size=(2 * num_pairs, 3))
    embeddings[1::2][issame] = embeddings[0::2][issame] + 0.7 * rng.normal(size=(issame.sum(), 3))
    thresholds, far_thresholds = np.arange(0, 4, 0.01), np.arange(0, 4, 0.05)

    result = evaluate_verification(embeddings, issame, num_folds=num_folds,
                                   thresholds=thresholds, far_target=0.1,
                                   far_thresholds=far_thresholds)
    accuracies, chosen, tars, fars = loop_protocol(
        embeddings.tolist(), issame.tolist(), num_folds, thresholds.tolist(), 0.1,
        far_thresholds.tolist())

    np.testing.assert_allclose(result.fold_accuracies, accuracies)
    np.testing.assert_allclose(result.best_thresholds, chosen)
    assert result.accuracy == pytest.approx(np.mean(accuracies))
    assert result.accuracy_std == pytest.approx(np.std(accuracies))
    assert 0.5 < result.accuracy < 1  # a case where the thresholds matter
    assert result.tar == pytest.approx(np.mean(tars))
    assert result.tar_std == pytest.approx(np.std(tars))
    assert result.far == pytest.approx(np.mean(fars))


def test_tar_at_far_on_a_constructed_case():
    # 10 folds of 100 pairs, all alike: 40 same pairs close, 10 same pairs farther apart than
    # every different pair, 50 different pairs spread over angles 1.0 .. 2.5 rad.
    fold = np.concatenate([np.full(40, 0.3), np.full(10, 3.0), np.linspace(1.0, 2.5, 50)])
    issame = np.tile(np.arange(100) < 50, 10)
    embeddings = pairs_at_angles(np.tile(fold, 10))

    result = evaluate_verification(embeddings, issame)

    # The FAR = 1e-3 threshold falls just below the closest different pair (9 of 450 training
    # pairs there, a FAR step of 0.02): the 40 close same pairs pass, nothing else does.
    closest_different = 2 - 2 * np.cos(1.0)
    assert np.all(result.far_thresholds_chosen < closest_different)
    assert np.all(result.far_thresholds_chosen > closest_different - 0.001)
    assert result.tar == pytest.approx(0.8) and result.tar_std == pytest.approx(0)
    assert result.far == 0
    # Accuracy: the 10 far same pairs per fold are always wrong.
    assert result.accuracy == pytest.approx(0.9)


def test_roc_spans_the_rates():
    embeddings, issame = separable_pairs(100)

    result = evaluate_verification(embeddings, issame)

    assert result.roc_far[0] == 0 and result.roc_tar[0] == 0  # nothing is below distance 0
    assert result.roc_far[-1] == 1 and result.roc_tar[-1] == 1
    assert np.all(np.diff(result.roc_far) >= 0) and np.all(np.diff(result.roc_tar) >= 0)


def test_two_arrays_equal_pair_order():
    embeddings, issame = separable_pairs(60, seed=3)
    embeddings[1::2] = np.random.default_rng(3).normal(size=(60, 16))

    interleaved = evaluate_verification(embeddings, issame)
    split = evaluate_verification(embeddings[0::2], issame, embeddings[1::2])

    assert interleaved.accuracy == split.accuracy
    np.testing.assert_array_equal(interleaved.distances, split.distances)


@pytest.mark.parametrize('embeddings, issame, message', [
    (np.ones((21, 4)), [True] * 10, 'odd number'),
    (np.ones((20, 4)), [True] * 9, '9 values for 10 pairs'),
    (np.ones((18, 4)), [True] * 9, '9 pairs cannot fill 10 folds'),
    (np.where(np.eye(20, 4) == 1, np.nan, 1.0), [True] * 10, 'NaN or infinite'),
    (np.zeros((20, 4)), [True] * 10, 'all zeros'),
])
def test_bad_input_is_named(embeddings, issame, message):
    with pytest.raises(ValueError, match=message):
        evaluate_verification(embeddings, issame)


def test_folds_are_consecutive_like_unshuffled_kfold():
    folds = fold_indices(23, 10)

    assert [len(f) for f in folds] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    np.testing.assert_array_equal(np.concatenate(folds), np.arange(23))


# The metric --------------------------------------------------------------------------------

SET_PAIRS = {'lfw': 40, 'cfp_fp': 30}


def samples_of(name, embeddings, issame):
    """What the evaluator hands the metric: ``DataSample.to_dict()`` of each image."""
    return [dict(set_name=name, index_in_set=i, issame=bool(issame[i // 2]),
                 pred_embedding=torch.from_numpy(embeddings[i]).float())
            for i in range(len(embeddings))]


@pytest.fixture
def sets():
    return {name: separable_pairs(pairs, seed=seed)
            for seed, (name, pairs) in enumerate(SET_PAIRS.items())}


def run_metric(metric, samples, set_sizes=None, seed=0):
    metric.dataset_meta = ({'set_sizes': set_sizes} if set_sizes is not None else None)
    order = np.random.default_rng(seed).permutation(len(samples))
    for start in range(0, len(samples), 8):  # batches in shuffled order, as from many ranks
        metric.process(None, [samples[i] for i in order[start:start + 8]])
    return metric.evaluate(len(samples))


def all_samples(sets):
    samples = []
    for name, (embeddings, issame) in sets.items():
        samples += samples_of(name, embeddings, issame)
    return samples


def sizes_of(sets):
    return {name: len(embeddings) for name, (embeddings, _) in sets.items()}


def test_metric_reports_each_set_in_any_order(sets):
    rng = np.random.default_rng(5)
    lfw, lfw_issame = sets['lfw']
    sets['lfw'] = (lfw + 0.8 * rng.normal(size=lfw.shape), lfw_issame)  # not all right

    # a FAR these small sets can reach (a 1e-3 they cannot: see the test after the next)
    metrics = run_metric(FaceVerificationMetric(far_target=0.1), all_samples(sets),
                         sizes_of(sets))

    for name, (embeddings, issame) in sets.items():
        expected = evaluate_verification(embeddings, issame, far_target=0.1)
        assert metrics[f'{name}/accuracy'] == pytest.approx(expected.accuracy)
        assert metrics[f'{name}/accuracy_std'] == pytest.approx(expected.accuracy_std)
        assert metrics[f'{name}/tar@far=1e-1'] == pytest.approx(expected.tar)
        assert metrics[f'{name}/tar@far=1e-1_std'] == pytest.approx(expected.tar_std)
        assert metrics[f'{name}/far@far=1e-1'] == pytest.approx(expected.far)
        assert metrics[f'{name}/threshold'] == pytest.approx(expected.best_thresholds.mean())
    assert metrics['cfp_fp/accuracy'] == 1.0 and metrics['lfw/accuracy'] < 1.0


def test_metric_without_dataset_meta_checks_indices(sets):
    metrics = run_metric(FaceVerificationMetric(far_target=1e-2), all_samples(sets))

    assert {'lfw/tar@far=1e-2', 'cfp_fp/tar@far=1e-2'} <= set(metrics)


def test_a_tar_at_a_far_far_above_the_target_is_reported_as_0():
    """Embeddings that all point one way (a diverged model's): every pair is accepted, so the
    TAR is 1 at FAR 1, which is no TAR at FAR 1e-3."""
    rng = np.random.default_rng(0)
    embeddings = np.ones((80, 8)) + 1e-9 * rng.normal(size=(80, 8))
    issame = np.arange(40) % 2 == 0
    expected = evaluate_verification(embeddings, issame)
    assert (expected.tar, expected.far) == (1.0, 1.0)

    logger, warnings = MMLogger.get_current_instance(), []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())
    logger.addHandler(handler)
    try:
        metrics = run_metric(FaceVerificationMetric(), samples_of('lfw', embeddings, issame),
                             {'lfw': 80})
    finally:
        logger.removeHandler(handler)

    assert metrics['lfw/tar@far=1e-3'] == 0 and metrics['lfw/far@far=1e-3'] == 1.0
    assert any("set 'lfw': the thresholds chosen for FAR 1e-3 reach FAR 1 on the held-out "
               'folds' in warning for warning in warnings), warnings


def test_metric_refuses_embeddings_that_overflow_float32(sets):
    samples = all_samples(sets)
    for sample in samples[:80]:  # the lfw set, as a diverged model gives it (16-d here)
        sample['pred_embedding'] *= 1e19

    with pytest.raises(InputError, match=r"set 'lfw': 80 of 80 embeddings are too large for "
                       r'float32 \(the first is image 0.*the model diverged'):
        run_metric(FaceVerificationMetric(), samples, sizes_of(sets))


def drop_set(samples, name):
    samples[:] = [sample for sample in samples if sample['set_name'] != name]


@pytest.mark.parametrize('change, message', [
    (lambda samples: samples.pop(17), r"'lfw': expected images 0..79, missing 17"),
    (lambda samples: samples.append(dict(samples[3])), r"'lfw': images 3 were evaluated more"),
    (lambda samples: samples.pop(79), r"'lfw': expected images 0..79, missing 79"),
    (lambda samples: drop_set(samples, 'cfp_fp'), r"'cfp_fp': 0 images arrived"),
    (lambda samples: samples.append(dict(samples[0], set_name='agedb_30')), "agedb_30"),
])
def test_metric_refuses_incomplete_sets(sets, change, message):
    samples = all_samples(sets)
    change(samples)

    with pytest.raises(ValueError, match=message):
        run_metric(FaceVerificationMetric(), samples, sizes_of(sets))


def test_metric_refuses_nan_embeddings(sets):
    samples = all_samples(sets)
    samples[50]['pred_embedding'][3] = float('nan')

    with pytest.raises(ValueError, match=r"set 'lfw'.*1 of 80 rows hold NaN.*row 50\)"):
        run_metric(FaceVerificationMetric(), samples, sizes_of(sets))


def test_metric_names_a_missing_field(sets):
    samples = all_samples(sets)
    del samples[0]['index_in_set']

    with pytest.raises(ValueError, match=r"no 'index_in_set'.*PackInputs\(meta_keys="):
        run_metric(FaceVerificationMetric(), samples, sizes_of(sets))


def png_size(path):
    data = open(path, 'rb').read(24)
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR'
    return struct.unpack('>II', data[16:24])


def test_metric_plots_each_set(sets, tmp_path):
    plot_dir = tmp_path / 'plots'

    run_metric(FaceVerificationMetric(plot_dir=str(plot_dir)), all_samples(sets), sizes_of(sets))

    assert sorted(p.name for p in plot_dir.iterdir()) == ['cfp_fp.png', 'lfw.png']  # no temps
    for name in SET_PAIRS:
        width, height = png_size(plot_dir / f'{name}.png')
        assert (width, height) == (1000, 400)
        assert (plot_dir / f'{name}.png').stat().st_size > 10000  # curves, not a blank canvas


def test_embedding_dump_writes_the_sets_in_pair_order(sets, tmp_path):
    out_file = tmp_path / 'out' / 'embeddings.npz'

    metrics = run_metric(FaceEmbeddingDump(out_file=str(out_file)), all_samples(sets),
                         sizes_of(sets))

    assert metrics == {}
    with np.load(out_file) as dumped:
        assert sorted(dumped.files) == ['cfp_fp', 'cfp_fp_issame', 'lfw', 'lfw_issame']
        for name, (embeddings, issame) in sets.items():
            assert dumped[name].dtype == np.float32
            np.testing.assert_array_equal(dumped[name], embeddings.astype(np.float32))
            np.testing.assert_array_equal(dumped[f'{name}_issame'], issame)
    assert [p.name for p in out_file.parent.iterdir()] == ['embeddings.npz']
