"""Face verification metrics over :class:`FaceVerificationDataset` samples: the LFW 10-fold
protocol per ``.bin`` set, and a dump of the embeddings for offline analysis.

Both read, from each sample the evaluator hands over (``DataSample.to_dict()``):
``pred_embedding`` (the model's 1-D embedding: image plus horizontal flip, not normalised) and
the metainfo ``set_name``, ``index_in_set`` and ``issame`` (pack them with
``PackInputs(meta_keys=('set_name', 'index_in_set', 'issame'))``). From ``dataset_meta`` they
use ``set_sizes`` (``{set_name: number of images}``, which the dataset provides) to check that
every image of every set arrived exactly once; without it, the images of each set that arrived
must be numbered ``0 .. n-1`` with ``n`` even.
"""
import logging
import os.path as osp

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from ...utils.errors import InputError
from ...utils.files import atomic_write, check_writable
from ..functional.face_verification import evaluate_verification

__all__ = [
    'FaceEmbeddingDump', 'FaceVerificationMetric', 'embedding_to_numpy', 'far_label',
    'gather_pair_sets', 'plot_verification', 'sample_field'
]

META_KEYS = ('set_name', 'index_in_set', 'issame')
# A FAR reached on the held-out folds above this multiple of the target does not make the
# TAR a TAR at the target (a real LFW model reaches about the target; one that accepts every
# pair reaches 1).
FAR_SLACK = 10


def far_label(far_target):
    """``1e-3`` -> ``'1e-3'``, the FAR as it appears in metric names."""
    return np.format_float_scientific(far_target, trim='-', exp_digits=1)


def sample_field(sample, key, meta_keys):
    """``sample[key]``, or a ValueError that says how the field gets there."""
    if key not in sample:
        raise ValueError(f"a data sample has no {key!r}: the model must predict 'pred_embedding' "
                         f'and the pipeline must end with PackInputs(meta_keys={meta_keys})')
    return sample[key]


def embedding_to_numpy(embedding):
    """A predicted embedding (tensor or array) as a 1-D float32 numpy array."""
    if hasattr(embedding, 'detach'):  # a tensor, possibly on a GPU
        embedding = embedding.detach().float().cpu().numpy()
    return np.asarray(embedding, dtype=np.float32).ravel()


def _listing(indices, limit=5):
    shown = ', '.join(str(i) for i in indices[:limit])
    return shown + (f' and {len(indices) - limit} more' if len(indices) > limit else '')


def _check_indices(name, indices, expected):
    """Every index ``0 .. expected-1`` exactly once (after sorting)."""
    unique, counts = np.unique(indices, return_counts=True)
    duplicated = unique[counts > 1]
    if duplicated.size:
        raise ValueError(f'set {name!r}: images {_listing(duplicated)} were evaluated more than '
                         'once; the dataloader or sampler repeats samples')
    missing = np.setdiff1d(np.arange(expected), unique)
    outside = unique[(unique < 0) | (unique >= expected)]
    if missing.size or outside.size:
        raise ValueError(f'set {name!r}: expected images 0..{expected - 1}, missing '
                         f'{_listing(missing) or "none"}, unexpected {_listing(outside) or "none"}'
                         '; every image of the set must be evaluated once')


def gather_pair_sets(results, set_sizes=None):
    """Group per-image results into sets, in pair order, and check that none is incomplete.

    Args:
        results (list[dict]): ``set_name``, ``index_in_set``, ``issame``, ``embedding`` of
            each image, in any order (e.g. as gathered from all ranks).
        set_sizes (dict, optional): ``{set_name: number of images}``; every set in it must
            be complete and no other set may appear.

    Returns:
        dict: ``{set_name: (embeddings (2P, D), issame (P,))}``, in the order of
        ``set_sizes`` (else of first appearance).

    Raises:
        ValueError: a duplicated, missing or unknown image or set; pair images that disagree
            on ``issame``.
    """
    by_set = {}
    for result in results:
        by_set.setdefault(result['set_name'], []).append(result)
    names = list(set_sizes) if set_sizes is not None else list(by_set)
    unknown = sorted(set(by_set) - set(names))
    if unknown:
        raise ValueError(f'samples of sets {unknown} that the dataset does not list '
                         f'({names}); the evaluator and dataset do not match')
    sets = {}
    for name in names:
        images = sorted(by_set.get(name, []), key=lambda result: result['index_in_set'])
        indices = np.array([image['index_in_set'] for image in images], dtype=np.int64)
        expected = set_sizes[name] if set_sizes is not None else len(images)
        if not images or expected % 2:
            raise ValueError(f'set {name!r}: {len(images)} images arrived for {expected} '
                             'expected; a set needs both images of each of its pairs')
        _check_indices(name, indices, expected)
        issame = np.array([image['issame'] for image in images], dtype=bool)
        if np.any(issame[0::2] != issame[1::2]):
            bad = np.flatnonzero(issame[0::2] != issame[1::2])
            raise ValueError(f'set {name!r}: the two images of pairs {_listing(bad)} disagree on '
                             'issame; the dataset is inconsistent')
        sets[name] = (np.stack([image['embedding'] for image in images]), issame[0::2])
    return sets


