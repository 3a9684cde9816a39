"""The face-recognition model: backbone -> embedding neck -> margin head."""
import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...reparam import reparameterize_children
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

    The deploy form (:meth:`switch_to_deploy`, ``deploy=True``) is the embedding model alone:
    backbone and neck converted, the margin head (only used in training, and at millions of
    identities larger than the rest) dropped.

    A model-parallel head (:class:`~mmrepmlp.models.heads.PartialFCHead` over several
    processes) gets the embeddings' gradient multiplied by its ``ddp_gradient_scale``, and its
    centres are left out of DDP: each process holds different ones.

    Args:
        backbone (dict): the backbone config.
        neck (dict): the embedding neck config.
        head (dict): the margin head config (its ``num_classes`` is the number of training
            identities).
        flip_test (bool): add the mirrored image's embedding in ``predict``. Defaults to True.
        deploy (bool): build the deploy form (no head). Defaults to False.
        **kwargs: the other arguments of MMPretrain's ``ImageClassifier``
            (``data_preprocessor``, ``train_cfg``, ``init_cfg``, ``pretrained``).
    """

    def __init__(self, backbone, neck, head, flip_test=True, deploy=False, **kwargs):
        deploy = check_bool(deploy, 'deploy', 'FaceRecognizer')
        super().__init__(backbone, neck=neck, head=None if deploy else head, **kwargs)
        self.deploy = deploy
        self.flip_test = check_bool(flip_test, 'flip_test', 'FaceRecognizer')
        # read by DistributedDataParallel when it wraps this model
        self._ddp_params_and_buffers_to_ignore = [
            f'head.{name}' for name in getattr(getattr(self, 'head', None), 'sharded_parameters',
                                               ())]

    def switch_to_deploy(self):
        """Convert backbone and neck to their deploy forms and drop the head; idempotent."""
        if self.deploy:
            return
        reparameterize_children(self)
        del self.head
        self.deploy = True

    def extract_feat(self, inputs, stage='neck'):
        """The embeddings ``(N, D)`` of ``inputs`` (``stage='backbone'``: the feature maps)."""
        feats = super().extract_feat(inputs, stage=stage)
        return feats[-1] if stage == 'neck' else feats

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'tensor':
            return self.extract_feat(inputs)
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs, data_samples):
        embeddings = self.extract_feat(inputs)
        scale = getattr(self.head, 'ddp_gradient_scale', 1)
        if scale != 1 and embeddings.requires_grad:
            embeddings.register_hook(lambda grad: grad * scale)
        return self.head.loss((embeddings, ), data_samples)

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
