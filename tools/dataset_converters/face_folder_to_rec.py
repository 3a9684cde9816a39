"""Pack a folder per identity into a face RecordIO pair (.rec + .idx) for MXFaceDataset.

    python tools/dataset_converters/face_folder_to_rec.py SRC OUT [--no-header [--seed S]]
        [--resize N]

SRC holds one folder per identity with its .jpg/.jpeg/.png images (sub-folders included).
Identities are numbered in the sorted order of their folder names and images taken in sorted
order of their paths, as MMPretrain's CustomDataset does on SRC, so that both give the same
labels; a folder without images stays an (empty) identity for that reason. Writes OUT.rec and
OUT.idx (a trailing .rec on OUT is dropped) together, or nothing on any error, in
insightface's layout: record 0 a header, then the images, then one record per identity with
its range of image keys. ``--no-header`` writes a header-less file instead, the images in a
random order (``--seed``); it stores no identity count, so readers count identities up to the
largest label and trailing empty identities are lost. The encoded images are copied as they
are; ``--resize N`` decodes them, resizes them to N x N and encodes them again in their
format (JPEG quality 95).

Every image is decoded once to make sure that training will read it. Only regular files are
read (a FIFO, a device or a link to one is skipped and listed), of at most 64 MiB and 4096 x
4096 pixels; an identity folder that is a link into SRC itself is refused (its images would
be packed again under another identity). The file listing is
held in memory (about 150 bytes per image: under 1 GB for MS1M-V2's 5.8 million). Read the
result with::

    dict(type='MXFaceDataset', data_root=DIR, rec_file=NAME.rec, idx_file=NAME.idx)
"""
import argparse
import os
import os.path as osp
import stat
import sys
from collections import defaultdict

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from mmrepmlp.apis import ToolError
from mmrepmlp.datasets.face import RecordWriter
from mmrepmlp.datasets.face.images import decode_image
from mmrepmlp.utils.errors import InputError
from mmrepmlp.utils.files import check_writable

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
JPEG_QUALITY = 95
EXAMPLES_PER_REASON = 3
FLOAT32_EXACT_INTEGERS = 2**24
MAX_IMAGE_BYTES = 64 << 20  # an encoded face crop is a few KB


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pack SRC/<identity>/<image> into OUT.rec + OUT.idx (MXNet RecordIO).')
    parser.add_argument('src', help='the folder with one sub-folder per identity')
    parser.add_argument('out', help='output prefix: writes OUT.rec and OUT.idx')
    parser.add_argument('--no-header', action='store_true',
                        help="write a shuffled, header-less file instead of insightface's "
                        'layout')
    parser.add_argument('--seed', type=int,
                        help='random seed of the --no-header order (default: 0)')
    parser.add_argument('--resize', type=int, metavar='N',
                        help='resize every image to N x N (default: copy the files as they are)')
    return parser.parse_args(argv)


class FolderListing:
    """The images of ``SRC/<identity>/...`` in label order and the files left out.

    Attributes:
        identities (list[str]): the identity folder names, sorted; label = position.
        paths (list[str]): every image path, identity by identity.
        labels (np.ndarray): the identity label of each path (int64).
        empty_identities (list[str]): the identity folders without images.
        skipped (dict[str, list[str]]): the left-out files by the reason.

    Raises:
        OSError: a folder cannot be listed.
    """

    def __init__(self, src):
        entries = sorted(os.scandir(src), key=lambda entry: entry.name)
        self.identities = [entry.name for entry in entries if entry.is_dir()]
        self.skipped = defaultdict(list)
        self.skipped['not in an identity folder'] = [
            entry.path for entry in entries if not entry.is_dir()]
        self.paths, labels, self.empty_identities = [], [], []
        for label, identity in enumerate(self.identities):
            images = self._images_of(osp.join(src, identity))
            if not images:
                self.empty_identities.append(osp.join(src, identity))
            self.paths.extend(images)
            labels.extend([label] * len(images))
        self.labels = np.asarray(labels, dtype=np.int64)

    def _images_of(self, folder):
        found = []
        for directory, _, names in os.walk(folder, onerror=_raise):
            found.extend(osp.join(directory, name) for name in names)
        images = []
        for path in sorted(found, key=lambda path: osp.relpath(path, folder)):
            if not path.lower().endswith(IMAGE_EXTENSIONS):
                self.skipped[f'not {"/".join(IMAGE_EXTENSIONS)}'].append(path)
            elif not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, /dev/zero never end
                self.skipped['not a regular file'].append(path)
            else:
                images.append(path)
        return images


