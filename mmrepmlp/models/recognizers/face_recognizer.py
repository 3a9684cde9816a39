"""The face-recognition model: backbone -> embedding neck -> margin head."""
import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..arguments import check_bool


@MODELS.register_module()
class FaceRecognizer(ImageClassifier):
    """A face model trained as a classifier over identities and used as an embedder.

    Training is MMPretrain's ``ImageClassifier``: the backbone's last feature map goes through
    an embedding neck (e.g. :class:`~mmrepmlp.models.necks.FaceEmbeddingNeck`) to the
    embedding, and a margin head (:class:`~mmrepmlp.models.heads.MarginSoftmaxHead`) gives the
    loss over the training identities. For testing the head is not used: ``predict`` returns
    data samples with ``pred_embedding``, the embedding of each image plus, with
    ``flip_test``, the embedding of its horizontal mirror (the verification protocol of LFW,
    CFP-FP and AgeDB-30; the metrics normalise it). ``forward(mode='tensor')`` returns the
    embedding of the images as they are, which is what deployment and export use.

    Args:
        backbone (dict): the backbone config.
        neck (dict): the embedding neck config.
        head (dict): the margin head config (its ``num_classes`` is the number of training
            identities).
        flip_test (bool): add the mirrored image's embedding in ``predict``. Defaults to True.
        **kwargs: the other arguments of MMPretrain's ``ImageClassifier``
            (``data_preprocessor``, ``train_cfg``, ``init_cfg``, ``pretrained``).
    """

    def __init__(self, backbone, neck, head, flip_test=True, **kwargs):
        super().__init__(backbone, neck=neck, head=head, **kwargs)
        self.flip_test = check_bool(flip_test, 'flip_test', 'FaceRecognizer')

    def extract_feat(self, inputs, stage='neck'):
        """The embeddings ``(N, D)`` of ``inputs`` (``stage='backbone'``: the feature maps)."""
        feats = super().extract_feat(inputs, stage=stage)
        return feats[-1] if stage == 'neck' else feats

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'tensor':
            return self.extract_feat(inputs)
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs, data_samples):
        return self.head.loss((self.extract_feat(inputs), ), data_samples)

    def predict(self, inputs, data_samples=None, **kwargs):
        """Data samples with ``pred_embedding``: a float32 ``(D,)`` tensor per image."""
        embeddings = self.extract_feat(inputs)
        if self.flip_test:
            embeddings = embeddings + self.extract_feat(torch.flip(inputs, dims=[3]))
        embeddings = embeddings.float().detach()
        if data_samples is None:
            data_samples = [DataSample() for _ in range(inputs.size(0))]
        for sample, embedding in zip(data_samples, embeddings):
            sample.set_field(embedding, 'pred_embedding')
        return data_samples
