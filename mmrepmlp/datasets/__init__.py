"""Datasets (registered in MMPretrain's ``DATASETS``): the quick start's digits and the
face-recognition training and evaluation sets; the check of segmentation label maps."""
from .digits import Digits
from .face import *  # noqa: F401,F403
from .segmentation_labels import CheckSegLabels

__all__ = ['Digits', 'CheckSegLabels']
