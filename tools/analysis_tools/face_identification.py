"""MegaFace-style rank-1 identification from saved embeddings or from image lists.

    python tools/analysis_tools/face_identification.py --probe probe.npz
        [--distractors distractors.npy] [--gallery gallery.npz]
        [--chunk-size N | --memory-mb MB] [--backend auto|numpy|torch|faiss] [--device DEV]
    python tools/analysis_tools/face_identification.py --config CONFIG --checkpoint CKPT
        --probe probe.txt [--distractors distractors.txt] [--gallery gallery.txt] ...

With ``--config`` and ``--checkpoint`` the lists are text files of ``image_path label`` lines
(``image_path`` for distractors) embedded with the face model (each image plus its mirror);
``--save-features DIR`` keeps the embeddings as the ``.npz``/``.npy`` files this tool reads.

``probe.npz`` (and ``gallery.npz``) hold ``embeddings`` ``(N, D)`` and integer ``labels``
``(N,)``. The distractors are an ``(M, D)`` ``.npy`` (memory-mapped, so 1M x 512 float32 is
read chunk by chunk) or an ``.npz`` with ``embeddings`` (loaded whole). Without ``--gallery``
every ordered pair of two probe images of one identity is a trial (MegaFace challenge 1);
with it, each probe image is one trial against the gallery and the distractors. Prints rank-1
and the counts.
"""
import argparse
import math
import os.path as osp
import zipfile

import numpy as np
import torch

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis import ToolError, load_model
from mmrepmlp.apis.cli import tool_main
from mmrepmlp.apis.face import embed_images, read_image_list
from mmrepmlp.evaluation.functional import BACKENDS, identification_rank1
from mmrepmlp.utils.files import staged_files


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Rank-1 identification among distractors from saved embeddings.')
    parser.add_argument('--probe', required=True,
                        help='.npz with the probe embeddings and labels (an image list with '
                        '--config)')
    parser.add_argument('--distractors', help='.npy (N, D) or .npz with embeddings (an image '
                        'list with --config)')
    parser.add_argument('--gallery', help='.npz with gallery embeddings and labels (an image '
                        'list with --config)')
    parser.add_argument('--config', help='a face model config: embed image lists with it')
    parser.add_argument('--checkpoint', help='the weights of --config')
    parser.add_argument('--save-features', metavar='DIR',
                        help='with --config: save probe.npz, gallery.npz, distractors.npy here')
    parser.add_argument('--batch-size', type=int, default=64, help='images per forward pass')
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument('--chunk-size', type=int, help='distractor rows per chunk')
    budget.add_argument('--memory-mb', type=float, default=1024,
                        help='memory budget of one chunk in MiB (default: 1024)')
    parser.add_argument('--backend', choices=BACKENDS, default='auto',
                        help='faiss when installed, else torch on a CUDA GPU, else numpy')
    parser.add_argument('--device', help="torch's device (default: cuda when available)")
    return parser.parse_args(argv)


def _load(path, option):
    """``np.load`` of a ``.npz`` or a memory-mapped ``.npy``; a ToolError if unreadable."""
    if not osp.isfile(path):
        raise ToolError(f'{option} {path}: no such file')
    try:
        return np.load(path, mmap_mode='r', allow_pickle=False)
    except EOFError as error:  # numpy's word for an empty file
        raise ToolError(f'{option} {path} is empty (0 bytes); save the embeddings again') from error
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ToolError(f'{option} {path} is not a readable .npy/.npz file ({error})') from error


def _npz_array(loaded, key, path, option):
    if not isinstance(loaded, np.lib.npyio.NpzFile) or key not in loaded.files:
        held = ', '.join(loaded.files) if hasattr(loaded, 'files') else 'a single array'
        raise ToolError(f'{option} {path} has no array {key!r} (it holds {held}); save it with '
                        'np.savez(path, embeddings=..., labels=...)')
    try:
        return loaded[key]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ToolError(f'{option} {path}: cannot read {key!r} ({error})') from error


