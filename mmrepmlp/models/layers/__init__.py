from .conv_bn import ConvBN
from .groupwise_fc import GroupwiseFC, grouped_linear

__all__ = ['ConvBN', 'GroupwiseFC', 'grouped_linear']
