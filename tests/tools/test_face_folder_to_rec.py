"""tools/dataset_converters/face_folder_to_rec.py: a folder per identity packed into RecordIO
and read back, the same labels as MMPretrain's CustomDataset, and clean failures."""
import os
import threading

import cv2
import numpy as np
import pytest
from helpers_tools import load_tool, run_tool
from mmpretrain.datasets import CustomDataset

from mmrepmlp.datasets.face import MXFaceDataset, RecordReader, read_face_layout

TOOL = 'dataset_converters/face_folder_to_rec.py'
# identity folder -> its image files (the empty folder stays an identity)
LAYOUT = {'bob': ['2.jpg', '1.png', 'side/3.JPG'], 'alice': ['a.jpg'], 'carol': [],
          'dave': ['x.png', 'y.jpeg']}


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    """``src/<identity>/<image>`` with random faces, a stray top-level file and a note."""
    src = tmp_path_factory.mktemp('faces') / 'src'
    rng = np.random.default_rng(0)
    for identity, names in LAYOUT.items():
        os.makedirs(src / identity, exist_ok=True)
        for name in names:
            os.makedirs((src / identity / name).parent, exist_ok=True)
            image = rng.integers(0, 256, (16, 14, 3), dtype=np.uint8)
            assert cv2.imwrite(str(src / identity / name), image)
    (src / 'README.txt').write_text('faces')
    (src / 'dave' / 'notes.txt').write_text('not an image')
    return src


def expected_images(src):
    """``[(label, file bytes)]`` in label order, images by sorted relative path."""
    images = []
    for label, identity in enumerate(sorted(LAYOUT)):
        for name in sorted(LAYOUT[identity]):
            images.append((label, (src / identity / name).read_bytes()))
    return images


def run_in_process(argv):
    load_tool(TOOL).main([str(a) for a in argv])


def test_insightface_layout_copies_the_files(faces, tmp_path, capsys):
    run_in_process([faces, tmp_path / 'out' / 'faces.rec'])

    report = capsys.readouterr().out
    reader = RecordReader(tmp_path / 'out' / 'faces.rec', tmp_path / 'out' / 'faces.idx')
    layout = read_face_layout(reader)
    assert layout.has_header and layout.num_identities == len(LAYOUT)
    stored = [(int(label), reader.read(int(key)).image)
              for key, label in zip(layout.image_keys, layout.labels)]
    assert stored == expected_images(faces)
    assert [reader.read(int(key)).identity for key in layout.image_keys] == \
        layout.labels.tolist()  # each image record's own label agrees
    size = (tmp_path / 'out' / 'faces.rec').stat().st_size
    assert f'packed 4 identities, 6 images into {tmp_path / "out" / "faces.rec"} ({size:,} ' \
        'bytes)' in report
    assert 'skipped files (not in an identity folder): 1:' in report and 'README.txt' in report
    assert 'skipped files (not .jpg/.jpeg/.png): 1:' in report and 'notes.txt' in report
    assert 'identity folders without images' in report and 'carol' in report


def test_same_labels_as_custom_dataset(faces, tmp_path):
    run_in_process([faces, tmp_path / 'faces'])
    packed = MXFaceDataset(data_root=str(tmp_path), rec_file='faces.rec', idx_file='faces.idx')
    folder = CustomDataset(data_root=str(faces))

    assert len(folder.metainfo['classes']) == len(packed.metainfo['classes']) == len(LAYOUT)
    assert packed.metainfo['num_identities'] == len(LAYOUT)
    assert packed.get_gt_labels().tolist() == folder.get_gt_labels().tolist()
    for index in range(len(folder)):
        path = folder.get_data_info(index)['img_path']
        np.testing.assert_array_equal(packed.prepare_data(index)['img'], cv2.imread(path))


def test_headerless_shuffled_and_resized_in_a_subprocess(faces, tmp_path):
    result = run_tool([TOOL, faces, tmp_path / 'shuffled', '--no-header', '--seed', 3,
                       '--resize', 8], tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert 'header-less, shuffled' in result.stdout
    reader = RecordReader(tmp_path / 'shuffled.rec', tmp_path / 'shuffled.idx')
    layout = read_face_layout(reader)
    assert not layout.has_header and layout.image_keys.tolist() == list(range(6))
    images = [cv2.imdecode(np.frombuffer(reader.read(k).image, np.uint8), cv2.IMREAD_COLOR)
              for k in range(6)]
    assert {image.shape for image in images} == {(8, 8, 3)}
    expected = expected_images(faces)
    assert sorted(layout.labels.tolist()) == sorted(label for label, _ in expected)
    assert layout.labels.tolist() != sorted(layout.labels.tolist())  # shuffled
    small = [cv2.resize(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), (8, 8),
                        interpolation=cv2.INTER_AREA).astype(int) for _, data in expected]
    for label, image in zip(layout.labels.tolist(), images):
        # the stored image is its identity's face scaled down (JPEG-encoded again)
        nearest = np.argmin([np.abs(original - image).mean() for original in small])
        assert expected[nearest][0] == label

    run_in_process([faces, tmp_path / 'again', '--no-header', '--seed', 3, '--resize', 8])
    assert (tmp_path / 'again.rec').read_bytes() == (tmp_path / 'shuffled.rec').read_bytes()


