"""MegaFace-style rank-1 identification: a known case, a brute-force reference, chunking,
backends, exact ties, the gallery variant and the metric."""
import importlib.util
import itertools

import numpy as np
import pytest
import torch

import mmrepmlp  # noqa: F401  (registers the metrics)
from mmrepmlp.evaluation import FaceIdentificationMetric, identification_rank1
from mmrepmlp.evaluation.functional import resolve_backend


def at_degrees(*degrees):
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], 1).astype(np.float32)


def test_a_constructed_case():
    # identity 1 at 0, 10, 20 degrees, identity 2 at 90, 95; distractors at 15 and 200.
    probe = at_degrees(0, 10, 20, 90, 95)
    labels = np.array([1, 1, 1, 2, 2])
    distractors = 3 * at_degrees(15, 200)  # lengths do not matter: cosine similarity

    result = identification_rank1(probe, labels, distractors, backend='numpy')

    # Correct: 0 -> 10 (10 degrees, the distractor is 15 away), 90 -> 95 and 95 -> 90. Wrong:
    # 0 -> 20, and 10 and 20 as queries (the distractor at 15 is 5 away from both).
    assert (result.num_correct, result.num_trials) == (3, 8)
    assert result.rank1 == 3 / 8
    assert (result.num_probes, result.num_identities, result.num_distractors) == (5, 2, 2)


def random_case(seed=0, identities=8, images=6, distractors=700, dim=24, spread=1.1):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(identities), images)
    centres = rng.normal(size=(identities, dim))
    probe = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))  # identities need not be grouped
    return (probe[order].astype(np.float32), labels[order],
            rng.normal(size=(distractors, dim)).astype(np.float32))


def brute_force_rank1(probe, labels, distractors):
    """Every trial with explicit loops over the distractors, in float64."""
    unit = probe / np.linalg.norm(probe, axis=1, keepdims=True).astype(np.float64)
    others = distractors / np.linalg.norm(distractors, axis=1, keepdims=True).astype(np.float64)
    correct = trials = 0
    for i, j in itertools.permutations(range(len(probe)), 2):
        if labels[i] != labels[j]:
            continue
        genuine = float(unit[i] @ unit[j])
        trials += 1
        correct += all(genuine > float(unit[i] @ d) for d in others)
    return correct, trials


def test_matches_brute_force():
    probe, labels, distractors = random_case(identities=4, images=4, distractors=300)

    result = identification_rank1(probe, labels, distractors, backend='numpy')

    assert (result.num_correct, result.num_trials) == brute_force_rank1(probe, labels,
                                                                        distractors)
    assert 0.1 < result.rank1 < 0.9  # the distractors matter


@pytest.mark.parametrize('chunk_size', [1, 7, 64, 699, 700, 5000])
def test_chunked_equals_unchunked(chunk_size):
    probe, labels, distractors = random_case()
    whole = identification_rank1(probe, labels, distractors, chunk_size=len(distractors),
                                 backend='numpy')

    chunked = identification_rank1(probe, labels, distractors, chunk_size=chunk_size,
                                   backend='numpy')

    assert 0.1 < whole.rank1 < 0.9
    assert (chunked.num_correct, chunked.num_trials) == (whole.num_correct, whole.num_trials)


def test_memory_budget_sets_the_chunk_size():
    probe, labels, distractors = random_case()
    whole = identification_rank1(probe, labels, distractors, backend='numpy')

    small = identification_rank1(probe, labels, distractors, memory_bytes=20_000,
                                 backend='numpy')

    # 48 queries of 24 dimensions: 8 * (48 + 2 * 24) bytes a distractor row
    assert small.chunk_size == 20_000 // (8 * (48 + 2 * 24))
    assert whole.chunk_size == 700  # all in one chunk
    assert small.num_correct == whole.num_correct


# faiss is a test requirement: the backend 'auto' picks whenever it is installed
@pytest.mark.parametrize('backend', ['numpy', 'torch', 'faiss'])
def test_backends_agree(backend):
    probe, labels, distractors = random_case(seed=1)
    reference = identification_rank1(probe, labels, distractors, backend='numpy',
                                     chunk_size=100)

    result = identification_rank1(probe, labels, distractors, backend=backend, device='cpu',
                                  chunk_size=33)

    assert result.backend == backend
    assert (result.num_correct, result.num_trials) == (reference.num_correct,
                                                       reference.num_trials)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA GPU')
def test_torch_on_cuda_agrees():
    probe, labels, distractors = random_case(seed=2)
    reference = identification_rank1(probe, labels, distractors, backend='numpy')

    result = identification_rank1(probe, labels, distractors, backend='torch', device='cuda')

    assert result.num_correct == reference.num_correct


