"""MXNet RecordIO without mxnet: the repo's writer and reader against each other and against a
file assembled here byte by byte from the format, corrupt files, and dataloader workers."""
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from mmrepmlp.datasets.face import (
    RecordIOError,
    RecordReader,
    RecordWriter,
    pack_record,
    read_face_layout,
    unpack_record,
)

MAGIC = 0xCED7230A
MAGIC_LE = struct.pack('<I', MAGIC)


def random_bytes(rng, size):
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


def write_insightface_file(path, rng, images_per_identity=(3, 1, 2)):
    """insightface's layout through the repo's writer; returns ``{key: (label, image)}``."""
    rec, idx = path / 'train.rec', path / 'train.idx'
    first_identity = sum(images_per_identity) + 1
    images, key = {}, 1
    with RecordWriter(rec, idx) as writer:
        writer.write_record(0, [first_identity, first_identity + len(images_per_identity)])
        for identity, count in enumerate(images_per_identity):
            for _ in range(count):
                image = random_bytes(rng, int(rng.integers(1, 60)))
                images[key] = (identity, image)
                writer.write_record(key, identity, image, id=key)
                key += 1
        start = 1
        for identity, count in enumerate(images_per_identity):
            writer.write_record(first_identity + identity, [start, start + count])
            start += count
    return rec, idx, images


def test_round_trip_header_identity_records_and_vector_labels(tmp_path):
    rng = np.random.default_rng(0)
    rec, idx, images = write_insightface_file(tmp_path, rng)
    # one more image with a vector label and an aligned magic number inside its bytes
    extra_key, extra_image = 100, b'abcd' + MAGIC_LE + b'xyz'
    with RecordWriter(tmp_path / 'extra.rec', tmp_path / 'extra.idx') as writer:
        writer.write_record(extra_key, [7.5, -1, 3], extra_image, id=42, id2=9)

    reader = RecordReader(rec, idx)
    header = reader.read(0)
    assert header.flag == 2 and header.label.tolist() == [7.0, 10.0] and header.image == b''
    for key, (identity, image) in images.items():
        record = reader.read(key)
        assert (record.flag, record.label, record.id, record.image) == (0, identity, key, image)
        assert reader.read_identity(key) == record.identity == identity
    assert [reader.read(key).label.tolist() for key in (7, 8, 9)] == [[1, 4], [4, 5], [5, 7]]

    layout = read_face_layout(reader)
    assert layout.has_header and layout.num_identities == 3
    assert layout.image_keys.tolist() == sorted(images)
    assert layout.labels.tolist() == [images[key][0] for key in sorted(images)]

    extra = RecordReader(tmp_path / 'extra.rec', tmp_path / 'extra.idx').read(extra_key)
    assert extra.flag == 3 and extra.label.dtype == np.float32
    assert extra.label.tolist() == [7.5, -1.0, 3.0] and extra.identity == 7
    assert (extra.id, extra.id2, extra.image) == (42, 9, extra_image)


