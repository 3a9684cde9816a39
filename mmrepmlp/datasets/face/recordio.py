"""MXNet's indexed RecordIO (``.rec`` + ``.idx``), read and written without mxnet.

The face-recognition training sets (MS1M-V2 and its kin) ship in this format. ``.idx`` is text,
one ``key<TAB>byte offset`` line per record. In ``.rec`` every record starts with two
little-endian uint32: the magic number ``0xced7230a`` and ``lrecord``, whose low 29 bits are the
payload length and whose top 3 bits are the continuation flag; the payload is zero-padded to a
multiple of 4 bytes. The writer never lets the magic number appear at a 4-byte aligned position
inside a record (a reader that lost its place finds the next record by it): it cuts the payload
there, drops those 4 bytes and writes the pieces as parts flagged 1 (first), 2 (middle) and
3 (last); a reader joins the parts with the magic number between them. Flag 0 is a whole record.

A payload is an image record: a 24-byte header ``struct '<IfQQ'`` (flag, label, id, id2), then
``flag`` float32 label values when ``flag > 0`` (the header's own label is then 0), then the
encoded image.

insightface's layout (:func:`read_face_layout`): record 0 is an image-less header record whose
label vector ``[a, b]`` says that keys ``1 .. a-1`` are images and keys ``a .. b-1`` identity
records, each labelled with the ``[start, end)`` range of its identity's image keys. A shuffled
file, or one written by mxnet's ``im2rec --pack-label``, has no header: every key is an image
whose label (the first value of a label vector) is the identity.

:class:`RecordReader` is safe in dataloader workers and distributed training: it opens its file
lazily, re-opens it in a process that did not open it (a forked worker), and is pickled without
it (a spawned worker); threads may share it (its reads are positional, ``os.pread``).

A file that contradicts itself is refused, naming the file, the record key and its byte
offset, as corruption is: two keys at one offset, identity ranges that overlap, labels that are
not whole numbers (or NaN), a header-less label beyond the record count, an image whose own
label is not the identity its key range gives (:func:`check_image_label`, when it is read).
"""
import contextlib
import math
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import Union

import numpy as np

from mmrepmlp.utils.errors import InputError
from mmrepmlp.utils.files import staged_files

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack('<I', MAGIC)
LENGTH_BITS = 29
LENGTH_MASK = (1 << LENGTH_BITS) - 1
PART_HEADER = struct.Struct('<II')  # magic, lrecord
IR_HEADER = struct.Struct('<IfQQ')  # flag, label, id, id2
LABEL_VALUE = struct.Struct('<f')

WHOLE, FIRST, MIDDLE, LAST = range(4)  # continuation flags
_IDENTITY_PREFIX = PART_HEADER.size + IR_HEADER.size + LABEL_VALUE.size


class RecordIOError(InputError):
    """A ``.rec``/``.idx`` pair that is truncated, corrupt or does not match; the message names
    the file, the record key and the byte offset (a ``ValueError``: an
    :class:`~mmrepmlp.utils.errors.InputError`, which the tools print as one line)."""


@dataclass(frozen=True)
class Record:
    """One parsed image record.

    Attributes:
        flag (int): the number of label values; 0 for a scalar label.
        label (float | np.ndarray): the scalar label, or the ``flag`` float32 label values.
        id (int): the record's first id field (the image id of MXNet's im2rec).
        id2 (int): the second id field (reserved, usually 0).
        image (bytes): the encoded image; empty for header and identity records.
    """

    flag: int
    label: Union[float, np.ndarray]
    id: int
    id2: int
    image: bytes

    @property
    def identity(self):
        """The label as an identity id: the scalar label or the first label value, as int."""
        return int(self.label if self.flag == 0 else self.label[0])