def test_a_distractor_equal_to_a_gallery_image_ties_and_loses():
    probe, labels, distractors = random_case(seed=3, distractors=50)
    # copies of image 0, one scaled: their cosine with any query equals image 0's exactly
    with_copies = np.concatenate([distractors, probe[:1], 4 * probe[:1]])
    without = identification_rank1(probe, labels, distractors, backend='numpy')

    result = identification_rank1(probe, labels, with_copies, backend='numpy')

    assert result.num_refined > 0  # ties are too close to call in float32
    assert result.num_correct < without.num_correct  # the trials to image 0 are lost
    assert (result.num_correct, result.num_trials) == brute_force_rank1(probe, labels,
                                                                        with_copies)


def test_gallery_trials():
    # probes at 0 (identity 1) and 100 (identity 2); gallery: identity 1 at 30 and 50,
    # identity 2 at 110; a distractor at 70.
    probe = at_degrees(0, 100)
    gallery = at_degrees(30, 50, 110)

    result = identification_rank1(probe, [1, 2], at_degrees(70), gallery, [1, 1, 2],
                                  backend='numpy')

    # probe 0: best genuine 30 degrees away, impostors 70 and 110: correct. probe 100: genuine
    # 10 away, the distractor 30 away: correct. Move the distractor to 95: probe 100 fails.
    assert (result.num_correct, result.num_trials) == (2, 2)
    result = identification_rank1(probe, [1, 2], at_degrees(95), gallery, [1, 1, 2],
                                  backend='numpy')
    assert (result.num_correct, result.num_trials) == (1, 2)
    # an impostor from the gallery: identity 2 at 90 is nearer to probe 100 (of identity 1 now)
    # than identity 1's images at 30 and 150
    result = identification_rank1(probe, [1, 1], None, at_degrees(30, 90, 150), [1, 2, 1],
                                  backend='numpy')
    assert (result.num_correct, result.num_trials) == (1, 2)


@pytest.mark.parametrize('kwargs, message', [
    (dict(distractors=np.full((3, 2), np.nan)), 'distractors: row 0 is NaN'),
    (dict(distractors=np.ones((3, 5))), r'must be an \(N, 2\) array'),
    (dict(probe_labels=[1, 2, 3]), 'no trial'),
    (dict(probe_labels=[1.0, 1.0, 2.0]), 'must be 3 integers'),
    (dict(backend='annoy'), 'backend must be one of'),
    (dict(chunk_size=0), 'chunk_size must be at least 1'),
    (dict(gallery=at_degrees(0), gallery_labels=[7]), 'identities with no gallery image'),
])
def test_bad_input_is_named(kwargs, message):
    arguments = dict(probe=at_degrees(0, 10, 90), probe_labels=[1, 1, 2],
                     distractors=at_degrees(45), backend='numpy')
    arguments.update(kwargs)

    with pytest.raises(ValueError, match=message):
        identification_rank1(**arguments)


def test_auto_is_faiss_when_installed():
    probe, labels, distractors = random_case(seed=5)
    reference = identification_rank1(probe, labels, distractors, backend='numpy')

    result = identification_rank1(probe, labels, distractors)

    assert result.backend == 'faiss'
    assert (result.num_correct, result.num_trials) == (reference.num_correct,
                                                       reference.num_trials)


def test_without_faiss_auto_falls_back_and_asking_for_it_names_the_package(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *args: None if name == 'faiss' else find_spec(name, *args))

    assert resolve_backend('auto')[0] == ('torch' if torch.cuda.is_available() else 'numpy')
    with pytest.raises(ValueError, match='pip install faiss-cpu'):
        identification_rank1(at_degrees(0, 10), [1, 1], backend='faiss')


def test_metric_over_probe_and_distractor_samples():
    probe, labels, distractors = random_case(seed=4)
    samples = [dict(role='probe', identity=int(label), pred_embedding=torch.from_numpy(emb))
               for emb, label in zip(probe, labels)]
    samples += [dict(role='distractor', identity=-1, pred_embedding=torch.from_numpy(emb))
                for emb in distractors]
    order = np.random.default_rng(0).permutation(len(samples))
    metric = FaceIdentificationMetric(backend='numpy', chunk_size=50)
    metric.process(None, [samples[i] for i in order])

    metrics = metric.evaluate(len(samples))

    expected = identification_rank1(probe, labels, distractors, backend='numpy')
    assert metrics == {'megaface/rank1': expected.rank1,
                       'megaface/num_correct': expected.num_correct,
                       'megaface/num_trials': expected.num_trials,
                       'megaface/num_probes': len(probe),
                       'megaface/num_distractors': len(distractors)}
