"""IJB-B / IJB-C 1:1 template verification of a face model, as insightface evaluates it.

    python tools/analysis_tools/face_ijb.py CONFIG CHECKPOINT --data-root data/IJB_release/IJBC
        [--target IJBB|IJBC] [--work-dir DIR] [--chunk-size N] [--batch-size N]
        [--num-workers N] [--device DEV] [--no-detector-score] [--normalize-images]

``--data-root`` holds insightface's layout: ``loose_crop/`` and ``meta/<target>_*.txt``. Every
image is aligned to the 112x112 ArcFace template by its five landmarks and embedded with its
flip; the embeddings are saved in chunks under ``--work-dir`` as they are made, so that an
interrupted run resumes and a finished one is evaluated again (other modes) without
embedding. Image features keep their norm (N1; ``--normalize-images``: N0) and are weighted
by the detector score (D1; ``--no-detector-score``: D0); flip embeddings are added (F2).
Prints the TAR at FAR = 1e-6 ... 1e-1 and writes, atomically, the pair scores (``.npy``), the
table (``.json``) and the ROC plot (``.png``) next to the chunks.
"""
import argparse
import json
import os.path as osp

import numpy as np
import torch

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis import load_model
from mmrepmlp.apis.cli import ToolError, tool_main
from mmrepmlp.apis.face_ijb import embed_ijb
from mmrepmlp.datasets.face import IJB_TARGETS, read_ijb_meta
from mmrepmlp.evaluation.functional import evaluate_ijb
from mmrepmlp.utils.errors import InputError
from mmrepmlp.utils.files import atomic_write, check_not_overwriting, write_text
from mmrepmlp.visualization import plot_ijb_roc


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text} is not a positive integer')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='IJB-B/IJB-C 1:1 verification (TAR at FAR).')
    parser.add_argument('config', help='the face model config')
    parser.add_argument('checkpoint', help='its weights')
    parser.add_argument('--data-root', required=True,
                        help='the IJB folder with loose_crop/ and meta/')
    parser.add_argument('--target', type=str.upper, choices=IJB_TARGETS, default='IJBC',
                        help='the set (default IJBC)')
    parser.add_argument('--work-dir', help='where the embeddings and results are kept '
                        '(default work_dirs/ijb/<config name>/<target>)')
    parser.add_argument('--chunk-size', type=positive_int, default=20000,
                        help='images per saved chunk of embeddings (default 20000)')
    parser.add_argument('--batch-size', type=positive_int, default=128,
                        help='images per forward pass (default 128)')
    parser.add_argument('--num-workers', type=int, default=4,
                        help='processes reading and aligning images (default 4)')
    parser.add_argument('--device', help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--no-detector-score', action='store_true',
                        help='do not weight image features by the detector score (D0)')
    parser.add_argument('--normalize-images', action='store_true',
                        help='L2-normalise each image feature before pooling (N0)')
    return parser.parse_args(argv)


def mode_name(args):
    """insightface's name of the evaluation mode, e.g. ``N1D1F2``."""
    return f'N{int(not args.normalize_images)}D{int(not args.no_detector_score)}F2'


def tar_table(name, result):
    """The TAR-at-FAR table (percent) as markdown lines."""
    header = ' | '.join(f'{far:.0e}' for far in result.far_targets)
    row = ' | '.join(f'{100 * tar:.2f}' for tar in result.tar)
    return [f'| TAR (%) at FAR | {header} |', '|---|' + '---:|' * len(result.tar),
            f'| {name} | {row} |']


def save_results(prefix, name, result, scores):
    """``<prefix>.npy`` (pair scores), ``<prefix>.json`` (the table), ``<prefix>.png`` (ROC)."""
    summary = dict(name=name, auc=result.auc, positive_pairs=result.num_positive,
                   negative_pairs=result.num_negative,
                   tar_at_far={f'{far:.0e}': float(tar)
                               for far, tar in zip(result.far_targets, result.tar)},
                   far_reached={f'{far:.0e}': float(reached)
                                for far, reached in zip(result.far_targets, result.far)})
    atomic_write(f'{prefix}.npy', lambda tmp: _save_npy(tmp, scores))
    write_text(f'{prefix}.json', json.dumps(summary, indent=1) + '\n')
    plot_ijb_roc(result, f'{prefix}.png', title=f'ROC of {name}')


def _save_npy(path, array):
    with open(path, 'wb') as f:
        np.save(f, array)


def evaluate(args):
    config_name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', 'ijb', config_name, args.target.lower())
    check_not_overwriting([work_dir], [args.config, args.checkpoint, args.data_root])
    meta = read_ijb_meta(args.data_root, args.target)
    model, cfg = load_model(args.config, args.checkpoint)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model.to(device)
    print(f'{args.target}: {len(meta.names)} images, {len(np.unique(meta.templates))} '
          f'templates, {len(meta.labels)} pairs; embeddings in {work_dir}')
    embeddings = embed_ijb(model, cfg, args.checkpoint, args.data_root, args.target, meta,
                           osp.join(work_dir, 'embeddings'), args.chunk_size,
                           args.batch_size, args.num_workers)
    scores_of = None if args.no_detector_score else meta.detector_scores
    result, scores = evaluate_ijb(embeddings, meta.templates, meta.medias, meta.pairs,
                                  meta.labels, scores_of, keep_norm=not args.normalize_images)
    name = f'{config_name}-{args.target}-{mode_name(args)}'
    save_results(osp.join(work_dir, f'{args.target.lower()}_{mode_name(args)}'), name, result,
                 scores)
    print('\n'.join(tar_table(name, result)))
    print(f'AUC {100 * result.auc:.2f}%; {result.num_positive} same-person and '
          f'{result.num_negative} different-person pairs')
    return result


@tool_main
def main(argv=None):
    args = parse_args(argv)
    try:
        return evaluate(args)
    except InputError:  # already names the problem and the fix
        raise
    except ValueError as error:  # what the protocol refuses (NaN embeddings, one-sided pairs)
        raise ToolError(f'cannot evaluate {args.target}: {error}') from error


if __name__ == '__main__':
    main()