def pack_record(label, image=b'', id=0, id2=0):
    """Return the payload of an image record (the bytes :meth:`RecordWriter.write` takes).

    Args:
        label (float | Sequence[float]): a scalar label (flag 0) or a label vector (flag =
            its length, stored as float32 after the header).
        image (bytes): the encoded image. Defaults to no image (header or identity record).
        id (int): the first id field. Defaults to 0.
        id2 (int): the second id field. Defaults to 0.
    """
    if np.ndim(label) == 0:
        return IR_HEADER.pack(0, float(label), id, id2) + bytes(image)
    values = np.asarray(label, dtype='<f4').ravel()
    if values.size == 0:
        raise ValueError('a label vector needs at least one value')
    return IR_HEADER.pack(values.size, 0.0, id, id2) + values.tobytes() + bytes(image)


def unpack_record(payload):
    """Parse a record payload into a :class:`Record`.

    Args:
        payload (bytes): the payload as :meth:`RecordReader.read_payload` returns it.

    Raises:
        ValueError: the payload is shorter than its header and label values.
    """
    if len(payload) < IR_HEADER.size:
        raise ValueError(f'payload of {len(payload)} bytes is shorter than the '
                         f'{IR_HEADER.size}-byte image record header')
    flag, label, record_id, record_id2 = IR_HEADER.unpack_from(payload)
    body = IR_HEADER.size + LABEL_VALUE.size * flag
    if len(payload) < body:
        raise ValueError(f'payload of {len(payload)} bytes is too short for its {flag} label '
                         'values')
    if flag > 0:
        label = np.frombuffer(payload, dtype='<f4', count=flag, offset=IR_HEADER.size).copy()
    return Record(flag, label, record_id, record_id2, bytes(payload[body:]))


