"""Pack face pairs into a verification .bin (insightface's format, as lfw.bin) for
FaceVerificationDataset.

    python tools/dataset_converters/face_pairs_to_bin.py PAIRS.txt OUT.bin

PAIRS.txt has one pair per line, ``image_a image_b issame`` with ``issame`` 1 (the same person)
or 0; image paths are relative to the folder of PAIRS.txt unless absolute, and blank lines are
skipped. The encoded images (.jpg or .png, aligned faces as the model's training data) are
copied as they are, each decoded once to make sure the test will read it. OUT.bin is written
atomically, or not at all on any error. Read it with::

    val_dataloader = dict(dataset=dict(bin_files=dict(mine='OUT.bin')))
"""
import argparse
import os.path as osp

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis import ToolError
from mmrepmlp.apis.cli import tool_main
from mmrepmlp.datasets.face import decode_face_image, dump_verification_bin
from mmrepmlp.utils.files import check_not_overwriting, check_writable

LABELS = {'1': True, '0': False}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pack "image_a image_b issame" lines into a verification .bin.')
    parser.add_argument('pairs', help='text file of "image_a image_b issame" lines (1 or 0)')
    parser.add_argument('out', help='the .bin file to write')
    return parser.parse_args(argv)


def read_pairs(path):
    """``(image paths in pair order, issame list)`` of a pairs file."""
    root = osp.dirname(osp.abspath(path))
    try:
        with open(path) as f:
            lines = [(number, line.split()) for number, line in enumerate(f, start=1)]
    except OSError as error:
        raise ToolError(f'cannot read the pairs file {path} ({error.strerror}); give a text '
                        'file of "image_a image_b issame" lines') from error
    paths, issame = [], []
    for number, fields in lines:
        if not fields:
            continue
        if len(fields) != 3 or fields[2] not in LABELS:
            raise ToolError(f'{path} line {number}: {" ".join(fields)!r} is not "image_a '
                            'image_b issame" with issame 1 or 0')
        paths += [osp.join(root, fields[0]), osp.join(root, fields[1])]
        issame.append(LABELS[fields[2]])
    if not issame:
        raise ToolError(f'the pairs file {path} lists no pair; one "image_a image_b issame" '
                        'line per pair')
    return paths, issame


def read_image(path):
    """The encoded bytes of ``path``, checked to decode."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as error:
        raise ToolError(f'cannot read image {path} ({error.strerror}); fix the pairs file') \
            from error
    decode_face_image(data, f'image {path}')
    return data


@tool_main
def main(argv=None):
    args = parse_args(argv)
    paths, issame = read_pairs(args.pairs)
    check_not_overwriting([args.out], [args.pairs, *paths])
    check_writable(args.out)
    images = [read_image(path) for path in paths]
    dump_verification_bin(images, issame, args.out)
    same = sum(issame)
    print(f'packed {len(issame)} pairs ({same} same, {len(issame) - same} different) into '
          f'{args.out}')


if __name__ == '__main__':
    main()
