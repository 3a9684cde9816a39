"""Datasets (registered in MMPretrain's ``DATASETS``): the quick start's digits and the
face-recognition training and evaluation sets."""
from .digits import Digits
from .face import *  # noqa: F401,F403

__all__ = ['Digits']