def _raise(error):
    raise error  # os.walk would skip an unreadable folder, and so lose identities


def list_folder(src):
    """:class:`FolderListing` of ``src``, an unreadable folder reported as a ToolError."""
    check_identity_links(src)
    try:
        return FolderListing(src)
    except OSError as exc:
        raise ToolError(f'cannot list {exc.filename} ({exc.strerror}); fix its permissions or '
                        'move it out of the input folder') from exc


def check_identity_links(src):
    """Refuse an identity folder that is a link into ``src`` (or to ``src`` or above it): its
    images would be packed a second time, under another identity."""
    source = osp.realpath(src)
    for entry in os.scandir(src):
        if entry.is_symlink() and entry.is_dir():
            target = osp.realpath(entry.path)
            if osp.commonpath([source, target]) in (source, target):
                raise ToolError(f'identity folder {entry.path} is a link to {target}, inside '
                                f'{src} (or above it): its images would be packed again under '
                                'another identity; remove the link')


def output_paths(out):
    """``OUT.rec`` and ``OUT.idx`` for the prefix ``out`` (a trailing .rec dropped)."""
    prefix = out[:-len('.rec')] if out.endswith('.rec') else out
    return f'{prefix}.rec', f'{prefix}.idx'


def check_paths(src, outputs):
    """Refuse a missing input and outputs that cannot be written or land inside ``src``."""
    if not osp.isdir(src):
        raise ToolError(f'input folder {src} does not exist; give the folder with one '
                        'sub-folder per identity')
    source = osp.realpath(src)
    for output in outputs:
        check_writable(output)
        # realpath: a symlink that points at an input image counts as inside too
        if osp.commonpath([source, osp.realpath(output)]) == source:
            raise ToolError(f'refusing to write {output} inside the input folder {src}; '
                            'choose an output path outside it')


