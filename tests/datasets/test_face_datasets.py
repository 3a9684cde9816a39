"""MXFaceDataset on generated RecordIO files of both layouts: labels, metainfo, decoded images
through an MMPretrain pipeline, subsets and dataloader workers."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmpretrain.registry import DATASETS

import mmrepmlp  # noqa: F401  (registers MXFaceDataset)
from mmrepmlp.datasets.face import (
    MXFaceDataset,
    RecordIOError,
    RecordWriter,
    SyntheticFaceDataset,
)

IMAGES_PER_IDENTITY = (2, 3, 1, 2)
SIZE = 12


def encoded_faces(rng):
    """``[(identity, BGR image, PNG bytes)]``, identity by identity; PNG so that decoding is
    exact."""
    faces = []
    for identity, count in enumerate(IMAGES_PER_IDENTITY):
        for _ in range(count):
            image = rng.integers(0, 256, (SIZE, SIZE + 2, 3), dtype=np.uint8)
            faces.append((identity, image, cv2.imencode('.png', image)[1].tobytes()))
    return faces


def write_layout(folder, faces, header):
    """Write ``faces`` as ``folder/train.rec`` + ``.idx``; return ``{key: face index}``."""
    folder.mkdir(exist_ok=True)
    key_of = {}
    with RecordWriter(folder / 'train.rec', folder / 'train.idx') as writer:
        if header:
            first_identity = len(faces) + 1
            writer.write_record(0, [first_identity, first_identity + len(IMAGES_PER_IDENTITY)])
            order, first_key = range(len(faces)), 1
        else:
            order, first_key = np.random.default_rng(5).permutation(len(faces)).tolist(), 0
        for key, index in enumerate(order, start=first_key):
            writer.write_record(key, faces[index][0], faces[index][2])
            key_of[key] = index
        if header:
            starts = np.cumsum((1, ) + IMAGES_PER_IDENTITY)
            for identity in range(len(IMAGES_PER_IDENTITY)):
                writer.write_record(first_identity + identity,
                                    [starts[identity], starts[identity + 1]])
    return key_of


@pytest.fixture(params=[True, False], ids=['insightface', 'headerless'])
def faces_on_disk(request, tmp_path):
    faces = encoded_faces(np.random.default_rng(0))
    key_of = write_layout(tmp_path / 'ms1m', faces, header=request.param)
    return tmp_path / 'ms1m', faces, key_of


def test_labels_and_metainfo_without_decoding(faces_on_disk):
    root, faces, key_of = faces_on_disk
    dataset = DATASETS.build(dict(type='MXFaceDataset', data_root=str(root)))

    assert len(dataset) == len(faces)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert sorted(info['record_key'] for info in infos) == sorted(key_of)
    for info in infos:
        assert info['gt_label'] == faces[key_of[info['record_key']]][0]
        assert 'img' not in info
    assert dataset.get_gt_labels().tolist() == [info['gt_label'] for info in infos]
    assert dataset.metainfo['num_identities'] == len(IMAGES_PER_IDENTITY)
    assert dataset.metainfo['classes'] == tuple(str(i) for i in range(len(IMAGES_PER_IDENTITY)))
    assert dataset.get_data_info(-1)['sample_idx'] == len(faces) - 1


def test_pipeline_packs_decoded_bgr_faces(faces_on_disk):
    root, faces, key_of = faces_on_disk
    pipeline = [dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                dict(type='Resize', scale=(SIZE, SIZE)), dict(type='PackInputs')]
    dataset = MXFaceDataset(data_root=str(root), pipeline=pipeline, test_mode=True)
    raw = MXFaceDataset(data_root=str(root))

    for index in range(len(dataset)):
        identity, image, _ = faces[key_of[dataset.get_data_info(index)['record_key']]]
        sample = dataset[index]
        expected = cv2.resize(image[:, ::-1], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(sample['inputs'].permute(1, 2, 0).numpy(), expected)
        assert sample['data_samples'].gt_label.tolist() == [identity]
        assert sample['data_samples'].ori_shape == image.shape[:2]
        np.testing.assert_array_equal(raw.prepare_data(index)['img'], image)


def test_dataloader_with_workers(faces_on_disk):
    root, faces, key_of = faces_on_disk
    dataset = MXFaceDataset(data_root=str(root), pipeline=[dict(type='PackInputs')])
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2,
                                         multiprocessing_context='fork',
                                         collate_fn=pseudo_collate)

    seen = {}
    for batch in loader:
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            seen[sample.sample_idx] = (inputs, sample.gt_label.item())
    assert sorted(seen) == list(range(len(faces)))
    for index, (inputs, label) in seen.items():
        identity, image, _ = faces[key_of[dataset.get_data_info(index)['record_key']]]
        assert label == identity
        np.testing.assert_array_equal(inputs.permute(1, 2, 0).numpy(), image)


def test_indices_and_subsets(faces_on_disk):
    root, faces, _ = faces_on_disk
    full = MXFaceDataset(data_root=str(root))
    keys = [full.get_data_info(i)['record_key'] for i in range(len(full))]

    assert [MXFaceDataset(data_root=str(root), indices=3).get_data_info(i)['record_key']
            for i in range(3)] == keys[:3]
    subset = full.get_subset([4, 0])
    assert [subset.get_data_info(i)['record_key'] for i in range(2)] == [keys[4], keys[0]]
    assert len(full) == len(faces)  # the original is untouched
    full.get_subset_(-2)
    assert [full.get_data_info(i)['record_key'] for i in range(len(full))] == keys[-2:]


def test_missing_files_name_the_path_and_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        MXFaceDataset(data_root=str(tmp_path / 'nowhere'))
    assert str(tmp_path / 'nowhere' / 'train.rec') in str(error.value)
    assert 'data_root=' in str(error.value)


def test_undecodable_image_names_the_record(tmp_path):
    faces = encoded_faces(np.random.default_rng(1))
    faces[2] = (faces[2][0], faces[2][1], b'not an image')
    write_layout(tmp_path / 'bad', faces, header=True)
    dataset = MXFaceDataset(data_root=str(tmp_path / 'bad'), test_mode=True)

    dataset.prepare_data(1)
    with pytest.raises(RecordIOError, match='record 3 at byte .*does not decode'):
        dataset.prepare_data(2)


def test_synthetic_faces_are_reproducible_labelled_images():
    dataset = DATASETS.build(dict(
        type='SyntheticFaceDataset', num_identities=3, num_images=7, img_size=(16, 12), seed=4,
        pipeline=[dict(type='PackInputs')]))

    assert len(dataset) == 7 and dataset.metainfo['num_identities'] == 3
    assert len(dataset.metainfo['classes']) == 3
    assert dataset.get_gt_labels().tolist() == [0, 1, 2, 0, 1, 2, 0]
    first, again, other = dataset[5], dataset[5], dataset[6]
    assert first['inputs'].shape == (3, 16, 12) and first['inputs'].dtype == torch.uint8
    assert torch.equal(first['inputs'], again['inputs'])
    assert not torch.equal(first['inputs'], other['inputs'])
    assert first['data_samples'].gt_label.tolist() == [2]
    reseeded = SyntheticFaceDataset(num_identities=3, num_images=7, img_size=(16, 12), seed=5)
    assert reseeded.prepare_data(5)['img'].shape == (16, 12, 3)
    assert not np.array_equal(reseeded.prepare_data(5)['img'],
                              first['inputs'].permute(1, 2, 0).numpy())


@pytest.mark.parametrize('kwargs', [dict(num_identities=0), dict(num_identities=2.0),
                                    dict(num_identities=2, num_images=-1)])
def test_synthetic_faces_refuse_bad_sizes(kwargs):
    with pytest.raises(ValueError, match='SyntheticFaceDataset: num_'):
        SyntheticFaceDataset(**kwargs)


def test_an_index_pointing_a_key_at_another_identitys_image_is_refused(tmp_path):
    write_layout(tmp_path / 'swapped', encoded_faces(np.random.default_rng(2)), header=True)
    idx = tmp_path / 'swapped' / 'train.idx'
    offsets = dict(line.split('\t') for line in idx.read_text().splitlines())
    offsets['2'], offsets['3'] = offsets['3'], offsets['2']  # identity 0's key 2, identity 1's 3
    idx.write_text(''.join(f'{key}\t{offset}\n' for key, offset in offsets.items()))
    dataset = MXFaceDataset(data_root=str(tmp_path / 'swapped'), test_mode=True)

    dataset.prepare_data(0)
    with pytest.raises(RecordIOError, match='record 2 at byte .*labelled identity 1, but its '
                       'key lies in the image range of identity 0'):
        dataset.prepare_data(1)


@pytest.mark.parametrize('image, message', [
    (b'', 'the image is empty \\(0 bytes\\)'),
    (cv2.imencode('.jpg', np.zeros((30, 20, 3), np.uint8))[1].tobytes(),
     'the image declares 20 x 30 pixels, more than the limit of 500'),
], ids=['empty', 'too large'])
def test_empty_and_oversized_images_name_the_record(tmp_path, image, message):
    faces = encoded_faces(np.random.default_rng(1))
    faces[2] = (faces[2][0], faces[2][1], image)
    write_layout(tmp_path / 'bad', faces, header=True)
    dataset = MXFaceDataset(data_root=str(tmp_path / 'bad'), test_mode=True, max_image_pixels=500)

    dataset.prepare_data(1)
    with pytest.raises(RecordIOError, match=f'record 3 at byte .*: {message}'):
        dataset.prepare_data(2)
