"""tools/train.py and tools/test.py against data that contradicts the model: face training sets
with more identities than the head has classes, corrupt or truncated RecordIO files, config
variables that --cfg-options cannot change after loading, and segmentation label maps with
labels beyond the classes or of another size than their image. Each is one error line (exit
1) naming the file and the fix, before any training where it can be known before."""
import os

import cv2
import numpy as np
import pytest
import torch
from helpers_tools import (
    REPO_ROOT,
    TINY_SEG_CONFIG,
    load_tool,
    make_segmentation_folders,
    write_config,
)
from PIL import Image

from mmrepmlp.apis import load_model
from mmrepmlp.datasets.face import RecordWriter

FACE_CONFIG = f'{REPO_ROOT}/configs/repmlp_face/repmlp-faceres50_8xb64_ms1mv2.py'
CLASSES = 4


def run_in_process(tool, args):
    """The tool's exit status (1 with the message) and message."""
    try:
        load_tool(tool).main([str(a) for a in args])
    except SystemExit as exit_info:
        code = exit_info.code
        return (1, code) if isinstance(code, str) else (code, '')
    return 0, ''


def assert_one_line_error(tool, args, *fragments):
    status, message = run_in_process(tool, args)
    assert status == 1, (status, message)
    assert message.startswith('error: ') and '\n' not in message and ';' in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def write_faces(folder, labels):
    """A header-less face RecordIO file: one tiny PNG per label."""
    folder.mkdir()
    encoded = cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    with RecordWriter(folder / 'train.rec', folder / 'train.idx') as writer:
        for key, label in enumerate(labels):
            writer.write_record(key, label, encoded, id=key)
    return folder


def face_config(path, data_root):
    path.write_text(f'_base_ = [{FACE_CONFIG!r}]\n'
                    f'model = dict(head=dict(num_classes={CLASSES}))\n'
                    f'data_preprocessor = dict(num_classes={CLASSES})\n'
                    f'train_dataloader = dict(dataset=dict(data_root={str(data_root)!r}))\n')
    return str(path)


def dry_run(config, tmp_path, *options):
    return [config, '--work-dir', tmp_path / 'work', '--no-validate', '--dry-run', *options]


def test_dry_run_of_sound_face_data_is_ready(tmp_path, capsys):
    config = face_config(tmp_path / 'face.py', write_faces(tmp_path / 'faces', [0, 1, 2, 3]))

    assert run_in_process('train.py', dry_run(config, tmp_path)) == (0, '')
    assert 'is ready' in capsys.readouterr().out


def test_more_identities_than_the_head_has_classes(tmp_path):
    faces = write_faces(tmp_path / 'faces', [0, 1, 2, 3, 4, 5])
    config = face_config(tmp_path / 'face.py', faces)

    assert_one_line_error('train.py', dry_run(config, tmp_path),
                          f'{faces / "train.rec"} holds 6 identities (labels 0 to 5) and '
                          'model.head.num_classes is 4',
                          '--cfg-options model.head.num_classes=6 data_preprocessor.num_classes=6')
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('labels, cut, fragment', [
    ([0, float('nan'), 1], 0, 'label nan is not a whole number'),
    ([0, 1, 2, 3], 30, 'run past the end of the file'),
], ids=['nan label', 'truncated'])
def test_corrupt_training_sets_are_refused_by_the_dry_run(tmp_path, labels, cut, fragment):
    faces = write_faces(tmp_path / 'faces', labels)
    rec = faces / 'train.rec'
    rec.write_bytes(rec.read_bytes()[:rec.stat().st_size - cut])

    assert_one_line_error('train.py', dry_run(face_config(tmp_path / 'face.py', faces),
                                              tmp_path), str(rec), fragment)


def test_a_config_variable_copied_when_loading_is_refused_with_the_keys_to_set(tmp_path):
    faces = write_faces(tmp_path / 'faces', [0, 1])
    config = tmp_path / 'face.py'  # the real config's 85,742 identities
    config.write_text(f'_base_ = [{FACE_CONFIG!r}]\n'
                      f'train_dataloader = dict(dataset=dict(data_root={str(faces)!r}))\n')

    assert_one_line_error('train.py', dry_run(config, tmp_path, '--cfg-options',
                                              'num_identities=6'),
                          '--cfg-options num_identities=6: num_identities is a variable of the '
                          'config whose value 85742 was copied into 2 entries',
                          '--cfg-options data_preprocessor.num_classes=6 '
                          'model.head.num_classes=6')


@pytest.fixture
def segmentation(tmp_path):
    """The tiny PSPNet's config and checkpoint, and its data set (4 classes, 64x64)."""
    data = make_segmentation_folders(tmp_path / 'seg')
    config = write_config(tmp_path / 'seg.py', data, base=TINY_SEG_CONFIG)
    checkpoint = tmp_path / 'seg.pth'
    torch.save({'state_dict': load_model(config)[0].state_dict()}, checkpoint)
    return config, str(checkpoint), data


def test_labels_beyond_the_classes_fail_the_test_naming_the_file(segmentation, tmp_path):
    config, checkpoint, data = segmentation
    labels = np.zeros((64, 64), np.uint8)
    labels[:4, :4] = [[19], [100], [254], [255]]  # 255 is the ignored index: fine
    Image.fromarray(labels).save(data / 'ann' / '2.png')

    assert_one_line_error('test.py', [config, checkpoint, '--work-dir', tmp_path / 'work'],
                          f'{data / "ann" / "2.png"} holds the labels 19, 100, 254, which are '
                          'neither classes of the model (0 to 3) nor the ignored 255')


def test_a_label_map_of_another_size_fails_training_naming_both_files(segmentation, tmp_path):
    config, _, data = segmentation
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(data / 'ann' / '1.png')

    assert_one_line_error('train.py', [config, '--work-dir', tmp_path / 'work'],
                          f'{data / "ann" / "1.png"} is 32x32 pixels and its image '
                          f'{data / "img" / "1.png"} 64x64')
    assert not [name for name in os.listdir(tmp_path / 'work') if name.endswith('.pth')]
