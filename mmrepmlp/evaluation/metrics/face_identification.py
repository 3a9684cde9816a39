"""MegaFace-style rank-1 identification as an MMEngine metric."""
import numpy as np
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..functional.identification import DEFAULT_MEMORY_BYTES, identification_rank1
from .face_verification import embedding_to_numpy, sample_field

__all__ = ['FaceIdentificationMetric']

ROLES = ('probe', 'distractor')
META_KEYS = ('identity', 'role')


@METRICS.register_module()
class FaceIdentificationMetric(BaseMetric):
    """Rank-1 of :func:`identification_rank1` (MegaFace trials) over the evaluated images.

    Each sample needs ``pred_embedding`` and the metainfo ``identity`` (int; ignored for
    distractors) and ``role`` (``'probe'`` or ``'distractor'``): pack them with
    ``PackInputs(meta_keys=('identity', 'role'))``. Nothing from ``dataset_meta`` is used.
    Reports ``megaface/rank1`` (a fraction) and the counts ``megaface/num_correct``,
    ``megaface/num_trials``, ``megaface/num_probes``, ``megaface/num_distractors``.

    Args:
        chunk_size (int, optional): distractor rows per chunk; by default as many as fit
            ``memory_bytes``.
        memory_bytes (int): the memory budget of one chunk. Defaults to 1 GiB.
        backend (str): ``'auto'``, ``'numpy'``, ``'torch'`` or ``'faiss'``. Defaults to 'auto'.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for gathering across ranks.
        prefix (str, optional): put before the metric names. Defaults to 'megaface'.
        collect_dir (str, optional): the folder for gathering on ``'cpu'``.
    """

    default_prefix = 'megaface'

    def __init__(self, chunk_size=None, memory_bytes=DEFAULT_MEMORY_BYTES, backend='auto',
                 collect_device='cpu', prefix=None, collect_dir=None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.chunk_size = chunk_size
        self.memory_bytes = memory_bytes
        self.backend = backend

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            role = sample_field(sample, 'role', META_KEYS)
            if role not in ROLES:
                raise ValueError(f"a sample's role is {role!r}, not one of {ROLES}")
            identity = int(sample_field(sample, 'identity', META_KEYS)) if role == 'probe' else -1
            embedding = embedding_to_numpy(sample_field(sample, 'pred_embedding', META_KEYS))
            self.results.append((role, identity, embedding))

    def compute_metrics(self, results):
        probes = [(identity, emb) for role, identity, emb in results if role == 'probe']
        distractors = [emb for role, _, emb in results if role == 'distractor']
        if not probes:
            raise ValueError("no sample has role 'probe'; identification needs probe images")
        dim = probes[0][1].size
        result = identification_rank1(
            np.stack([emb for _, emb in probes]), np.array([identity for identity, _ in probes]),
            np.stack(distractors) if distractors else np.empty((0, dim), np.float32),
            chunk_size=self.chunk_size, memory_bytes=self.memory_bytes, backend=self.backend)
        return dict(rank1=result.rank1, num_correct=result.num_correct,
                    num_trials=result.num_trials, num_probes=result.num_probes,
                    num_distractors=result.num_distractors)