def test_headerless_shuffled_file(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.permutation([0, 0, 1, 2, 2, 2, 4])  # identity 3 has no image
    images = [random_bytes(rng, 30) for _ in labels]
    with RecordWriter(tmp_path / 's.rec', tmp_path / 's.idx') as writer:
        for key, (label, image) in enumerate(zip(labels, images)):
            # a vector label counts by its first value
            label_field = [label, 99] if key == 3 else int(label)
            writer.write_record(key, label_field, image)

    reader = RecordReader(tmp_path / 's.rec', tmp_path / 's.idx')
    layout = read_face_layout(reader)

    assert not layout.has_header and layout.num_identities == 5
    assert layout.image_keys.tolist() == list(range(len(labels)))
    assert layout.labels.tolist() == labels.tolist()
    assert [reader.read(key).image for key in range(len(labels))] == images


def struct_record(payload_parts):
    """A record assembled from the format alone: a part per piece, continuation flags
    1/2/3 when split (the pieces being cut at magic numbers), zero padding after the end."""
    if len(payload_parts) == 1:
        flags = [0]
    else:
        flags = [1] + [2] * (len(payload_parts) - 2) + [3]
    out = b''
    for flag, part in zip(flags, payload_parts):
        out += struct.pack('<II', MAGIC, (flag << 29) | len(part)) + part
    return out + b'\0' * (-len(out) % 4)


def test_reads_a_file_built_from_the_byte_layout(tmp_path):
    jpeg_like = b'\xff\xd8' + bytes(range(7))  # 9 bytes: the record needs 3 bytes of padding
    whole = struct.pack('<IfQQ', 0, 5.0, 11, 0) + jpeg_like
    # A record whose bytes hold the magic number twice at 4-byte aligned offsets: stored as
    # three parts without those 8 bytes, which the reader puts back between the parts.
    vector_header = struct.pack('<IfQQ', 2, 0.0, 12, 0) + struct.pack('<2f', 3.0, 8.0)
    split_image = MAGIC_LE + b'\x01\x02\x03\x04' + MAGIC_LE + b'end!!'
    split_payload = vector_header + split_image
    parts = [vector_header, b'\x01\x02\x03\x04', b'end!!']
    assert split_payload == MAGIC_LE.join(parts) and len(vector_header) % 4 == 0
    header_only = struct.pack('<IfQQ', 2, 0.0, 0, 0) + struct.pack('<2f', 1.0, 3.0)

    stored = [(0, struct_record([header_only])), (7, struct_record([whole])),
              (3, struct_record(parts))]
    blob, lines = b'', []
    for key, record in stored:
        lines.append(f'{key}\t{len(blob)}\n')
        blob += record
    (tmp_path / 'x.rec').write_bytes(blob)
    (tmp_path / 'x.idx').write_text(''.join(lines))
    assert len(blob) % 4 == 0

    reader = RecordReader(tmp_path / 'x.rec', tmp_path / 'x.idx')
    assert reader.read_payload(7) == whole and reader.read_payload(3) == split_payload
    record = reader.read(7)
    assert (record.flag, record.label, record.id, record.image) == (0, 5.0, 11, jpeg_like)
    record = reader.read(3)
    assert record.label.tolist() == [3.0, 8.0] and record.image == split_image
    assert reader.read_identity(3) == 3 and reader.read_identity(7) == 5
    assert reader.keys.tolist() == [0, 3, 7]

    # The repo's writer produces the very same bytes: it cuts at aligned magic numbers too.
    with RecordWriter(tmp_path / 'y.rec', tmp_path / 'y.idx') as writer:
        for key, payload in ((0, header_only), (7, whole), (3, split_payload)):
            writer.write(key, payload)
    assert (tmp_path / 'y.rec').read_bytes() == blob
    assert (tmp_path / 'y.idx').read_text() == ''.join(lines)
    assert pack_record([3, 8], split_image, id=12) == split_payload
    assert unpack_record(whole).image == jpeg_like


@pytest.fixture
def small_file(tmp_path):
    rec, idx, images = write_insightface_file(tmp_path, np.random.default_rng(2))
    offsets = dict(line.split('\t') for line in idx.read_text().splitlines())
    return rec, idx, images, {int(k): int(v) for k, v in offsets.items()}


def assert_names(error, *fragments):
    for fragment in fragments:
        assert str(fragment) in str(error.value)


def test_truncated_file(small_file):
    rec, idx, images, offsets = small_file
    last = max(images)
    data = rec.read_bytes()
    rec.write_bytes(data[:offsets[last] + 12])  # cut inside the record's payload

    reader = RecordReader(rec, idx)
    with pytest.raises(RecordIOError) as error:
        reader.read(last)
    assert_names(error, rec, f'record {last}', f'byte {offsets[last]}', 'past the end')
    assert reader.read(1).image == images[1][1]  # the records before it are intact

    rec.write_bytes(data[:offsets[last] + 4])  # not even a whole part header
    with pytest.raises(RecordIOError) as error:
        RecordReader(rec, idx).read_identity(last)
    assert_names(error, rec, f'record {last}', f'byte {offsets[last]}')


@pytest.mark.parametrize('key', [2, 8])  # an image record, an identity record
def test_bad_magic(small_file, key):
    rec, idx, _, offsets = small_file
    data = bytearray(rec.read_bytes())
    data[offsets[key]] ^= 0xFF
    rec.write_bytes(bytes(data))
    reader = RecordReader(rec, idx)

    with pytest.raises(RecordIOError) as error:
        reader.read(key)
    assert isinstance(error.value, ValueError)
    assert_names(error, rec, f'record {key}', f'byte {offsets[key]}', 'bad magic number')
    if key == 8:  # the layout reads the identity records, and so finds it
        with pytest.raises(RecordIOError, match=f'record {key} at byte {offsets[key]}'):
            read_face_layout(reader)


@pytest.mark.parametrize('index, fragments', [
    ('0\t0\n1\tforty\n', ['not a RecordIO index', "'forty'"]),
    ('0\t0\t5\n', ['not a RecordIO index']),
    ('', ['the index lists no record']),
    ('0\t0\n0\t40\n', ['record 0 is listed twice']),
    ('0\t-8\n', ['record 0 has the negative byte offset -8']),
])
def test_index_that_does_not_parse(small_file, index, fragments):
    rec, idx, _, _ = small_file
    idx.write_text(index)
    with pytest.raises(RecordIOError) as error:
        RecordReader(rec, idx)
    assert_names(error, idx, *fragments)


def test_key_missing_and_offset_past_the_end(small_file):
    rec, idx, _, _ = small_file
    idx.write_text(f'0\t0\n1\t{rec.stat().st_size + 64}\n')
    reader = RecordReader(rec, idx)
    with pytest.raises(RecordIOError) as error:
        reader.read(5)
    assert_names(error, rec, 'record 5 is not in the index', idx)
    with pytest.raises(RecordIOError) as error:
        reader.read(1)
    assert_names(error, rec, 'record 1', f'byte {rec.stat().st_size + 64}', 'past the end')


class RecordsOf(torch.utils.data.Dataset):
    """Each item: the record's image and the pid of the process that read it."""

    def __init__(self, reader):
        self.reader = reader

    def __len__(self):
        return len(self.reader)

    def __getitem__(self, index):
        key = int(self.reader.keys[index])
        image = self.reader.read(key).image
        assert self.reader._pid == os.getpid()  # the worker opened its own handle
        return key, image, os.getpid()


def test_each_worker_process_opens_its_own_handle(small_file):
    rec, idx, images, _ = small_file
    reader = RecordReader(rec, idx)
    reader.read(1)  # the parent's handle is open when the workers fork
    parent_fd = reader._file.fileno()
    parent_position = os.lseek(parent_fd, 0, os.SEEK_CUR)

    loader = torch.utils.data.DataLoader(RecordsOf(reader), batch_size=1, num_workers=2,
                                         multiprocessing_context='fork',
                                         collate_fn=lambda batch: batch[0])
    items = list(loader)

    assert {key: image for key, image, _ in items if key in images} == {
        key: image for key, (_, image) in images.items()}
    assert len({pid for _, _, pid in items}) == 2 and os.getpid() not in {p for *_, p in items}
    # Had a worker read through the inherited descriptor, the parent's position would move.
    assert os.lseek(parent_fd, 0, os.SEEK_CUR) == parent_position
    assert reader.read(2).image == images[2][1]

    clone = pickle.loads(pickle.dumps(reader))  # what a spawned worker receives
    assert clone._file is None and clone.read(3).image == images[3][1]


def write_identity_ranges(path, ranges, num_images):
    """A headed file of ``num_images`` images (identity 0) and identity records with
    ``ranges``; returns the rec and idx paths and ``{key: offset}``."""
    rec, idx = path / 'r.rec', path / 'r.idx'
    first_identity = num_images + 1
    with RecordWriter(rec, idx) as writer:
        writer.write_record(0, [first_identity, first_identity + len(ranges)])
        for key in range(1, first_identity):
            writer.write_record(key, 0, b'image', id=key)
        for offset, bounds in enumerate(ranges):
            writer.write_record(first_identity + offset, bounds)
    offsets = dict(line.split('\t') for line in idx.read_text().splitlines())
    return rec, idx, {int(k): int(v) for k, v in offsets.items()}


def test_overlapping_identity_ranges_are_refused(tmp_path):
    rec, idx, offsets = write_identity_ranges(tmp_path, [[1, 3], [2, 4]], num_images=3)

    with pytest.raises(RecordIOError) as error:
        read_face_layout(RecordReader(rec, idx))

    assert_names(error, rec, 'record 5', f'byte {offsets[5]}', '[2, 4) overlaps [1, 3)',
                 'record 4')


@pytest.mark.parametrize('bound', [2.5, float('nan')])
def test_identity_range_bounds_that_are_not_whole_numbers_are_refused(tmp_path, bound):
    rec, idx, offsets = write_identity_ranges(tmp_path, [[1, bound], [3, 4]], num_images=3)

    with pytest.raises(RecordIOError) as error:
        read_face_layout(RecordReader(rec, idx))

    assert_names(error, rec, 'record 4', f'byte {offsets[4]}', 'is not a whole number')


def test_two_keys_at_one_offset_are_refused(small_file):
    rec, idx, _, offsets = small_file
    offsets[3] = offsets[4]  # key 3 points at record 4
    idx.write_text(''.join(f'{key}\t{offset}\n' for key, offset in offsets.items()))

    with pytest.raises(RecordIOError) as error:
        RecordReader(rec, idx)

    assert_names(error, idx, 'records 3 and 4 both start at byte', offsets[4])


def write_headerless(path, labels):
    with RecordWriter(path / 'h.rec', path / 'h.idx') as writer:
        for key, label in enumerate(labels):
            writer.write_record(key, label, b'image')
    offsets = dict(line.split('\t') for line in (path / 'h.idx').read_text().splitlines())
    return RecordReader(path / 'h.rec', path / 'h.idx'), {int(k): int(v)
                                                          for k, v in offsets.items()}


@pytest.mark.parametrize('label, vector', [(0.7, False), (float('nan'), False),
                                           (float('inf'), False), (1.5, True)])
def test_labels_that_are_not_whole_numbers_are_refused(tmp_path, label, vector):
    reader, offsets = write_headerless(tmp_path, [0, 1, [label, 0] if vector else label])

    with pytest.raises(RecordIOError) as error:
        read_face_layout(reader)

    assert_names(error, reader.rec_path, 'record 2', f'byte {offsets[2]}',
                 'is not a whole number')


def test_a_headerless_label_beyond_the_record_count_is_refused(tmp_path):
    reader, offsets = write_headerless(tmp_path, [0, 3e9, 1])

    with pytest.raises(RecordIOError) as error:
        read_face_layout(reader)

    assert_names(error, reader.rec_path, 'record 1', f'byte {offsets[1]}',
                 'label 3000000000 is not below the 3 records')


def test_threads_sharing_a_reader_read_the_right_records(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    payloads = {key: random_bytes(rng, int(rng.integers(100, 4000))) for key in range(64)}
    with RecordWriter(tmp_path / 't.rec', tmp_path / 't.idx') as writer:
        for key, payload in payloads.items():
            writer.write(key, payload)
    reader = RecordReader(tmp_path / 't.rec', tmp_path / 't.idx')

    def wrong_reads(seed):
        keys = np.random.default_rng(seed).integers(0, 64, 2500).tolist()
        return sum(reader.read_payload(key) != payloads[key] for key in keys)

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(wrong_reads, range(8))) == 0


def test_im2rec_pack_label_file_without_header_reads_as_images(tmp_path):
    # mxnet's im2rec --pack-label: every record, key 0 included, is an image with a label vector
    rng = np.random.default_rng(2)
    labels = [[2, 7], [0, 1], [1, 3], [0, 5]]
    images = [random_bytes(rng, 40) for _ in labels]
    with RecordWriter(tmp_path / 'p.rec', tmp_path / 'p.idx') as writer:
        for key, (label, image) in enumerate(zip(labels, images)):
            writer.write_record(key, label, image, id=key)

    layout = read_face_layout(RecordReader(tmp_path / 'p.rec', tmp_path / 'p.idx'))

    assert not layout.has_header and layout.num_identities == 3
    assert layout.image_keys.tolist() == [0, 1, 2, 3]
    assert layout.labels.tolist() == [2, 0, 1, 0]


def test_inconsistent_image_less_header_is_still_refused(tmp_path):
    with RecordWriter(tmp_path / 'h.rec', tmp_path / 'h.idx') as writer:
        writer.write_record(0, [2, 3])  # one identity record, key 2
        writer.write_record(1, 0, b'image', id=1)
        writer.write_record(2, [1, 5])  # its range runs past the images
    with pytest.raises(RecordIOError, match='lies outside the image keys'):
        read_face_layout(RecordReader(tmp_path / 'h.rec', tmp_path / 'h.idx'))