class _PairEmbeddingCollector(BaseMetric):
    """Collects each image's set, index, label and embedding, to be grouped into sets."""

    default_prefix = ''  # the metric names start with the set names

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            self.results.append(dict(
                set_name=str(sample_field(sample, 'set_name', META_KEYS)),
                index_in_set=int(sample_field(sample, 'index_in_set', META_KEYS)),
                issame=bool(sample_field(sample, 'issame', META_KEYS)),
                embedding=embedding_to_numpy(sample_field(sample, 'pred_embedding', META_KEYS))))

    def _pair_sets(self, results):
        return gather_pair_sets(results, (self.dataset_meta or {}).get('set_sizes'))


@METRICS.register_module()
class FaceVerificationMetric(_PairEmbeddingCollector):
    """The verification protocol of :mod:`..functional.face_verification` on each set.

    For each set (``lfw``, ``cfp_fp``, ...) it reports, as fractions: ``<set>/accuracy`` and
    ``<set>/accuracy_std`` (mean and std over the folds), ``<set>/threshold`` (the mean chosen
    squared-distance threshold), ``<set>/tar@far=1e-3`` and ``<set>/tar@far=1e-3_std`` and
    ``<set>/far@far=1e-3`` (the FAR reached). When the FAR reached is more than
    :data:`FAR_SLACK` times the target (a set with too few different pairs per fold for that
    FAR, or a threshold that accepts every pair) the TAR is reported as 0 with a warning: it is
    no TAR at the target. Embeddings with NaN or infinite values, or so large that their
    float32 norm overflows (a diverged model), raise an
    :class:`~mmrepmlp.utils.errors.InputError` instead of a number. What it reads from the
    samples and ``dataset_meta``: see the module docstring.

    Args:
        num_folds (int): folds of the cross-validation. Defaults to 10.
        far_target (float): the FAR of the TAR. Defaults to 1e-3.
        plot_dir (str, optional): if given, ``<plot_dir>/<set>.png`` is written (atomically) at
            each evaluation: the ROC curve and the histograms of same and different squared
            distances with the threshold.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for gathering across ranks.
        prefix (str, optional): put before the metric names; none by default.
        collect_dir (str, optional): the folder for gathering on ``'cpu'``.
    """

    def __init__(self, num_folds=10, far_target=1e-3, plot_dir=None, collect_device='cpu',
                 prefix=None, collect_dir=None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if plot_dir is not None:  # fail now rather than after the whole evaluation
            check_writable(osp.join(plot_dir, 'set.png'))
        self.num_folds = num_folds
        self.far_target = far_target
        self.plot_dir = plot_dir

    def compute_metrics(self, results):
        metrics, far = {}, far_label(self.far_target)
        for name, (embeddings, issame) in self._pair_sets(results).items():
            try:
                _check_magnitudes(embeddings)
                result = evaluate_verification(embeddings, issame, num_folds=self.num_folds,
                                               far_target=self.far_target)
            except ValueError as error:
                raise InputError(f'set {name!r}: {error}') from error
            tar, tar_std = self._tar_at_target(name, result)
            metrics.update({
                f'{name}/accuracy': result.accuracy,
                f'{name}/accuracy_std': result.accuracy_std,
                f'{name}/threshold': float(result.best_thresholds.mean()),
                f'{name}/tar@far={far}': tar,
                f'{name}/tar@far={far}_std': tar_std,
                f'{name}/far@far={far}': result.far,
            })
            if self.plot_dir is not None:
                plot_verification(result, osp.join(self.plot_dir, f'{name}.png'), title=name)
        return metrics


    def _tar_at_target(self, name, result):
        """``(tar, tar_std)`` to report: 0 when the FAR reached is far above the target."""
        if result.far <= FAR_SLACK * self.far_target:
            return result.tar, result.tar_std
        print_log(f'set {name!r}: the thresholds chosen for FAR {far_label(self.far_target)} '
                  f'reach FAR {result.far:.3g} on the held-out folds, more than {FAR_SLACK}x '
                  f'the target (TAR {result.tar:.4f} there); reporting TAR 0: the set has too '
                  'few different pairs for this FAR, or the model accepts every pair',
                  logger='current', level=logging.WARNING)
        return 0.0, 0.0


def _check_magnitudes(embeddings):
    """Refuse embeddings whose float32 norm overflows: a diverged model's (values of 1e18),
    which float64 normalisation would still turn into directions, and score."""
    with np.errstate(over='ignore'):
        norms = np.linalg.norm(np.asarray(embeddings, dtype=np.float32), axis=1)
    overflowing = np.flatnonzero(np.isinf(norms) & np.isfinite(embeddings).all(axis=1))
    if overflowing.size:
        first = overflowing[0]
        raise ValueError(f'{overflowing.size} of {len(embeddings)} embeddings are too large for '
                         f'float32 (the first is image {first}, with values up to '
                         f'{np.abs(embeddings[first]).max():.3g}: its squared norm overflows); '
                         'the model diverged: lower the learning rate or check the data, and '
                         'train again')


@METRICS.register_module()
class FaceEmbeddingDump(_PairEmbeddingCollector):
    """Write the embeddings of each set to an ``.npz`` file; report no metric.

    The file holds, for each set, ``<set>``: the ``(2P, D)`` float32 embeddings as the model
    predicted them (not normalised), in pair order, and ``<set>_issame``: the ``(P,)`` bools.
    It is replaced atomically at each evaluation. Use it next to (or instead of)
    :class:`FaceVerificationMetric`, e.g. ``test_evaluator = [dict(type='FaceVerificationMetric'),
    dict(type='FaceEmbeddingDump', out_file='work_dirs/embeddings.npz')]``; read it back with
    ``np.load`` and run :func:`evaluate_verification` on it.

    Args:
        out_file (str): the ``.npz`` to write.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for gathering across ranks.
        collect_dir (str, optional): the folder for gathering on ``'cpu'``.
    """

    def __init__(self, out_file, collect_device='cpu', collect_dir=None):
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        check_writable(out_file)  # fail now rather than after the whole evaluation
        self.out_file = out_file

    def compute_metrics(self, results):
        sets, arrays = self._pair_sets(results), {}
        for name, (embeddings, issame) in sets.items():
            arrays[name] = embeddings.astype(np.float32)
            arrays[f'{name}_issame'] = issame
        if len(arrays) != 2 * len(sets):
            raise ValueError(f'set names {sorted(arrays)} collide in the .npz (a set is named '
                             "like another set plus '_issame'); rename the sets")
        atomic_write(self.out_file, lambda tmp: _save_npz(tmp, arrays))
        return {}


def _save_npz(path, arrays):
    with open(path, 'wb') as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, **arrays)


