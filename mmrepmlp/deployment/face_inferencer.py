"""One face image's embedding through MMPretrain's inferencer API.

``mmpretrain.inference_model`` picks its inferencer by the model's task, and MMPretrain has
none for face recognition: a face model is an ``ImageClassifier`` whose predictions carry an
embedding, not class scores. :class:`FaceEmbeddingInferencer` is that inferencer, and it serves
``inference_model`` for face models (registered with :mod:`mmrepmlp.compat.inference_model`).
"""
from mmcv.image import imread
from mmengine.dataset import Compose, default_collate
from mmpretrain.apis import BaseInferencer
from mmpretrain.registry import TRANSFORMS

from ..compat.inference_model import FACE_RECOGNITION, register_inferencer


class FaceEmbeddingInferencer(BaseInferencer):
    """The embedding of face images: each image's plus its mirror's with the model's
    ``flip_test`` (the verification protocol), as ``predict`` gives it, not normalised.

    Args:
        model (BaseModel | str | Config): a face model, its config path or its zoo name
            (e.g. ``'repmlp-faceres50_8xb64_ms1mv2'``).
        pretrained (bool | str): the checkpoint of a config or zoo name. Defaults to True
            (the zoo entry's weights; none are published for these models).
        device (str, optional): where to run.

    Example:
        >>> inferencer = FaceEmbeddingInferencer('configs/repmlp_face/'
        ...     'repmlp-faceres50_8xb64_ms1mv2.py', pretrained='iter_420000.pth')
        >>> inferencer('face.jpg')[0]['pred_embedding'].shape
        (512,)

    Calling it returns one ``dict(pred_embedding=np.ndarray (D,))`` per image (an image
    path, a BGR ``uint8`` array, or a list of them), or the data samples with
    ``return_datasamples=True``.
    """

    def _init_pipeline(self, cfg):
        # images are decoded here, as the face data sets decode them (BGR)
        transforms = [t for t in cfg.test_dataloader.dataset.pipeline
                      if not str(t['type']).split('.')[-1].startswith('Load')]
        return Compose([TRANSFORMS.build(t) for t in transforms])

    def preprocess(self, inputs, batch_size=1):
        def load(image):
            image = imread(image) if isinstance(image, str) else image
            return self.pipeline(dict(img=image, img_shape=image.shape[:2],
                                      ori_shape=image.shape[:2]))

        for chunk in self._get_chunk_data(map(load, inputs), batch_size):
            yield default_collate(chunk)

    def visualize(self, ori_inputs, preds, **kwargs):
        return None

    def postprocess(self, preds, visualization, return_datasamples=False):
        if return_datasamples:
            return preds
        return [dict(pred_embedding=p.pred_embedding.cpu().numpy()) for p in preds]


register_inferencer(FACE_RECOGNITION, FaceEmbeddingInferencer)
