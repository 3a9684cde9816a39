"""Face embeddings of image files with a face model, for identification over image lists."""
import numpy as np
import torch

from .cli import ToolError


def read_image_list(path, labelled):
    """``(paths, labels)`` from a text file of ``image_path [label]`` lines (labels when
    ``labelled``, else None); relative image paths are relative to the list's folder."""
    import os.path as osp

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
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    from ..datasets.face import decode_face_image

    init_default_scope(cfg.get('default_scope') or 'mmpretrain')
    pipeline = Compose([t for t in cfg.test_dataloader.dataset.pipeline
                        if not str(t['type']).startswith('Load')])
    embeddings = []
    for start in range(0, len(paths), batch_size):
        samples = []
        for path in paths[start:start + batch_size]:
            try:
                encoded = open(path, 'rb').read()
            except OSError as error:
                raise ToolError(f'cannot read image {path} ({error.strerror}); fix the '
                                'image list') from error
            image = decode_face_image(encoded, f'image {path}')
            samples.append(pipeline(dict(img=image, img_shape=image.shape[:2],
                                         ori_shape=image.shape[:2], sample_idx=0,
                                         set_name='', index_in_set=0, issame=False)))
        with torch.no_grad():
            predictions = model.test_step(pseudo_collate(samples))
        embeddings += [p.pred_embedding.cpu().numpy() for p in predictions]
    return np.stack(embeddings).astype(np.float32)