def plot_verification(result, path, title=''):
    """Write a PNG: the ROC curve (TAR against FAR, log scale) with the TAR@FAR point, and the
    histograms of same and different squared distances with the mean accuracy threshold.

    Args:
        result (VerificationResult): what :func:`evaluate_verification` returned.
        path (str): the PNG, written atomically.
        title (str): the figure's title, e.g. the set's name.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    roc, histogram = figure.subplots(1, 2)
    # FAR 0 has no place on a log axis: draw it at half the smallest FAR above 0
    floor = 0.5 / max(1, np.sum(~result.issame))
    roc.semilogx(np.maximum(result.roc_far, floor), result.roc_tar)
    roc.scatter([max(result.far, floor)], [result.tar], color='C3', zorder=3,
                label=f'TAR {result.tar:.4f} at FAR {result.far:.2g} '
                f'(target {far_label(result.far_target)})')
    roc.set(xlabel='FAR', ylabel='TAR', title='ROC')
    roc.grid(True, which='both', alpha=0.3)
    roc.legend(loc='lower right', fontsize='small')

    bins = np.linspace(0, 4, 81)
    for same, label in ((True, 'same'), (False, 'different')):
        histogram.hist(result.distances[result.issame == same], bins=bins, alpha=0.6,
                       label=f'{label} ({np.sum(result.issame == same)})')
    threshold = result.best_thresholds.mean()
    histogram.axvline(threshold, color='k', linestyle='--', label=f'threshold {threshold:.2f}')
    histogram.set(xlabel='squared distance', ylabel='pairs',
                  title=f'accuracy {result.accuracy:.4f} ± {result.accuracy_std:.4f}')
    histogram.legend(fontsize='small')
    figure.suptitle(title)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format='png'))
