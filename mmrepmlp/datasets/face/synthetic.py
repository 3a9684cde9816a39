"""Random faces with random identities: a training set that needs no files, for measuring
training throughput and memory at any number of identities."""
import numbers

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class SyntheticFaceDataset(BaseDataset):
    """``num_images`` random BGR ``uint8`` images of ``img_size`` with identity labels in
    ``0 .. num_identities-1``, drawn on demand: image ``i`` is the same on every call and in
    every dataloader worker (seeded by ``seed`` and ``i``), its label ``i % num_identities``.

    Nothing is stored per image, so the set can be as large as the real ones (WebFace42M's
    42.5M images of 2,059,906 identities). Like :class:`MXFaceDataset`, :meth:`prepare_data`
    puts the image under ``img`` (with ``img_shape`` and ``ori_shape``), so the training
    pipelines of the face configs apply unchanged; ``metainfo`` holds ``num_identities`` and
    ``classes``.

    Args:
        num_identities (int): number of identity classes.
        num_images (int): number of images. Defaults to ``num_identities``.
        img_size (int | tuple[int, int]): ``(H, W)`` of the images. Defaults to 112.
        seed (int): seed of the random images. Defaults to 0.
        **kwargs: other arguments of :class:`mmpretrain.datasets.BaseDataset` (``pipeline``,
            ``test_mode``, ``lazy_init``...).
    """

    def __init__(self, num_identities, num_images=None, img_size=112, seed=0, **kwargs):
        self.num_identities = _check_int(num_identities, 'num_identities')
        self.num_images = _check_int(num_identities if num_images is None else num_images,
                                     'num_images')
        size = (img_size, img_size) if isinstance(img_size, numbers.Integral) else img_size
        self.img_size = tuple(_check_int(s, 'img_size') for s in size)
        self.seed = _check_int(seed, 'seed', minimum=0)
        super().__init__(ann_file='', **kwargs)

    def full_init(self):
        """Set the identities in ``metainfo``; no data is read."""
        if self._fully_initialized:
            return
        self._metainfo['num_identities'] = self.num_identities
        self._metainfo.setdefault('classes', tuple(map(str, range(self.num_identities))))
        self._fully_initialized = True

    def __len__(self):
        return self.num_images

    def get_data_info(self, idx):
        """``gt_label`` and ``sample_idx`` of image ``idx``."""
        sample_idx = idx if idx >= 0 else len(self) + idx
        return dict(gt_label=sample_idx % self.num_identities, sample_idx=sample_idx)

    def prepare_data(self, idx):
        """Draw image ``idx`` and run the pipeline on it."""
        data_info = self.get_data_info(idx)
        rng = np.random.default_rng((self.seed, data_info['sample_idx']))
        img = rng.integers(0, 256, (*self.img_size, 3), dtype=np.uint8)
        data_info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return self.pipeline(data_info)

    def get_gt_labels(self):
        """The identity of every image (int64 array)."""
        return np.arange(self.num_images, dtype=np.int64) % self.num_identities


def _check_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f'SyntheticFaceDataset: {name} must be an int >= {minimum}, got '
                         f'{value!r}')
    return int(value)
