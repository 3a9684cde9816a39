from .conv_bn import ConvBN
from .groupwise_fc import GroupwiseFC

__all__ = ['ConvBN', 'GroupwiseFC']
