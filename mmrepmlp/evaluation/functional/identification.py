"""Rank-1 face identification among distractors, as in MegaFace challenge 1
(Kemelmacher-Shlizerman et al., "The MegaFace Benchmark: 1 Million Faces for Recognition at
Scale", CVPR 2016).

MegaFace trials: for every ordered pair ``(i, j)`` of two different probe images of one
identity (FaceScrub in MegaFace), image ``j`` joins the distractors as the gallery and image
``i`` is the query; the trial is correct when ``j`` is more similar to ``i`` than every
distractor (a tie is an error). rank-1 = correct trials / trials.

With a separate gallery (``gallery``, ``gallery_labels``) there is one trial per probe image:
correct when its most similar gallery image of its identity is more similar than every gallery
image of another identity and every distractor.

Similarity is the cosine: the dot product of L2-normalised embeddings. Only each query's
largest impostor similarity matters, so the distractors (up to 1M x 512 float32, 2 GB; a
memory-mapped ``.npy`` works) are scanned in chunks that fit ``memory_bytes``. The scan runs
in float32 (numpy, faiss) or float64 (torch, so that no TF32 setting can change it); every
decision is then made in float64: the genuine similarities are computed in float64, and a
trial within the float32 error bound of its impostor maximum is decided again against the few
impostors within that bound, recomputed in float64. Every backend, chunk size and thread
count therefore gives the same answer.
"""
import dataclasses

import numpy as np

from .face_verification import unit_embeddings

__all__ = ['BACKENDS', 'IdentificationResult', 'identification_rank1', 'resolve_backend']

BACKENDS = ('auto', 'numpy', 'torch', 'faiss')
DEFAULT_MEMORY_BYTES = 1 << 30


@dataclasses.dataclass
class IdentificationResult:
    """What :func:`identification_rank1` measures.

    Attributes:
        rank1 (float): ``num_correct / num_trials``, a fraction.
        num_correct (int): correct trials.
        num_trials (int): trials (MegaFace: ordered same-identity probe pairs).
        num_probes (int): probe images that are the query of at least one trial.
        num_identities (int): identities with at least one trial.
        num_distractors (int): distractor images searched.
        num_refined (int): trials too close to call in float32, decided again in float64.
        backend (str): the backend that scanned the distractors.
        chunk_size (int): distractor rows per chunk.
    """

    rank1: float
    num_correct: int
    num_trials: int
    num_probes: int
    num_identities: int
    num_distractors: int
    num_refined: int
    backend: str
    chunk_size: int


def _faiss_installed():
    import importlib.util

    return importlib.util.find_spec('faiss') is not None


def resolve_backend(backend='auto', device=None):
    """``(backend, device)`` to use: ``'auto'`` is faiss when installed, else torch on a CUDA
    GPU, else numpy; torch's device defaults to CUDA when there is one.

    Raises:
        ValueError: an unknown backend, or faiss asked for but not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    if backend == 'faiss' and not _faiss_installed():
        raise ValueError("backend 'faiss' needs faiss: pip install faiss-cpu (or faiss-gpu), "
                         "or use backend 'numpy' or 'torch'")
    if backend in ('auto', 'torch'):
        import torch

        cuda = torch.cuda.is_available()
        if backend == 'auto':
            backend = 'faiss' if _faiss_installed() else 'torch' if cuda else 'numpy'
        device = device or ('cuda' if cuda else 'cpu')
    return backend, device


def _float32_margin(dim):
    """An upper bound of the error of a float32 cosine of two float32-normalised vectors:
    about ``dim`` roundings in the dot product and ``dim / 2 + 2`` in each normalisation."""
    return (2 * dim + 32) * 2.0**-24


def _exact_similarities(query, vectors):
    """float64 cosines of unit ``query`` ``(D,)`` with unit ``vectors`` ``(n, D)``, computed
    row by row in one way, so that equal vectors give equal similarities (exact ties)."""
    return (vectors * query).sum(axis=1)


def _unit_chunk(rows, first_row, what):
    """Rows of a chunk as float32 unit vectors; errors name the row in the whole array.

    Each row is divided by its largest magnitude first: the float32 norm of a finite row can
    overflow (a value of 3e38 squared)."""
    rows = np.asarray(rows, dtype=np.float32)
    scales = np.abs(rows).max(axis=1, keepdims=True)
    bad = np.flatnonzero(~np.isfinite(scales[:, 0]) | (scales[:, 0] == 0))
    if bad.size:
        raise ValueError(f'{what}: row {first_row + bad[0]} is NaN, infinite or all zeros; '
                         'remove it or recompute its embedding')
    rows = rows / scales
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class _Source:
    """Impostor candidates: an ``(n, D)`` array and, for a gallery, its labels (an impostor
    must then have another identity than the query)."""

    def __init__(self, array, labels, what):
        self.array, self.labels, self.what = array, labels, what

    def chunks(self, chunk_size):
        """Yield ``(raw rows, float32 unit rows, labels or None)`` chunk by chunk."""
        for start in range(0, len(self.array), chunk_size):
            raw = np.asarray(self.array[start:start + chunk_size])
            labels = None if self.labels is None else self.labels[start:start + chunk_size]
            yield raw, _unit_chunk(raw, start, self.what), labels


def _numpy_max(queries, query_labels):
    def max_similarity(chunk, labels):
        similarities = queries @ chunk.T
        if labels is not None:
            similarities[labels[None, :] == query_labels[:, None]] = -np.inf
        return similarities.max(axis=1)

    return max_similarity


def _torch_max(queries, query_labels, device):
    import torch

    queries = torch.from_numpy(queries).to(device, torch.float64)
    query_labels = torch.from_numpy(query_labels).to(device)

    def max_similarity(chunk, labels):
        similarities = queries @ torch.from_numpy(chunk).to(device, torch.float64).T
        if labels is not None:
            same = torch.from_numpy(labels).to(device)[None, :] == query_labels[:, None]
            similarities.masked_fill_(same, -torch.inf)
        return similarities.max(dim=1).values.cpu().numpy()

    return max_similarity


def _faiss_max(queries, query_labels):
    import faiss

    masked = _numpy_max(queries, query_labels)  # faiss cannot exclude a query's identity

    def max_similarity(chunk, labels):
        if labels is not None:
            return masked(chunk, labels)
        index = faiss.IndexFlatIP(chunk.shape[1])
        index.add(np.ascontiguousarray(chunk))
        return index.search(queries, 1)[0][:, 0]

    return max_similarity


def _max_similarity_function(backend, device, queries, query_labels):
    """``f(chunk, labels)``: each query's largest similarity in a chunk of unit rows."""
    if backend == 'torch':
        return _torch_max(queries, query_labels, device)
    if backend == 'faiss':
        return _faiss_max(queries, query_labels)
    return _numpy_max(queries, query_labels)


