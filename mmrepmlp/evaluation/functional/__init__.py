"""Pure numpy functions behind the metrics: face verification on pairs, IJB-B/C template
verification and rank-1 identification among distractors."""
from .face_verification import (
    ACCURACY_THRESHOLDS,
    FAR_THRESHOLDS,
    VerificationResult,
    acceptance_rates,
    evaluate_verification,
    fold_indices,
    pair_distances,
    split_pairs,
    threshold_at_far,
    unit_embeddings,
)
from .identification import (
    BACKENDS,
    IdentificationResult,
    identification_rank1,
    resolve_backend,
)
from .ijb import (
    IJB_FAR_TARGETS,
    IJBResult,
    evaluate_ijb,
    image_features,
    pair_scores,
    tar_at_far,
    template_features,
)

__all__ = [
    'ACCURACY_THRESHOLDS', 'FAR_THRESHOLDS', 'VerificationResult', 'acceptance_rates',
    'evaluate_verification', 'fold_indices', 'pair_distances', 'split_pairs', 'threshold_at_far',
    'unit_embeddings', 'BACKENDS', 'IdentificationResult', 'identification_rank1',
    'resolve_backend', 'IJB_FAR_TARGETS', 'IJBResult', 'evaluate_ijb', 'image_features',
    'pair_scores', 'tar_at_far', 'template_features'
]
