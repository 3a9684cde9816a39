"""Face-recognition training sets in MXNet RecordIO (MS1M-V2 and its kin) for MMPretrain."""
import copy
import os.path as osp

import numpy as np
from mmengine.dataset.base_dataset import force_full_init
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from ...utils.errors import InputError
from .images import MAX_IMAGE_PIXELS, decode_image
from .recordio import RecordReader, check_image_label, read_face_layout


@DATASETS.register_module()
class MXFaceDataset(BaseDataset):
    """Faces and identity labels from a ``.rec`` + ``.idx`` pair, without mxnet.

    Both layouts are read: insightface's (MS1M-V2: a header record and one record per identity
    listing its images; only the 85,742 identity records are read at start) and a header-less,
    shuffled file (every record is an image; the start reads the 36-byte header of each). See
    :func:`~mmrepmlp.datasets.face.recordio.read_face_layout`. Pack a folder of your own with
    ``tools/dataset_converters/face_folder_to_rec.py``.

    The per-image bookkeeping is two int64 arrays (record key, label): 93 MB for MS1M-V2's
    5,822,653 images, shared with forked dataloader workers, so ``serialize_data`` is moot and
    ``filter_cfg`` is not used. :meth:`get_data_info` reads nothing; :meth:`prepare_data` reads
    the record and decodes its JPEG or PNG to a BGR ``uint8`` ``(H, W, 3)`` array under
    ``img`` (with ``img_shape`` and ``ori_shape``), so that the pipeline starts with
    transforms such as ``RandomFlip`` and ends with ``PackInputs``; it has no
    ``LoadImageFromFile``.

    ``metainfo`` holds ``num_identities``, the number of identity classes (labels are
    ``0 .. num_identities-1``: the classifier's size), and ``classes``, the identity ids as
    strings (``'0'``, ``'1'``, ...), so that ``len(metainfo['classes'])`` counts identities as
    for MMPretrain's ``CustomDataset`` on a folder per identity. Both are known after
    :meth:`full_init` (at construction unless ``lazy_init=True``).

    Args:
        data_root (str): the folder of the files.
        rec_file (str): the ``.rec`` file, relative to ``data_root``. Defaults to 'train.rec'.
        idx_file (str): its ``.idx`` file, relative to ``data_root``. Defaults to 'train.idx'.
        max_image_pixels (int): the most pixels an image may declare; a larger one (a
            decompression bomb) is refused before it is decoded. Defaults to 4096 x 4096.
        **kwargs: other arguments of :class:`mmpretrain.datasets.BaseDataset` (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``, ``metainfo``, ...).
    """

    def __init__(self, data_root, rec_file='train.rec', idx_file='train.idx',
                 max_image_pixels=MAX_IMAGE_PIXELS, **kwargs):
        self.rec_file, self.idx_file = rec_file, idx_file
        self.max_image_pixels = max_image_pixels
        self.reader = None
        self._keys = self._labels = np.empty(0, dtype=np.int64)
        self._has_header = False
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    @property
    def rec_path(self):
        return osp.join(self.data_root, self.rec_file)

    @property
    def idx_path(self):
        return osp.join(self.data_root, self.idx_file)

    def full_init(self):
        """Read the index and the identity labels (no image)."""
        if self._fully_initialized:
            return
        for path, option in ((self.rec_path, 'rec_file'), (self.idx_path, 'idx_file')):
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'MXFaceDataset: {path} does not exist; set data_root= to the folder that '
                    f'holds {self.rec_file} and {self.idx_file} (or {option}= to its name)')
        self.reader = RecordReader(self.rec_path, self.idx_path)
        layout = read_face_layout(self.reader)
        self._keys, self._labels = layout.image_keys, layout.labels
        self._has_header = layout.has_header
        self._metainfo['num_identities'] = layout.num_identities
        self._metainfo.setdefault('classes', tuple(map(str, range(layout.num_identities))))
        if self._indices is not None:
            self._select(self._indices)
        self._fully_initialized = True

    @force_full_init
    def __len__(self):
        return len(self._keys)

    @force_full_init
    def get_data_info(self, idx):
        """Return ``record_key``, ``gt_label`` (the identity) and ``sample_idx`` of image
        ``idx``, without reading the file."""
        sample_idx = idx if idx >= 0 else len(self) + idx
        return dict(record_key=int(self._keys[idx]), gt_label=int(self._labels[idx]),
                    sample_idx=sample_idx)

    def prepare_data(self, idx):
        """Read and decode image ``idx`` and run the pipeline on it."""
        data_info = self.get_data_info(idx)
        key = data_info['record_key']
        record = self.reader.read(key)
        if self._has_header:
            check_image_label(self.reader, key, data_info['gt_label'], record)
        try:
            img = decode_image(record.image, 'the image', 'pack the file again',
                               max_pixels=self.max_image_pixels)
        except InputError as exc:
            raise self.reader.error(key, str(exc)) from exc
        data_info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return self.pipeline(data_info)

    @force_full_init
    def get_gt_labels(self):
        """The identity of every image (int64 array), without reading the file."""
        return self._labels.copy()

    @force_full_init
    def get_subset_(self, indices):
        """Keep only the images ``indices`` (see ``mmengine``'s ``BaseDataset.get_subset_``)."""
        self._select(indices)

    @force_full_init
    def get_subset(self, indices):
        """A copy holding only the images ``indices``; it shares this dataset's reader."""
        subset = copy.copy(self)
        subset._select(indices)
        return subset

    def _select(self, indices):
        if isinstance(indices, int):
            indices = slice(None, indices) if indices >= 0 else slice(indices, None)
        self._keys, self._labels = self._keys[indices], self._labels[indices]

    def extra_repr(self):
        return [f'Record file: \t{self.rec_path}', f'Index file: \t{self.idx_path}']
