"""MegaFace-style rank-1 identification from saved embeddings.

    python tools/analysis_tools/face_identification.py --probe probe.npz
        [--distractors distractors.npy] [--gallery gallery.npz]
        [--chunk-size N | --memory-mb MB] [--backend auto|numpy|torch|faiss] [--device DEV]

``probe.npz`` (and ``gallery.npz``) hold ``embeddings`` ``(N, D)`` and integer ``labels``
``(N,)``. The distractors are an ``(M, D)`` ``.npy`` (memory-mapped, so 1M x 512 float32 is
read chunk by chunk) or an ``.npz`` with ``embeddings`` (loaded whole). Without ``--gallery``
every ordered pair of two probe images of one identity is a trial (MegaFace challenge 1);
with it, each probe image is one trial against the gallery and the distractors. Prints rank-1
and the counts.
"""
import argparse
import os.path as osp
import sys
import zipfile

import numpy as np

from mmrepmlp.evaluation.functional import BACKENDS, identification_rank1
from mmrepmlp.utils.errors import ToolError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Rank-1 identification among distractors from saved embeddings.')
    parser.add_argument('--probe', required=True,
                        help='.npz with the probe embeddings and labels')
    parser.add_argument('--distractors', help='.npy (N, D) or .npz with embeddings')
    parser.add_argument('--gallery', help='.npz with gallery embeddings and labels')
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


def main(argv=None):
    args = parse_args(argv)
    try:
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
    except ToolError as error:
        sys.exit(f'error: {error}')
    trials = 'probe images' if args.gallery else 'same-identity probe pairs'
    print(f'rank-1: {100 * result.rank1:.2f}% ({result.num_correct} of {result.num_trials} '
          f'{trials})')
    print(f'probes: {result.num_probes} images of {result.num_identities} identities; '
          f'distractors: {result.num_distractors}; backend: {result.backend}, chunks of '
          f'{result.chunk_size}; decided again in float64: {result.num_refined}')


if __name__ == '__main__':
    main()
