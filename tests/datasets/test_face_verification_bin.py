"""insightface's verification .bin files: the pickles they come as (Python 3, protocol 2,
Python 2 with str payloads and numpy arrays), refusing malicious ones, and the dataset through
a pipeline into the metric."""
import os
import pickle
import re
import struct

import cv2
import numpy as np
import pytest
import torch
from mmpretrain.registry import DATASETS

import mmrepmlp  # noqa: F401  (registers the dataset and metric)
from mmrepmlp.datasets.face.verification_bin import FaceVerificationDataset, load_verification_bin
from mmrepmlp.evaluation import FaceVerificationMetric, evaluate_verification
from mmrepmlp.utils.errors import InputError

META_KEYS = ('set_name', 'index_in_set', 'issame')


def face_images(count, seed=0, size=12):
    """Random BGR images and their PNG encodings (lossless, so decoding is checkable)."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]
    return images, [cv2.imencode('.png', image)[1] for image in images]


def write_bin(path, images, issame, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, 'wb') as f:
        pickle.dump((images, issame), f, protocol=protocol)
    return str(path)


ISSAME = [True, False, True]


@pytest.mark.parametrize('protocol', [2, pickle.HIGHEST_PROTOCOL])
def test_reads_python3_pickles_of_jpeg_bytes(tmp_path, protocol):
    rng = np.random.default_rng(1)
    jpegs = [cv2.imencode('.jpg', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))[1].tobytes()
             for _ in range(6)]
    path = write_bin(tmp_path / 'lfw.bin', jpegs, ISSAME, protocol)

    images, issame = load_verification_bin(path)

    assert images == jpegs
    assert issame.dtype == bool and issame.tolist() == ISSAME


@pytest.mark.parametrize('protocol', [2, 5])
def test_reads_cv2_imencode_arrays(tmp_path, protocol):
    # insightface's packing script appends cv2.imencode's (N, 1) uint8 arrays
    _, encoded = face_images(6)
    path = write_bin(tmp_path / 'agedb_30.bin', encoded, np.array(ISSAME), protocol)

    images, issame = load_verification_bin(path)

    assert images == [array.tobytes() for array in encoded]
    assert issame.tolist() == ISSAME


def py2_string(data):
    """Python 2's ``str`` in protocol 2: SHORT_BINSTRING or BINSTRING."""
    if len(data) < 256:
        return b'U' + bytes([len(data)]) + data
    return b'T' + struct.pack('<i', len(data)) + data


def py2_uint8_array(data):
    """A Python 2 numpy ``uint8`` array ``(len(data), 1)`` as numpy 1.x pickled it."""
    dtype = (b'cnumpy\ndtype\n' + py2_string(b'u1') + b'K\x00K\x01\x87R'
             b'(K\x03' + py2_string(b'|') + b'NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb')
    return (b'cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85'
            + py2_string(b'b') + b'\x87R(K\x01' + b'J' + struct.pack('<i', len(data))
            + b'K\x01\x86' + dtype + b'\x89' + py2_string(data) + b'tb')


def py2_bin(items, issame):
    """The bytes Python 2 writes for ``pickle.dump((items, issame), f, 2)``."""
    images = b']' + b'(' + b''.join(items) + b'e'
    labels = b']' + b'(' + b''.join(b'\x88' if same else b'\x89' for same in issame) + b'e'
    return b'\x80\x02' + images + labels + b'\x86.'


def test_reads_python2_pickles(tmp_path):
    _, encoded = face_images(6, seed=2)
    payloads = [array.tobytes() for array in encoded]
    items = [py2_string(p) for p in payloads[:4]] + [py2_uint8_array(p) for p in payloads[4:]]
    path = tmp_path / 'cfp_fp.bin'
    path.write_bytes(py2_bin(items, ISSAME))
    with pytest.raises(UnicodeDecodeError):  # why encoding='bytes' is needed
        pickle.loads(path.read_bytes())

    images, issame = load_verification_bin(str(path))

    assert images == payloads
    assert issame.tolist() == ISSAME