def read_index(idx_path):
    """Read a ``.idx`` file into ``(keys, offsets)`` int64 arrays, in file order.

    Raises:
        RecordIOError: a line is not ``key<TAB>offset``, an offset is negative, or the file
            holds no record.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='loadtxt: input contained no data')
        try:
            table = np.loadtxt(idx_path, dtype=np.int64, delimiter='\t', ndmin=2,
                               comments=None)
        except ValueError as exc:
            raise RecordIOError(
                f'{idx_path}: not a RecordIO index ({exc}; rows count from 0): every line must '
                'be "key<TAB>byte offset"; fetch the .idx that belongs to the .rec again') from exc
    if table.size == 0:
        raise RecordIOError(f'{idx_path}: the index lists no record; fetch the .idx that '
                            'belongs to the .rec again')
    if table.shape[1] != 2:
        raise RecordIOError(f'{idx_path}: not a RecordIO index: lines have {table.shape[1]} '
                            'fields, not "key<TAB>byte offset"')
    keys, offsets = table[:, 0].copy(), table[:, 1].copy()
    negative = np.flatnonzero(offsets < 0)
    if negative.size:
        first = negative[0]
        raise RecordIOError(f'{idx_path}: record {keys[first]} has the negative byte offset '
                            f'{offsets[first]}; fetch the .idx again')
    return keys, offsets


class RecordReader:
    """Random access to the records of a ``.rec`` file by key, through its ``.idx``.

    The index is read once, in the constructor; the ``.rec`` handle is opened on the first read
    of each process. Use one reader per thread.

    Args:
        rec_path (str): the ``.rec`` file.
        idx_path (str): its ``.idx`` file.

    Raises:
        RecordIOError: the index is unreadable or lists a key twice.
    """

    def __init__(self, rec_path, idx_path):
        self.rec_path = str(rec_path)
        self.idx_path = str(idx_path)
        keys, offsets = read_index(self.idx_path)
        order = np.argsort(keys, kind='stable')
        self._keys, self._offsets = keys[order], offsets[order]
        repeated = np.flatnonzero(np.diff(self._keys) == 0)
        if repeated.size:
            raise RecordIOError(f'{self.idx_path}: record {self._keys[repeated[0]]} is listed '
                                'twice; fetch the .idx that belongs to the .rec again')
        _check_distinct_offsets(self.idx_path, self._keys, self._offsets)
        self._file = None
        self._file_size = 0
        self._pid = None
        self._opening = threading.Lock()

    @property
    def keys(self):
        """All record keys, ascending (int64 array)."""
        return self._keys.copy()

    def __len__(self):
        return len(self._keys)

    def __contains__(self, key):
        position = np.searchsorted(self._keys, key)
        return position < len(self._keys) and self._keys[position] == key

    def read(self, key):
        """Return the record ``key`` parsed (:class:`Record`)."""
        payload = self.read_payload(key)
        try:
            return unpack_record(payload)
        except ValueError as exc:
            raise self.error(key, str(exc)) from exc

    def read_identity(self, key):
        """Return :attr:`Record.identity` of record ``key``, reading its header only.

        Raises:
            RecordIOError: the label is not a whole number.
        """
        return self._identity_at(key, self._offset(key))

    def read_identities(self):
        """:attr:`Record.identity` of every record, keys ascending (int64 array), reading the
        first 36 bytes of each (some 5 s per million records in the page cache).

        Raises:
            RecordIOError: a label is not a whole number.
        """
        return np.fromiter(map(self._identity_at, self._keys.tolist(), self._offsets.tolist()),
                           dtype=np.int64, count=len(self))

    def read_payload(self, key):
        """Return the payload of record ``key``, its parts joined, without the padding."""
        position, pieces, expected = self._offset(key), [], (WHOLE, FIRST)
        while True:
            lrecord = self._read_part_header(key, position)
            flag, length = lrecord >> LENGTH_BITS, lrecord & LENGTH_MASK
            if flag not in expected:
                raise self.error(key, f'the part at byte {position} has continuation flag '
                                 f'{flag} where {" or ".join(map(str, expected))} must be')
            pieces.append(self._read_at(key, position + PART_HEADER.size, length))
            if flag in (WHOLE, LAST):
                return b''.join(pieces)
            pieces.append(MAGIC_BYTES)  # the writer cut the record at a magic number
            position += PART_HEADER.size + _padded(length)
            expected = (MIDDLE, LAST)

    def error(self, key, problem):
        """A :class:`RecordIOError` about record ``key``: this file, the key, its offset."""
        return RecordIOError(f'{self.rec_path}: record {key} at byte {self._offset(key)}: '
                             f'{problem}')

    def close(self):
        """Close this process's handle (the next read opens it again)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __getstate__(self):
        state = self.__dict__.copy()
        # neither a file handle nor a lock crosses processes
        state.update(_file=None, _pid=None, _opening=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state, _opening=threading.Lock())

    def _handle(self):
        # A forked worker inherits the parent's handle, whose offset it would share with the
        # parent and its siblings: every process opens its own (reads are positional, so
        # threads share it).
        if self._pid != os.getpid():
            with self._opening:
                if self._pid != os.getpid():
                    handle = open(self.rec_path, 'rb', buffering=0)
                    self._file_size = os.fstat(handle.fileno()).st_size
                    self._file, self._pid = handle, os.getpid()
        return self._file

    def _offset(self, key):
        position = np.searchsorted(self._keys, key)
        if position == len(self._keys) or self._keys[position] != key:
            raise RecordIOError(f'{self.rec_path}: record {key} is not in the index '
                                f'{self.idx_path} (keys {self._keys[0]} to {self._keys[-1]}, '
                                f'{len(self._keys)} records)')
        return int(self._offsets[position])

    def _read_at(self, key, position, size):
        handle = self._handle()
        if position + size > self._file_size:
            raise self.error(key, f'{size} bytes at byte {position} run past the end of the '
                             f'file ({self._file_size} bytes): it is truncated or the index '
                             'does not belong to it')
        data = os.pread(handle.fileno(), size, position)  # no shared file offset
        if len(data) != size:
            raise self.error(key, f'short read at byte {position}: {len(data)} of {size} bytes')
        return data

    def _read_part_header(self, key, position):
        """The ``lrecord`` of the part at ``position``, its magic number checked."""
        return self._check_magic(key, position, self._read_at(key, position, PART_HEADER.size))

    def _check_magic(self, key, position, data):
        magic, lrecord = PART_HEADER.unpack_from(data)
        if magic != MAGIC:
            raise self.error(key, f'bad magic number 0x{magic:08x} at byte {position} '
                             f'(expected 0x{MAGIC:08x}): the file is corrupt or the index does '
                             'not belong to it')
        return lrecord

    def _check_within_file(self, key, offset, length):
        """Refuse a part that runs past the end of the file (a truncated file), found from its
        header alone."""
        end = offset + PART_HEADER.size + length
        if end > self._file_size:
            raise self.error(key, f'its {length} bytes run past the end of the file '
                             f'({self._file_size} bytes, the record would end at {end}): it '
                             'is truncated or the index does not belong to it; fetch the file '
                             'again')

    def _identity_at(self, key, offset):
        # One read for the part header, the IRHeader and the first label value: scanning the
        # labels of millions of records is bound by the calls per record.
        self._handle()
        size = max(min(_IDENTITY_PREFIX, self._file_size - offset), PART_HEADER.size)
        prefix = self._read_at(key, offset, size)
        lrecord = self._check_magic(key, offset, prefix)
        self._check_within_file(key, offset, lrecord & LENGTH_MASK)
        if (len(prefix) < _IDENTITY_PREFIX or lrecord >> LENGTH_BITS != WHOLE
                or lrecord & LENGTH_MASK < _IDENTITY_PREFIX - PART_HEADER.size):
            record = self.read(key)  # split, image-less or truncated: parse it whole
            return whole_label(self, key, record.label if record.flag == 0 else record.label[0],
                               'label')
        flag, label, _, _ = IR_HEADER.unpack_from(prefix, PART_HEADER.size)
        if flag > 0:
            label = LABEL_VALUE.unpack_from(prefix, PART_HEADER.size + IR_HEADER.size)[0]
        return whole_label(self, key, label, 'label')


