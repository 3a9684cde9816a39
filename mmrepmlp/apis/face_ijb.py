"""Embed the images of an IJB-B / IJB-C set with a face model, in chunks saved as they finish.

Each image is read from ``loose_crop/``, aligned to the 112x112 ArcFace template by its five
landmarks, run through the config's test pipeline and embedded with its horizontal flip
(``FaceRecognizer.predict``). The embeddings of every ``chunk_size`` images are written
atomically to ``<folder>/chunk_<k>.npy``; a run that finds a chunk already there loads it, so an
interrupted run resumes where it stopped and a finished one is evaluated again in other modes
without embedding. ``<folder>/manifest.json`` records what the chunks were made from (weights,
model, pipeline, image list, chunk size); another run of different inputs is refused.
Memory: the embeddings only (IJB-C's ~470k x 512 float32: about 1 GB).
"""
import hashlib
import json
import os.path as osp

import cv2
import numpy as np
import torch

from ..datasets.face import align_face, ijb_files
from ..tasks import task_of
from ..utils.errors import InputError
from ..utils.files import atomic_write, write_text
from .face import embed_arrays

MANIFEST = 'manifest.json'


class AlignedFaces(torch.utils.data.Dataset):
    """``(index, aligned BGR face or None when the image cannot be read)`` of IJB images."""

    def __init__(self, image_folder, names, landmarks):
        self.image_folder, self.names, self.landmarks = image_folder, names, landmarks

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        image = cv2.imread(osp.join(self.image_folder, self.names[index]), cv2.IMREAD_COLOR)
        return index, None if image is None else align_face(image, self.landmarks[index])


def file_digest(path, block=2**24):
    """The SHA-256 of a file's contents (hex)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(block), b''):
            digest.update(chunk)
    return digest.hexdigest()


def run_manifest(cfg, checkpoint, meta, chunk_size):
    """What the embeddings of a run depend on, as a JSON-able dict."""
    names = hashlib.sha256('\n'.join(meta.names).encode()).hexdigest()
    return dict(checkpoint_sha256=file_digest(checkpoint), model=repr(cfg.model.to_dict()),
                pipeline=repr(cfg.test_dataloader.dataset.pipeline), images=len(meta.names),
                image_list_sha256=names, chunk_size=chunk_size)


def check_manifest(folder, manifest):
    """Write ``manifest`` to ``folder`` or, when one is there, refuse a different one."""
    path = osp.join(folder, MANIFEST)
    if osp.isfile(path):
        with open(path) as f:
            saved = json.load(f)
        differing = sorted(key for key in manifest if saved.get(key) != manifest[key])
        if differing:
            raise InputError(f'the saved embeddings in {folder} were made from other inputs '
                             f'({", ".join(differing)} differ); pass another --work-dir, or '
                             'delete that folder to embed again')
    else:
        write_text(path, json.dumps(manifest, indent=1) + '\n')


def chunk_path(folder, index):
    return osp.join(folder, f'chunk_{index:05d}.npy')


def embed_ijb(model, cfg, checkpoint, root, target, meta, folder, chunk_size=20000,
              batch_size=128, num_workers=4, log=print):
    """The ``(N, D)`` float32 image + flip embeddings of every image of ``meta``, from saved
    chunks where they exist (see the module docstring).

    Args:
        model (FaceRecognizer): the model, in eval mode, on its device.
        cfg (Config): its config.
        checkpoint (str): the weights it was loaded from (identifies saved chunks).
        root (str): the IJB folder (``loose_crop/``, ``meta/``).
        target (str): ``'IJBB'`` or ``'IJBC'``.
        meta (IJBMeta): the set's meta files, as read by ``read_ijb_meta``.
        folder (str): where the chunks and their manifest are kept.
        chunk_size (int): images per saved chunk.
        batch_size (int): images per forward pass.
        num_workers (int): processes reading and aligning images.
        log (Callable[[str], None]): where progress lines go.

    Raises:
        InputError: an image cannot be read, or the folder holds chunks of other inputs.
    """
    check_manifest(folder, run_manifest(cfg, checkpoint, meta, chunk_size))
    faces = AlignedFaces(ijb_files(root, target)['images'], meta.names, meta.landmarks)
    pipeline = task_of(cfg).image_pipeline(cfg)
    embeddings = None
    starts = range(0, len(faces), chunk_size)
    for index, start in enumerate(starts):
        stop, path = min(start + chunk_size, len(faces)), chunk_path(folder, index)
        if osp.isfile(path):
            chunk = _load_chunk(path, stop - start)
            log(f'chunk {index + 1}/{len(starts)}: loaded {path}')
        else:
            chunk = _embed_chunk(model, pipeline, faces, range(start, stop), batch_size,
                                 num_workers)
            atomic_write(path, lambda tmp, chunk=chunk: _save_array(tmp, chunk))
            log(f'chunk {index + 1}/{len(starts)}: embedded images {start}..{stop - 1}')
        if embeddings is None:
            embeddings = np.empty((len(faces), chunk.shape[1]), dtype=np.float32)
        embeddings[start:stop] = chunk
    return embeddings


def _embed_chunk(model, pipeline, faces, indices, batch_size, num_workers):
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(faces, indices), batch_size=batch_size, num_workers=num_workers,
        collate_fn=list)
    parts = []
    for batch in loader:
        unreadable = [index for index, face in batch if face is None]
        if unreadable:
            name = faces.names[unreadable[0]]
            raise InputError(f'cannot read image {osp.join(faces.image_folder, name)} (line '
                             f'{unreadable[0] + 1} of the landmark list); restore it or fix '
                             'the IJB folder')
        parts.append(embed_arrays(model, pipeline, [face for _, face in batch]))
    return np.concatenate(parts)


def _load_chunk(path, rows):
    try:
        chunk = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f'cannot read the saved embeddings {path} ({error}); delete it to '
                         'embed its images again') from error
    if chunk.ndim != 2 or len(chunk) != rows:
        raise InputError(f'the saved embeddings {path} hold {chunk.shape} instead of {rows} '
                         'rows; delete it to embed its images again')
    return chunk


def _save_array(path, array):
    with open(path, 'wb') as f:  # a file object: np.save would append .npy to the name
        np.save(f, array)