class RunsACommand:
    """Unpickling this runs a shell command, as a malicious .bin would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_refuses_a_malicious_pickle_without_running_it(tmp_path):
    marker = tmp_path / 'ran'
    _, encoded = face_images(2)
    path = write_bin(tmp_path / 'lfw.bin', [encoded[0], RunsACommand(marker)], [True])

    with pytest.raises(InputError, match=r'lfw\.bin asks to unpickle (posix|os|nt)\.system.*'
                       'refusing'):
        load_verification_bin(path)
    assert not marker.exists()


def test_refuses_object_arrays(tmp_path):
    path = write_bin(tmp_path / 'lfw.bin', [np.array([b'x', b'y'], dtype=object)] * 2, [True])

    with pytest.raises(InputError, match='dtype object, not uint8 or bool'):
        load_verification_bin(path)


@pytest.mark.parametrize('content, message', [
    (None, 'does not exist'),
    (b'\x80\x04\x95', r'not a readable verification \.bin'),
    (pickle.dumps(([b'a'] * 4, ISSAME)), r'holds 4 images for 3 pairs'),
    (pickle.dumps(([b'a'] * 6, [], ISSAME)), r'does not hold a pair \(images, issame\)'),
    (pickle.dumps(([b'a'] * 6, ['yes'] * 3)), 'not a non-empty list of booleans'),
    (pickle.dumps(([b'a'] * 5 + [3], ISSAME)), 'image 5 is a int'),
])
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / 'broken.bin'
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(InputError, match=f'{re.escape(str(path))}.*{message}'):
        load_verification_bin(str(path))


@pytest.fixture
def bin_dir(tmp_path):
    images_a, encoded_a = face_images(6, seed=3)
    images_b, encoded_b = face_images(4, seed=4, size=8)
    write_bin(tmp_path / 'lfw.bin', [e.tobytes() for e in encoded_a], ISSAME)
    write_bin(tmp_path / 'cfp_fp.bin', encoded_b, [False, True])
    return tmp_path, {'lfw': images_a, 'cfp_fp': images_b}


def test_dataset_through_a_pipeline(bin_dir):
    root, images = bin_dir
    dataset = DATASETS.build(dict(
        type='FaceVerificationDataset', data_root=str(root),
        bin_files=dict(lfw='lfw.bin', cfp_fp=str(root / 'cfp_fp.bin')), test_mode=True,
        pipeline=[dict(type='PackInputs', meta_keys=META_KEYS)]))

    assert len(dataset) == 10
    assert dataset.metainfo['set_sizes'] == {'lfw': 6, 'cfp_fp': 4}
    for index in range(len(dataset)):
        packed = dataset[index]
        sample = packed['data_samples']
        name, index_in_set = sample.set_name, sample.index_in_set
        assert (name, index_in_set) == (('lfw', index) if index < 6 else ('cfp_fp', index - 6))
        expected = images[name][index_in_set]  # BGR, as cv2 decodes
        np.testing.assert_array_equal(packed['inputs'].numpy(), expected.transpose(2, 0, 1))
        issame = ISSAME if name == 'lfw' else [False, True]
        assert sample.issame == issame[index_in_set // 2]


def test_dataset_names_sets_by_file_stem(bin_dir):
    root, _ = bin_dir

    dataset = FaceVerificationDataset(bin_files=[str(root / 'cfp_fp.bin'), 'lfw.bin'],
                                      data_root=str(root))

    assert list(dataset.metainfo['set_sizes']) == ['cfp_fp', 'lfw']
    with pytest.raises(ValueError, match='repeat a file name'):
        FaceVerificationDataset(bin_files=['a/lfw.bin', 'b/lfw.bin'])


def test_dataset_names_a_missing_file_and_a_corrupt_image(bin_dir):
    root, _ = bin_dir
    with pytest.raises(InputError, match=r'agedb_30\.bin does not exist'):
        FaceVerificationDataset(bin_files=['lfw.bin', 'agedb_30.bin'], data_root=str(root))

    write_bin(root / 'bad.bin', [b'not an image'] * 2, [True])
    dataset = FaceVerificationDataset(bin_files='bad.bin', data_root=str(root))
    with pytest.raises(InputError, match=r'bad\.bin: image 0 cannot be decoded'):
        dataset[0]


def embedding_of(set_name, index_in_set):
    """A fixed random embedding per image, so that misplaced images change the metric."""
    return np.random.default_rng([len(set_name), index_in_set]).normal(size=4)


def test_dataset_samples_feed_the_metric(bin_dir):
    root, _ = bin_dir
    dataset = FaceVerificationDataset(
        bin_files=['lfw.bin', 'cfp_fp.bin'], data_root=str(root), test_mode=True,
        pipeline=[dict(type='PackInputs', meta_keys=META_KEYS)])
    metric = FaceVerificationMetric(num_folds=2)
    metric.dataset_meta = dataset.metainfo

    for index in reversed(range(len(dataset))):
        sample = dataset[index]['data_samples']
        embedding = embedding_of(sample.set_name, sample.index_in_set)
        sample.set_field(torch.from_numpy(embedding), 'pred_embedding')
        metric.process(None, [sample.to_dict()])
    metrics = metric.evaluate(len(dataset))

    for name, issame in (('lfw', ISSAME), ('cfp_fp', [False, True])):
        embeddings = np.stack([embedding_of(name, i) for i in range(2 * len(issame))])
        expected = evaluate_verification(embeddings, issame, num_folds=2)
        assert metrics[f'{name}/accuracy'] == expected.accuracy
        assert metrics[f'{name}/threshold'] == expected.best_thresholds.mean()


class AllocatesAnArray:
    """Unpickles as ``numpy.ndarray((2e9,), 'u1')``: 2 GB from a few bytes of file."""

    def __reduce__(self):
        return np.ndarray, ((2_000_000_000, ), 'u1')


@pytest.mark.parametrize('protocol', [2, pickle.HIGHEST_PROTOCOL])
def test_refuses_an_array_allocated_without_its_data(tmp_path, protocol):
    path = write_bin(tmp_path / 'lfw.bin', [AllocatesAnArray(), b'x'], [True], protocol)

    with pytest.raises(InputError, match=r"lfw\.bin asks to unpickle numpy\.ndarray\(\(2000000000,"
                       r"\), 'u1'\), an array allocated without its data.*refusing"):
        load_verification_bin(path)


def test_reads_an_empty_image_of_a_protocol_2_pickle_and_names_it_when_decoded(tmp_path):
    _, encoded = face_images(1)
    path = write_bin(tmp_path / 'lfw.bin', [b'', encoded[0].tobytes()], [True], protocol=2)
    assert b'bytes' in (tmp_path / 'lfw.bin').read_bytes()  # b'' pickled as a call of bytes()

    images, _ = load_verification_bin(path)
    dataset = FaceVerificationDataset(bin_files=path)

    assert images[0] == b''
    with pytest.raises(InputError, match=r'lfw\.bin: image 0 is empty \(0 bytes\)'):
        dataset[0]
    assert dataset[1]['img'].shape == (12, 12, 3)


def test_refuses_to_decode_an_image_declaring_too_many_pixels(tmp_path):
    encoded = bytearray(face_images(1)[1][0].tobytes())
    encoded[16:24] = struct.pack('>II', 30000, 30000)  # the PNG header's width and height
    path = write_bin(tmp_path / 'lfw.bin', [bytes(encoded)] * 2, [True])

    with pytest.raises(InputError, match=r'image 0 declares 30000 x 30000 pixels, more than the '
                       'limit of 16,777,216'):
        FaceVerificationDataset(bin_files=path)[0]