def _check_distinct_offsets(idx_path, keys, offsets):
    """Refuse two keys at one byte offset: one of them would read the other's record."""
    order = np.argsort(offsets, kind='stable')
    shared = np.flatnonzero(np.diff(offsets[order]) == 0)
    if shared.size:
        first, second = sorted(keys[order[shared[0]:shared[0] + 2]].tolist())
        raise RecordIOError(f'{idx_path}: records {first} and {second} both start at byte '
                            f'{offsets[order[shared[0]]]}, so one of them would read the '
                            "other's record; fetch the .idx that belongs to the .rec again")


def whole_label(reader, key, value, what):
    """``value`` (a float32 label of record ``key``) as an int, or a :class:`RecordIOError`
    when it is not a whole number (0.7 would silently become identity 0; NaN cannot be one).
    """
    if not (math.isfinite(value) and value == int(value)):
        raise reader.error(key, f'the {what} {value!r} is not a whole number (identities and '
                           'record keys are); the file is corrupt, pack it again')
    return int(value)


def _padded(length):
    return (length + 3) & ~3


def _split_at_magic(payload):
    """The parts the writer stores: ``payload`` cut at each 4-byte aligned magic number."""
    parts, start, search = [], 0, 0
    while True:
        found = payload.find(MAGIC_BYTES, search)
        if found < 0:
            break
        if found % 4 == 0:
            parts.append(payload[start:found])
            start = found + len(MAGIC_BYTES)
        search = found + 1
    parts.append(payload[start:])
    return parts


