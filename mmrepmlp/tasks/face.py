"""Face recognition (MS1M-V2 training, LFW/CFP-FP/AgeDB-30 verification) on MMPretrain."""
import os.path as osp

from ..datasets.face import RecordReader, read_face_layout
from ..evaluation.metrics import FaceEmbeddingDump
from ..utils.errors import InputError
from ..utils.files import check_writable
from .base import TestOutput, dataset_configs, register_task
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

    def check_training_data(self, cfg):
        """The identities of the training set against the head's classes (labels beyond them
        would fail in the loss at some iteration); a corrupt or truncated file fails here."""
        _identity_count_check(cfg)

    def check_test_output(self, out, out_item):
        if out_item != 'metrics' and not out.endswith('.npz'):
            raise InputError(f'--out {out}: face embeddings are written as numpy arrays; end the '
                             'file name with .npz (or pass --out-item metrics for json/yaml)')
        check_writable(out)

    def prepare_test_output(self, cfg, out, out_item):
        return TestOutput(metrics=[FaceEmbeddingDump(out)] if out_item != 'metrics' else [])


def _identity_count_check(cfg):
    """Raise :class:`InputError` when a face training set of ``cfg`` has more identities than
    the head has classes (reading the identity records, as the data set does at start)."""
    num_classes = (cfg.model.get('head') or {}).get('num_classes')
    for dataset in dataset_configs(cfg.get('train_dataloader')):
        if str(dataset.get('type')).split('.')[-1] != 'MXFaceDataset':
            continue
        root = dataset.get('data_root', '')
        rec = osp.join(root, dataset.get('rec_file', 'train.rec'))
        idx = osp.join(root, dataset.get('idx_file', 'train.idx'))
        for path in (rec, idx):
            if not osp.isfile(path):
                raise InputError(f'train_dataloader.dataset: {path} does not exist; set '
                                 'data_root (rec_file, idx_file) to the training set')
        identities = read_face_layout(RecordReader(rec, idx)).num_identities
        if num_classes is not None and identities > num_classes:
            preprocessors = {'data_preprocessor': cfg.get('data_preprocessor'),
                             'model.data_preprocessor': cfg.model.get('data_preprocessor')}
            keys = ['model.head.num_classes'] + [
                f'{key}.num_classes' for key, node in preprocessors.items()
                if isinstance(node, dict) and 'num_classes' in node]
            raise InputError(f'{rec} holds {identities} identities (labels 0 to '
                             f'{identities - 1}) and model.head.num_classes is {num_classes}, '
                             f'so labels {num_classes} and above have no class; set '
                             f'--cfg-options {" ".join(f"{key}={identities}" for key in keys)}')


def _evaluator_list(cfg):
    evaluator = cfg.get('test_evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    if isinstance(evaluator, dict):
        cfg.test_evaluator = evaluator = [evaluator]
    return list(evaluator or [])
