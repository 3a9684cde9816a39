"""Face embeddings of images with a face model: of image files, for identification over image
lists, and of decoded images (the aligned IJB faces)."""
import os.path as osp

import numpy as np
import torch
from mmengine.dataset import pseudo_collate

from ..datasets.face import decode_face_image
from ..tasks import task_of
from .cli import ToolError


def read_image_list(path, labelled):
    """``(paths, labels)`` from a text file of ``image_path [label]`` lines (labels when
    ``labelled``, else None); relative image paths are relative to the list's folder."""
    root, paths, labels = osp.dirname(osp.abspath(path)), [], []
    try:
        with open(path, encoding='utf-8') as f:
            lines = [line.split() for line in f if line.strip()]
    except OSError as error:
        raise ToolError(f'cannot read the image list {path} ({error.strerror}); give a text '
                        'file of "image_path label" lines') from error
    except UnicodeDecodeError as error:
        raise ToolError(f'the image list {path} is not UTF-8 text (byte {error.start}); save it '
                        'as UTF-8') from error
    for number, fields in enumerate(lines, start=1):
        if len(fields) != (2 if labelled else 1) or (labelled and not _is_label(fields[1])):
            form = '"image_path label"' if labelled else '"image_path"'
            raise ToolError(f'{path} line {number}: {" ".join(fields)!r} is not {form}; '
                            'one image per line')
        paths.append(osp.join(root, fields[0]))
        labels.append(int(fields[1]) if labelled else 0)
    if not paths:
        raise ToolError(f'the image list {path} is empty; give one image per line')
    return paths, (np.array(labels) if labelled else None)


def _is_label(text):
    """Digits 0-9 only: ``str.isdigit`` also takes superscripts such as '²', which int()
    refuses."""
    return text.isascii() and text.isdigit()


def embed_images(model, cfg, paths, batch_size=64):
    """The ``(N, D)`` float32 embeddings (each image's plus its mirror's, as the model's
    ``predict`` gives them) of image files, each made a model input as the config's task does
    (:meth:`~mmrepmlp.tasks.Task.image_pipeline`).

    Args:
        model (FaceRecognizer): the model, in eval mode.
        cfg (Config): its config.
        paths (Sequence[str]): the image files.
        batch_size (int): images per forward pass.
    """
    to_input = task_of(cfg).image_pipeline(cfg)
    embeddings = []
    for start in range(0, len(paths), batch_size):
        images = [decode_face_image(_read_bytes(path), f'image {path}')
                  for path in paths[start:start + batch_size]]
        embeddings.append(embed_arrays(model, to_input, images))
    return np.concatenate(embeddings)


def _read_bytes(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as error:
        raise ToolError(f'cannot read image {path} ({error.strerror}); fix the image '
                        'list') from error


def embed_arrays(model, to_input, images):
    """The ``(N, D)`` float32 embeddings (image plus mirror, as ``predict`` gives them) of
    decoded BGR ``uint8`` images, in one forward pass.

    Args:
        model (FaceRecognizer): the model, in eval mode.
        to_input (Callable): its config's ``task_of(cfg).image_pipeline(cfg)``.
        images (Sequence[np.ndarray]): ``(H, W, 3)`` images.
    """
    with torch.no_grad():
        predictions = model.test_step(pseudo_collate([to_input(image) for image in images]))
    return np.stack([p.pred_embedding.cpu().numpy() for p in predictions]).astype(np.float32)