def frame_record(payload):
    """Return ``payload`` as it is stored in a ``.rec``: part headers, parts, padding."""
    if len(payload) > LENGTH_MASK:
        raise ValueError(f'a RecordIO record holds at most {LENGTH_MASK} bytes, got '
                         f'{len(payload)}')
    parts = _split_at_magic(bytes(payload))
    flags = [WHOLE] if len(parts) == 1 else [FIRST] + [MIDDLE] * (len(parts) - 2) + [LAST]
    framed = []
    for flag, part in zip(flags, parts):
        framed.append(PART_HEADER.pack(MAGIC, (flag << LENGTH_BITS) | len(part)))
        framed.append(part)
    framed.append(bytes(_padded(len(payload)) - len(payload)))  # only the last part is short
    return b''.join(framed)


class RecordWriter:
    """Write a ``.rec`` and its ``.idx``, byte-compatible with MXNet's indexed RecordIO.

    Use it as a context manager: both files are written to temporaries and replace their
    destinations together when the block ends normally; on any exception neither is touched.

    Args:
        rec_path (str): the ``.rec`` to write.
        idx_path (str): the ``.idx`` to write.

    Example:
        >>> with RecordWriter('train.rec', 'train.idx') as writer:
        ...     writer.write_record(0, label=[1, 1])
    """

    def __init__(self, rec_path, idx_path):
        self.rec_path, self.idx_path = str(rec_path), str(idx_path)
        self.bytes_written = 0
        self._stack = None
        self._rec = self._idx = None

    def __enter__(self):
        with contextlib.ExitStack() as stack:
            rec_tmp, idx_tmp = stack.enter_context(
                staged_files([self.rec_path, self.idx_path]))
            self._rec = stack.enter_context(open(rec_tmp, 'wb'))
            self._idx = stack.enter_context(open(idx_tmp, 'w', newline='\n'))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info):
        stack, self._stack = self._stack, None
        self._rec = self._idx = None
        return stack.__exit__(*exc_info)  # closes the files, then commits or discards them

    def write(self, key, payload):
        """Append the record ``key`` with ``payload`` (bytes, see :func:`pack_record`)."""
        if self._stack is None:
            raise RuntimeError('RecordWriter.write outside its "with" block')
        framed = frame_record(payload)
        self._idx.write(f'{int(key)}\t{self.bytes_written}\n')
        self._rec.write(framed)
        self.bytes_written += len(framed)

    def write_record(self, key, label, image=b'', id=0, id2=0):
        """Append an image record; the arguments after ``key`` are :func:`pack_record`'s."""
        self.write(key, pack_record(label, image, id, id2))


@dataclass(frozen=True)
class FaceLayout:
    """Which records of a face ``.rec`` are images and whose faces they show.

    Attributes:
        image_keys (np.ndarray): int64 record keys of the images.
        labels (np.ndarray): int64 identity of each image, in ``0 .. num_identities-1``.
        num_identities (int): the number of identity classes.
        has_header (bool): True for insightface's layout, False for a header-less file.
    """

    image_keys: np.ndarray
    labels: np.ndarray
    num_identities: int
    has_header: bool


def read_face_layout(reader):
    """Find the image records of a face ``.rec`` and their identities.

    With insightface's header (record 0 has a label vector ``[a, b]`` and no image) the
    identity records ``a .. b-1`` give each identity's image key range, and identity ``j``
    (record ``a + j``) is label ``j``: only ``b - a`` records are read. Otherwise (a shuffled
    file, or one that ``im2rec --pack-label`` wrote) every record is an image labelled by its
    own header, the first value of a label vector (only the first 36 bytes of each are read),
    and the number of identities is the largest label + 1, so that labels index a
    classifier.

    Args:
        reader (RecordReader): the opened file.

    Raises:
        RecordIOError: the file holds no image, an identity range lies outside the image keys,
            or a label is negative.
    """
    if 0 in reader:
        header = reader.read(0)
        if is_insightface_header(header):
            return _layout_from_identity_records(reader, header)
    keys, labels = reader.keys, reader.read_identities()
    if labels.min() < 0:
        raise reader.error(keys[np.argmin(labels)], f'negative identity label {labels.min()}; '
                           'identities count from 0')
    _check_labels_within_records(reader, keys, labels)
    return FaceLayout(keys, labels, int(labels.max()) + 1, has_header=False)