def _impostor_maxima(max_similarity, sources, num_queries, chunk_size):
    best = np.full(num_queries, -np.inf)
    for source in sources:
        for _, chunk, labels in source.chunks(chunk_size):
            best = np.maximum(best, max_similarity(chunk, labels))
    return best


def _exact_impostor_maxima(queries, query_labels, floors, sources, chunk_size):
    """float64 maxima over the impostors whose float32 similarity reaches ``floors``
    (-inf where none does), for the queries ``(Q, D)`` float64 unit vectors."""
    best = np.full(len(queries), -np.inf)
    queries32 = queries.astype(np.float32)
    for source in sources:
        for raw, chunk, labels in source.chunks(chunk_size):
            similarities = queries32 @ chunk.T
            if labels is not None:
                similarities[labels[None, :] == query_labels[:, None]] = -np.inf
            for q in np.flatnonzero((similarities >= floors[:, None]).any(axis=1)):
                rows = np.flatnonzero(similarities[q] >= floors[q])
                exact = _exact_similarities(queries[q], unit_embeddings(raw[rows]))
                best[q] = max(best[q], exact.max())
    return best


def _decide_in_float64(query_units, query_labels, trial_query, scores, margin, sources,
                       chunk_size):
    """Whether each trial too close to call in float32 is correct: its float64 genuine
    similarity against the float64 similarities of the impostors that can reach it."""
    queries, trial_query = np.unique(trial_query, return_inverse=True)
    floors = np.full(len(queries), np.inf)
    np.minimum.at(floors, trial_query, scores - margin)
    impostors = _exact_impostor_maxima(query_units[queries], query_labels[queries], floors,
                                       sources, chunk_size)
    return scores > impostors[trial_query]


def _megaface_trials(probe, labels):
    """``(query index, float64 genuine similarity)`` of every ordered same-identity pair."""
    queries, scores = [], []
    for identity in np.unique(labels):
        members = np.flatnonzero(labels == identity)
        for i in members:
            others = members[members != i]
            queries.append(np.full(others.size, i))
            scores.append(_exact_similarities(probe[i], probe[others]))
    return np.concatenate(queries), np.concatenate(scores)


def _gallery_trials(probe, labels, gallery, gallery_labels):
    """``(query index, best float64 similarity to a gallery image of its identity)``."""
    missing = ~np.isin(labels, gallery_labels)
    if missing.any():
        raise ValueError(f'{missing.sum()} probe images have identities with no gallery image '
                         f'(the first is probe {np.flatnonzero(missing)[0]}, identity '
                         f'{labels[missing][0]}); drop them or add their identities to the '
                         'gallery')
    scores = [_exact_similarities(probe[i], gallery[gallery_labels == labels[i]]).max()
              for i in range(len(probe))]
    return np.arange(len(probe)), np.array(scores)


def _labels(labels, count, what):
    labels = np.asarray(labels).ravel()
    if labels.size != count or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f'{what} must be {count} integers (one per embedding), got '
                         f'{labels.size} of dtype {labels.dtype}')
    return labels


