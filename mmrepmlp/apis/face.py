"""Face embeddings of images with a face model: of image files, for identification over image
lists, and of decoded images (the aligned IJB faces)."""
import os.path as osp

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from ..datasets.face import decode_face_image
from ..utils.errors import ToolError


def read_image_list(path, labelled):
    """``(paths, labels)`` from a text file of ``image_path [label]`` lines (labels when
    ``labelled``, else None); relative image paths are relative to the list's folder."""
    root, paths, labels = osp.dirname(osp.abspath(path)), [], []
    try:
        lines = [line.split() for line in open(path) if line.strip()]
    except OSError as error:
        raise ToolError(f'cannot read the image list {path} ({error.strerror}); give a text '
                        'file of "image_path label" lines') from error
    for number, fields in enumerate(lines, start=1):
        if len(fields) != (2 if labelled else 1) or (labelled and not fields[1].isdigit()):
            form = '"image_path label"' if labelled else '"image_path"'
            raise ToolError(f'{path} line {number}: {" ".join(fields)!r} is not {form}; '
                            'one image per line')
        paths.append(osp.join(root, fields[0]))
        labels.append(int(fields[1]) if labelled else 0)
    if not paths:
        raise ToolError(f'the image list {path} is empty; give one image per line')
    return paths, (np.array(labels) if labelled else None)


def embed_images(model, cfg, paths, batch_size=64):
    """The ``(N, D)`` float32 embeddings (each image's plus its mirror's, as the model's
    ``predict`` gives them) of image files, through the config's test pipeline without its
    loading step.

    Args:
        model (FaceRecognizer): the model, in eval mode.
        cfg (Config): its config (``test_dataloader.dataset.pipeline``).
        paths (Sequence[str]): the image files.
        batch_size (int): images per forward pass.
    """
    pipeline = embedding_pipeline(cfg)
    embeddings = []
    for start in range(0, len(paths), batch_size):
        images = []
        for path in paths[start:start + batch_size]:
            try:
                encoded = open(path, 'rb').read()
            except OSError as error:
                raise ToolError(f'cannot read image {path} ({error.strerror}); fix the '
                                'image list') from error
            images.append(decode_face_image(encoded, f'image {path}'))
        embeddings.append(embed_arrays(model, pipeline, images))
    return np.concatenate(embeddings)


def embedding_pipeline(cfg):
    """The test pipeline of ``cfg`` without its loading step: from a decoded BGR image to the
    model's input (in the config's registry scope)."""
    init_default_scope(cfg.get('default_scope') or 'mmpretrain')
    return Compose([t for t in cfg.test_dataloader.dataset.pipeline
                    if not str(t['type']).startswith('Load')])


def embed_arrays(model, pipeline, images):
    """The ``(N, D)`` float32 embeddings (image plus mirror, as ``predict`` gives them) of
    decoded BGR ``uint8`` images, in one forward pass.

    Args:
        model (FaceRecognizer): the model, in eval mode.
        pipeline (Callable): :func:`embedding_pipeline` of its config.
        images (Sequence[np.ndarray]): ``(H, W, 3)`` images.
    """
    samples = [pipeline(dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2],
                             sample_idx=0, set_name='', index_in_set=0, issame=False))
               for image in images]
    with torch.no_grad():
        predictions = model.test_step(pseudo_collate(samples))
    return np.stack([p.pred_embedding.cpu().numpy() for p in predictions]).astype(np.float32)