def _check_labels_within_records(reader, keys, labels):
    """A header-less file counts its identities up to its largest label: a label at or
    beyond the record count names more identities than the file has images."""
    if labels.max() >= len(keys):
        raise reader.error(keys[np.argmax(labels)], f'the label {labels.max()} is not below '
                           f'the {len(keys)} records of the file: a header-less file numbers '
                           'its identities from 0, so the label is corrupt; pack the folder '
                           'again')


def is_insightface_header(record):
    """Whether record 0 is insightface's header: a label vector and no image. A file that
    mxnet's ``im2rec --pack-label`` wrote has label vectors on every record, record 0
    included, but every record carries an image."""
    return record.flag > 0 and not record.image


def _layout_from_identity_records(reader, header):
    if header.flag < 2:
        raise reader.error(0, f'the header record has {header.flag} label value, not '
                           "insightface's [first identity key, end key]")
    first_identity, end = (whole_label(reader, 0, value, 'header value')
                           for value in header.label[:2])
    if not 1 <= first_identity < end:
        raise reader.error(0, f'the header range [{first_identity}, {end}) names no identity '
                           'record')
    ranges = np.array([_identity_range(reader, key, first_identity)
                       for key in range(first_identity, end)], dtype=np.int64)
    _check_disjoint_ranges(reader, first_identity, ranges)
    keys = np.concatenate([np.arange(start, stop, dtype=np.int64) for start, stop in ranges])
    if keys.size == 0:
        raise reader.error(0, 'every identity record has an empty image range')
    labels = np.repeat(np.arange(len(ranges), dtype=np.int64), ranges[:, 1] - ranges[:, 0])
    return FaceLayout(keys, labels, len(ranges), has_header=True)


def _identity_range(reader, key, first_identity):
    record = reader.read(key)
    if record.flag < 2:
        raise reader.error(key, 'an identity record without a [start, end) label vector')
    start, stop = (whole_label(reader, key, value, 'range bound') for value in record.label[:2])
    if not 1 <= start <= stop <= first_identity:
        raise reader.error(key, f'the identity range [{start}, {stop}) lies outside the image '
                           f'keys 1 .. {first_identity - 1}')
    return start, stop


def _check_disjoint_ranges(reader, first_identity, ranges):
    """Refuse identity ranges that overlap: their shared images would get two identities."""
    order = np.argsort(ranges[:, 0], kind='stable')
    overlapping = np.flatnonzero(ranges[order[1:], 0] < ranges[order[:-1], 1])
    if overlapping.size:
        first, second = sorted(order[overlapping[0]:overlapping[0] + 2].tolist())
        (start, stop), (other_start, other_stop) = ranges[first], ranges[second]
        raise reader.error(first_identity + second, f'its image range [{other_start}, '
                           f'{other_stop}) overlaps [{start}, {stop}) of record '
                           f'{first_identity + first}, which would give their shared images '
                           'two identities; the file is corrupt, pack it again')


def check_image_label(reader, key, label, record):
    """Refuse the image record ``key`` of a file with insightface's header when its own label
    is not ``label``, the identity its key range gives: the ``.idx`` then points the key at
    another identity's record. (A header-less file's labels are the records' own.)"""
    own = whole_label(reader, key, record.label if record.flag == 0 else record.label[0],
                      'label')
    if own != label:
        raise reader.error(key, f'the image record is labelled identity {own}, but its key lies '
                           f'in the image range of identity {label}: the index points the key '
                           'at another record; fetch the .idx that belongs to the .rec again')