def _distractor_array(distractors, dim):
    if distractors is None:
        return np.empty((0, dim), dtype=np.float32)
    if not hasattr(distractors, 'shape'):
        distractors = np.asarray(distractors)
    if getattr(distractors, 'ndim', None) != 2 or distractors.shape[1] != dim:
        raise ValueError(f'distractors must be an (N, {dim}) array like the probe embeddings, '
                         f'got shape {getattr(distractors, "shape", None)}')
    return distractors


def _chunk_size(chunk_size, memory_bytes, num_queries, dim):
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be at least 1, got {chunk_size}')
        return int(chunk_size)
    # per chunk row, about: the raw copy, its unit rows and torch's float64 copy of them
    # (16 bytes a dimension), and one float64 similarity per query
    return max(1, int(memory_bytes) // (8 * (num_queries + 2 * dim)))


def identification_rank1(probe, probe_labels, distractors=None, gallery=None,
                         gallery_labels=None, chunk_size=None, memory_bytes=DEFAULT_MEMORY_BYTES,
                         backend='auto', device=None):
    """Rank-1 identification rate (see the module docstring for the trials).

    Args:
        probe (array-like): ``(N, D)`` probe embeddings (not necessarily normalised).
        probe_labels (array-like): ``(N,)`` integer identities of the probe images.
        distractors (array-like, optional): ``(M, D)`` embeddings of images of none of the
            identities; anything sliceable, e.g. ``np.load(path, mmap_mode='r')``.
        gallery (array-like, optional): ``(G, D)`` gallery embeddings; without it the
            MegaFace trials are used.
        gallery_labels (array-like, optional): ``(G,)`` identities of the gallery images.
        chunk_size (int, optional): distractor rows per chunk; by default as many as fit
            ``memory_bytes``.
        memory_bytes (int): the memory budget of one chunk's arrays. Defaults to 1 GiB.
        backend (str): ``'numpy'``, ``'torch'``, ``'faiss'`` or ``'auto'`` (see
            :func:`resolve_backend`). Defaults to 'auto'.
        device (str, optional): torch's device; CUDA when there is one.

    Returns:
        IdentificationResult: rank-1 and the counts.

    Raises:
        ValueError: mismatched shapes or labels, NaN/infinite/zero embeddings, no trial, an
            unknown or unavailable backend.
    """
    probe = unit_embeddings(probe, 'probe embeddings')
    if len(probe) == 0:
        raise ValueError('the probe holds no embedding (0 rows); give the embeddings of at least '
                         'two images of an identity')
    labels = _labels(probe_labels, len(probe), 'probe_labels')
    distractors = _distractor_array(distractors, probe.shape[1])
    sources = [_Source(distractors, None, 'distractors')]
    if gallery is None:
        queries, scores = _megaface_trials(probe, labels)
    else:
        gallery_units = unit_embeddings(gallery, 'gallery embeddings')
        if gallery_units.shape[1] != probe.shape[1]:
            raise ValueError(f'the gallery embeddings have {gallery_units.shape[1]} dimensions '
                             f'and the probe embeddings {probe.shape[1]}; embed both with one '
                             'model')
        gallery_labels = _labels(gallery_labels, len(gallery_units), 'gallery_labels')
        queries, scores = _gallery_trials(probe, labels, gallery_units, gallery_labels)
        # the raw rows, so that a distractor equal to a gallery image ties with it exactly
        sources.append(_Source(np.asarray(gallery), gallery_labels, 'gallery embeddings'))
    if queries.size == 0:
        raise ValueError('no trial: every identity has a single probe image; MegaFace trials '
                         'need at least two images of an identity')

    query_rows, trial_query = np.unique(queries, return_inverse=True)
    query_units, query_labels = probe[query_rows], labels[query_rows]
    backend, device = resolve_backend(backend, device)
    chunk = min(_chunk_size(chunk_size, memory_bytes, len(query_rows), probe.shape[1]),
                max(1, max(len(source.array) for source in sources)))
    max_similarity = _max_similarity_function(backend, device, query_units.astype(np.float32),
                                              query_labels)
    impostors = _impostor_maxima(max_similarity, sources, len(query_rows), chunk)

    margin = _float32_margin(probe.shape[1])
    lead = scores - impostors[trial_query]
    correct = lead > margin
    unsure = np.abs(lead) <= margin
    if unsure.any():
        correct[unsure] = _decide_in_float64(query_units, query_labels, trial_query[unsure],
                                             scores[unsure], margin, sources, chunk)

    num_correct = int(correct.sum())
    return IdentificationResult(
        rank1=num_correct / queries.size, num_correct=num_correct, num_trials=int(queries.size),
        num_probes=len(query_rows), num_identities=len(np.unique(query_labels)),
        num_distractors=len(distractors), num_refined=int(unsure.sum()), backend=backend,
        chunk_size=chunk)
