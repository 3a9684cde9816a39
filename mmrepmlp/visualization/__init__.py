"""Plots of RepMLP's weights (the paper's Fig. 5) and of IJB face verification."""
from .face_roc import plot_ijb_roc
from .fc3 import (
    centre_point,
    fc3_point_weights,
    find_repmlp_block,
    plot_fc3_point_weights,
)

__all__ = [
    'centre_point', 'find_repmlp_block', 'fc3_point_weights',
    'plot_fc3_point_weights', 'plot_ijb_roc'
]
