"""A check of segmentation label maps as they are loaded, against the classes of the model."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS

from ..utils.errors import InputError

LISTED_VALUES = 5


# In MMEngine's root registry, which MMSegmentation's transforms registry falls back to: this
# module must not import mmseg, an optional dependency.
@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Refuse a label map (``gt_seg_map``, right after ``LoadAnnotations``) whose values are not
    classes of the model or the ignored index, or whose size is not its image's, naming the
    file: such a map passes the test with a wrong mIoU (its pixels count in the union), fails
    training deep inside the loss, or only at validation.

    The segmentation task puts it after ``LoadAnnotations`` in the pipelines that
    ``tools/train.py`` and ``tools/test.py`` run.

    Args:
        num_classes (int): the classes of the model's decode head; labels are
            ``0 .. num_classes-1``.
        ignore_index (int): the label of pixels that count nowhere. Defaults to 255.
    """

    def __init__(self, num_classes, ignore_index=255):
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def transform(self, results):
        labels = results['gt_seg_map']
        where = results.get('seg_map_path', 'a label map')
        image_shape = tuple(results.get('ori_shape', labels.shape))  # before any resize
        if labels.shape[:2] != image_shape[:2]:
            raise InputError(f'{where} is {labels.shape[1]}x{labels.shape[0]} pixels and its '
                             f'image {results.get("img_path", "")} {image_shape[1]}x'
                             f'{image_shape[0]}; give every image a label map of its size')
        valid = labels[labels != self.ignore_index]
        if valid.size and (valid.max() >= self.num_classes or valid.min() < 0):
            outside = np.unique(valid[(valid >= self.num_classes) | (valid < 0)])
            listed = ', '.join(map(str, outside[:LISTED_VALUES])) + (
                f' and {len(outside) - LISTED_VALUES} more' if len(outside) > LISTED_VALUES else '')
            raise InputError(f'{where} holds the labels {listed}, which are neither classes of '
                             f'the model (0 to {self.num_classes - 1}) nor the ignored '
                             f'{self.ignore_index}; map them to classes or to '
                             f'{self.ignore_index} (Cityscapes: the *_labelTrainIds.png maps, '
                             'not *_labelIds.png)')
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
