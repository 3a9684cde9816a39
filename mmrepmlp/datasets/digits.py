"""scikit-learn's bundled handwritten digits as an MMPretrain dataset: real data, no download."""
import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

SPLITS = ('train', 'val')


@DATASETS.register_module()
class Digits(BaseDataset):
    """The 1,797 8x8 handwritten digits of ``sklearn.datasets.load_digits``, upsampled.

    They ship inside scikit-learn, so the quick start needs no network. Images are single
    channel ``uint8`` (the 0-16 ink levels rescaled to 0-255), bilinearly upsampled to
    ``img_size``. The split is fixed: every ``val_interval``-th sample (index 0, 5, 10, ...)
    is held out for ``'val'`` (360 images at the default 5), the rest is ``'train'`` (1,437);
    the samples are ordered writer by writer, so both splits cover every class.

    Args:
        split (str): ``'train'`` or ``'val'``. Defaults to 'train'.
        img_size (int): output height and width. Defaults to 32.
        val_interval (int): one sample in this many goes to ``'val'``. Defaults to 5.
        **kwargs: other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ...).
    """

    METAINFO = {'classes': tuple(str(d) for d in range(10))}

    def __init__(self, split='train', img_size=32, val_interval=5, **kwargs):
        if split not in SPLITS:
            raise ValueError(f'Digits: split must be one of {SPLITS}, got {split!r}')
        if val_interval < 2:
            raise ValueError(f'Digits: val_interval must be at least 2, got {val_interval}')
        self.split = split
        self.img_size = img_size
        self.val_interval = val_interval
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = _upsample(digits.images, self.img_size)
        is_val = np.arange(len(images)) % self.val_interval == 0
        keep = is_val if self.split == 'val' else ~is_val
        return [
            dict(img=img, gt_label=int(label))
            for img, label in zip(images[keep], digits.target[keep])
        ]


def _upsample(images, size):
    """``(N, 8, 8)`` ink levels 0-16 -> ``(N, size, size)`` uint8, bilinear."""
    import torch
    import torch.nn.functional as F

    levels = torch.from_numpy(images.astype(np.float32) * (255 / 16)).unsqueeze(1)
    resized = F.interpolate(levels, size=(size, size), mode='bilinear', align_corners=False)
    return resized.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()