def load_labelled(path, option):
    """``(embeddings, labels)`` of a ``.npz`` with ``embeddings`` and ``labels``."""
    loaded = _load(path, option)
    return tuple(_npz_array(loaded, key, path, option) for key in ('embeddings', 'labels'))


def load_distractors(path):
    """An ``(M, D)`` array: a memory-mapped ``.npy``, or an ``.npz``'s ``embeddings``."""
    loaded = _load(path, '--distractors')
    if isinstance(loaded, np.ndarray):
        return loaded
    return _npz_array(loaded, 'embeddings', path, '--distractors')


def embed_lists(args):
    """``(probe, labels, gallery, gallery_labels, distractors)`` from image lists."""
    if not args.checkpoint:
        raise ToolError('--config needs --checkpoint (the face model to embed with)')
    lists = {option: read_image_list(path, labelled)  # all checked before the model loads
             for option, path, labelled in (('probe', args.probe, True),
                                            ('gallery', args.gallery, True),
                                            ('distractors', args.distractors, False)) if path}
    model, cfg = load_model(args.config, args.checkpoint)
    embedded = {option: (embed_images(model, cfg, paths, args.batch_size), labels)
                for option, (paths, labels) in lists.items()}
    if args.save_features:
        save_features(embedded, args.save_features)
    gallery = embedded.get('gallery', (None, None))
    distractors = embedded['distractors'][0] if 'distractors' in embedded else None
    return (*embedded['probe'], *gallery, distractors)


def save_features(embedded, folder):
    """The embeddings as the files this tool reads, committed together."""
    names = {'probe': 'probe.npz', 'gallery': 'gallery.npz', 'distractors': 'distractors.npy'}
    paths = [osp.join(folder, names[option]) for option in embedded]
    with staged_files(paths) as temporaries:
        for tmp, (embeddings, labels) in zip(temporaries, embedded.values()):
            with open(tmp, 'wb') as f:
                if labels is None:
                    np.save(f, embeddings)
                else:
                    np.savez(f, embeddings=embeddings, labels=labels)


def check_options(args):
    """Refuse a memory budget that is not a positive number and a device this machine lacks,
    before any work."""
    if args.chunk_size is None and not (math.isfinite(args.memory_mb) and args.memory_mb > 0):
        raise ToolError(f'--memory-mb must be a positive number of MiB, got {args.memory_mb}; '
                        'pass e.g. --memory-mb 1024 or --chunk-size N')
    if args.device is None:
        return
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError) as error:
        raise ToolError(f'--device {args.device} is not a torch device ({error}); pass cpu or '
                        'cuda[:N]') from error
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ToolError(f'--device {args.device}: torch.cuda.is_available() is False on this '
                        'machine; pass --device cpu (or leave it out)')


@tool_main
def main(argv=None):
    args = parse_args(argv)
    check_options(args)
    if args.config:
        probe, labels, gallery, gallery_labels, distractors = embed_lists(args)
    else:
        probe, labels = load_labelled(args.probe, '--probe')
        gallery, gallery_labels = (load_labelled(args.gallery, '--gallery') if args.gallery
                                   else (None, None))
        distractors = load_distractors(args.distractors) if args.distractors else None
    try:
        result = identification_rank1(
            probe, labels, distractors, gallery, gallery_labels, chunk_size=args.chunk_size,
            memory_bytes=int(args.memory_mb * 2**20), backend=args.backend,
            device=args.device)
    except ValueError as error:  # what the embeddings or options got wrong
        raise ToolError(error) from error
    trials = 'probe images' if args.gallery else 'same-identity probe pairs'
    print(f'rank-1: {100 * result.rank1:.2f}% ({result.num_correct} of {result.num_trials} '
          f'{trials})')
    print(f'probes: {result.num_probes} images of {result.num_identities} identities; '
          f'distractors: {result.num_distractors}; backend: {result.backend}, chunks of '
          f'{result.chunk_size}; decided again in float64: {result.num_refined}')


if __name__ == '__main__':
    main()