def one_line_error(argv):
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(argv)
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    return message


def test_bad_input_gives_one_line_and_writes_nothing(faces, tmp_path):
    out = tmp_path / 'out' / 'faces'
    empty = tmp_path / 'empty'
    (empty / 'nobody').mkdir(parents=True)
    (tmp_path / 'a_file').write_text('x')

    cases = [
        ([tmp_path / 'missing', out], ['input folder', 'does not exist']),
        ([empty, out], ['holds no .jpg/.jpeg/.png image', 'SRC/<identity>/<image>']),
        ([faces, faces / 'bob' / 'packed'], ['inside the input folder']),
        ([faces, tmp_path / 'a_file' / 'faces'], ['is a file']),
        ([faces, out, '--seed', 1], ['--no-header']),
    ]
    for argv, fragments in cases:
        message = one_line_error(argv)
        assert all(fragment in message for fragment in fragments), message
    assert not (tmp_path / 'out').exists()
    assert not any(name.endswith(('.rec', '.idx')) for _, _, names in os.walk(faces)
                   for name in names)


def test_unreadable_image_keeps_the_previous_outputs(faces, tmp_path):
    src = tmp_path / 'src'
    (src / 'a').mkdir(parents=True)
    cv2.imwrite(str(src / 'a' / '1.png'), np.zeros((4, 4, 3), np.uint8))
    (src / 'a' / '2.jpg').write_bytes(b'\xff\xd8 truncated')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'faces.rec').write_bytes(b'previous rec')
    (out / 'faces.idx').write_text('previous idx')

    message = one_line_error([src, out / 'faces'])

    assert str(src / 'a' / '2.jpg') in message and 'does not decode' in message
    assert sorted(os.listdir(out)) == ['faces.idx', 'faces.rec']  # no temporary left behind
    assert (out / 'faces.rec').read_bytes() == b'previous rec'
    assert (out / 'faces.idx').read_text() == 'previous idx'


def test_refuses_an_output_that_points_at_an_input(faces, tmp_path):
    image = faces / 'alice' / 'a.jpg'
    before = image.read_bytes()
    os.symlink(image, tmp_path / 'faces.rec')

    message = one_line_error([faces, tmp_path / 'faces'])

    assert 'inside the input folder' in message and image.read_bytes() == before


def one_face(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((8, 8, 3), 99, np.uint8))


def test_reads_regular_files_only(tmp_path, capsys):
    src = tmp_path / 'src'
    one_face(src / 'id1' / 'a.png')
    os.mkfifo(src / 'id1' / 'fifo.jpg')  # opening it would wait for a writer forever
    os.symlink('/dev/zero', src / 'id1' / 'zero.jpg')  # reading it would never end
    # should the FIFO be opened after all, a writer ends the wait (and the test fails)
    threading.Thread(target=(src / 'id1' / 'fifo.jpg').write_bytes, args=(b'x', ),
                     daemon=True).start()

    run_in_process([src, tmp_path / 'faces'])

    report = capsys.readouterr().out
    assert 'packed 1 identities, 1 images' in report
    assert f'skipped files (not a regular file): 2: {src / "id1" / "fifo.jpg"}' in report


@pytest.mark.parametrize('link_target', ['.', '..'])
def test_refuses_an_identity_folder_linked_into_the_source_tree(tmp_path, link_target):
    src = tmp_path / 'src'
    one_face(src / 'id1' / 'a.png')
    os.symlink(link_target, src / 'id2')

    message = one_line_error([src, tmp_path / 'out' / 'faces'])

    assert f'identity folder {src / "id2"} is a link to' in message and 'remove the link' in message
    assert not (tmp_path / 'out').exists()


def png_declaring(width, height):
    """A small PNG whose header declares ``width`` x ``height`` pixels (its CRC fixed)."""
    import struct
    import zlib

    data = bytearray(cv2.imencode('.png', np.zeros((4, 4), np.uint8))[1].tobytes())
    data[16:24] = struct.pack('>II', width, height)
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize('content, fragment', [
    (b'', 'is empty (0 bytes)'),
    (png_declaring(30000, 30000), 'declares 30000 x 30000 pixels, more than the limit'),
], ids=['empty', 'bomb'])
def test_empty_and_oversized_images_are_one_clear_error(tmp_path, content, fragment):
    src = tmp_path / 'src'
    one_face(src / 'id1' / 'a.png')
    (src / 'id1' / 'b.png').write_bytes(content)

    message = one_line_error([src, tmp_path / 'out' / 'faces'])

    assert f'{src / "id1" / "b.png"} {fragment}' in message, message
    assert not list((tmp_path / 'out').glob('*'))  # nor a temporary
