"""Face recognition (MS1M-V2 training, LFW/CFP-FP/AgeDB-30 verification) on MMPretrain."""
from ..evaluation.metrics import FaceEmbeddingDump
from ..utils.errors import InputError
from ..utils.files import check_writable
from .base import TestOutput, register_task
from .classification import ClassificationTask

FACE_MODELS = ('FaceRecognizer', )


@register_task
class FaceTask(ClassificationTask):
    """Configs whose model is a :class:`~mmrepmlp.models.FaceRecognizer`.

    Like classification, except for testing: ``--show-dir DIR`` makes the verification
    metric save, per ``.bin`` set, a PNG of the ROC curve and the histograms of same/different
    pair distances; ``--out FILE.npz`` saves the embeddings of every set (and their pair
    labels); ``--tta`` is refused, because the model already adds the mirrored image's
    embedding (``flip_test``).
    """

    name = 'face'
    fallback = False

    def claims(self, cfg):
        model = cfg.get('model') or {}
        return str(model.get('type', '')).split('.')[-1] in FACE_MODELS

    def enable_visualization(self, cfg, show, show_dir, wait_time, interval):
        if show:
            raise InputError('--show: face verification has no per-image view; --show-dir DIR '
                             'saves ROC curves and distance histograms per set')
        metrics = [m for m in _evaluator_list(cfg) if
                   str(m.get('type', '')).split('.')[-1] == 'FaceVerificationMetric']
        if not metrics:
            raise InputError('--show-dir needs a FaceVerificationMetric in test_evaluator')
        for metric in metrics:
            metric.plot_dir = show_dir

    def enable_tta(self, cfg):
        raise InputError("--tta: face models already add the mirrored image's embedding "
                         '(FaceRecognizer flip_test=True), which is the test-time augmentation '
                         'of the verification protocol')

    def check_test_output(self, out, out_item):
        if out_item != 'metrics' and not out.endswith('.npz'):
            raise InputError(f'--out {out}: face embeddings are written as numpy arrays; end the '
                             'file name with .npz (or pass --out-item metrics for json/yaml)')
        check_writable(out)

    def prepare_test_output(self, cfg, out, out_item):
        return TestOutput(metrics=[FaceEmbeddingDump(out)] if out_item != 'metrics' else [])


def _evaluator_list(cfg):
    evaluator = cfg.get('test_evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    if isinstance(evaluator, dict):
        cfg.test_evaluator = evaluator = [evaluator]
    return list(evaluator or [])
