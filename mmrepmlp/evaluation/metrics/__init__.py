"""MMEngine metrics, registered in MMPretrain's ``METRICS``: face verification on ``.bin``
pairs (and a dump of their embeddings), MegaFace-style identification, and the atomic
prediction dump of ``tools/test.py --out``."""
from .dump import DumpPredictions
from .face_identification import FaceIdentificationMetric
from .face_verification import FaceEmbeddingDump, FaceVerificationMetric, plot_verification

__all__ = [
    'DumpPredictions', 'FaceEmbeddingDump', 'FaceIdentificationMetric', 'FaceVerificationMetric',
    'plot_verification'
]