def encoded_image(path, resize):
    """The bytes to store for the image at ``path``: the file's, or re-encoded at
    ``resize`` x ``resize``."""
    data = read_image_file(path)
    image = decode_image(data, path, 'replace or remove it', flag=cv2.IMREAD_UNCHANGED)
    if resize is None:
        return data
    shrinking = max(image.shape[:2]) > resize
    resized = cv2.resize(image, (resize, resize),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    if path.lower().endswith('.png'):
        _, encoded = cv2.imencode('.png', resized)
    else:
        _, encoded = cv2.imencode('.jpg', resized, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return encoded.tobytes()


def read_image_file(path):
    """The bytes of the regular file ``path``, of at most :data:`MAX_IMAGE_BYTES` (checked on
    the opened file: it may have been replaced since the listing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
        with os.fdopen(fd, 'rb') as f:
            status = os.fstat(f.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise ToolError(f'{path} is no longer a regular file; remove it')
            if status.st_size > MAX_IMAGE_BYTES:
                raise ToolError(f'{path} holds {status.st_size:,} bytes, more than the '
                                f'{MAX_IMAGE_BYTES >> 20} MiB an image may have; remove it')
            return f.read(MAX_IMAGE_BYTES + 1)[:MAX_IMAGE_BYTES]
    except OSError as exc:
        raise ToolError(f'cannot read {path} ({exc.strerror}); fix its permissions or remove '
                        'it') from exc


def write_records(writer, listing, header, seed, resize, advance):
    """Write the images of ``listing`` (and with ``header`` insightface's header and identity
    records) to ``writer``, calling ``advance()`` after each image."""
    num_images = len(listing.paths)
    if header:
        first_identity = num_images + 1
        writer.write_record(0, [first_identity, first_identity + len(listing.identities)])
        order, first_key = np.arange(num_images), 1
    else:
        order, first_key = np.random.default_rng(seed).permutation(num_images), 0
    for key, index in enumerate(order.tolist(), start=first_key):
        image = encoded_image(listing.paths[index], resize)
        writer.write_record(key, float(listing.labels[index]), image, id=key)
        advance()
    if header:
        ends = np.cumsum(np.bincount(listing.labels, minlength=len(listing.identities))) + 1
        starts = np.concatenate([[1], ends[:-1]])
        for label, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
            writer.write_record(first_identity + label, [start, end])


def pack_folder(src, out, header=True, seed=None, resize=None):
    """Pack ``src`` into ``out``'s ``.rec`` and ``.idx``; return the summary to print.

    Args:
        src (str): the folder with one sub-folder per identity.
        out (str): the output prefix.
        header (bool): insightface's layout (True) or a shuffled header-less file.
        seed (int, optional): the random seed of the header-less order (default 0).
        resize (int, optional): re-encode the images at this size.

    Raises:
        InputError: bad input or output (a ToolError for the arguments); nothing is written
            then.
    """
    if seed is not None and header:
        raise ToolError('--seed orders a header-less file; add --no-header or drop --seed')
    if resize is not None and resize < 1:
        raise ToolError(f'--resize must be a positive size, got {resize}')
    rec_path, idx_path = output_paths(out)
    check_paths(src, [rec_path, idx_path])
    console = Console(stderr=True)  # stdout is for the summary
    with console.status(f'listing {src}'):
        listing = list_folder(src)
    if not listing.paths:
        raise ToolError(f'{src} holds no {"/".join(IMAGE_EXTENSIONS)} image in an identity '
                        f'folder ({len(listing.identities)} folders); the layout is '
                        'SRC/<identity>/<image>')
    num_keys = 1 + len(listing.paths) + len(listing.identities)
    if header and num_keys > FLOAT32_EXACT_INTEGERS:
        raise ToolError(f"insightface's layout stores record keys as float32 labels, exact up "
                        f'to {FLOAT32_EXACT_INTEGERS:,}, and {src} needs {num_keys:,} keys; '
                        'pack it with --no-header')
    columns = ('packing', BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress, \
            RecordWriter(rec_path, idx_path) as writer:
        task = progress.add_task('packing', total=len(listing.paths))
        write_records(writer, listing, header, seed or 0, resize,
                      lambda: progress.advance(task))
    return summary(listing, rec_path, idx_path, writer.bytes_written, header)


def summary(listing, rec_path, idx_path, num_bytes, header):
    """The lines printed at the end: what was packed, what was left out, how to read it."""
    layout = "insightface's layout" if header else 'header-less, shuffled'
    lines = [f'packed {len(listing.identities)} identities, {len(listing.paths)} images into '
             f'{rec_path} ({num_bytes:,} bytes) and {idx_path} ({layout})']
    if listing.empty_identities:
        lines.append(_listed('identity folders without images, kept as empty identities so that '
                             'labels follow the folder order', listing.empty_identities))
    for reason, paths in listing.skipped.items():
        if paths:
            lines.append(_listed(f'skipped files ({reason})', paths))
    directory, rec_file = osp.split(rec_path)
    lines.append(f"read it with dict(type='MXFaceDataset', data_root={directory or '.'!r}, "
                 f'rec_file={rec_file!r}, idx_file={osp.basename(idx_path)!r})')
    return '\n'.join(lines)


def _listed(what, paths):
    more = len(paths) - EXAMPLES_PER_REASON
    return f'{what}: {len(paths)}: {", ".join(paths[:EXAMPLES_PER_REASON])}' + (
        f' and {more} more' if more > 0 else '')


def main(argv=None):
    args = parse_args(argv)
    try:
        report = pack_folder(args.src, args.out, header=not args.no_header, seed=args.seed,
                             resize=args.resize)
    except InputError as error:
        sys.exit(f'error: {error}')
    print(report)


if __name__ == '__main__':
    main()
