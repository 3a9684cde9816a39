from .repmlp_block import RepMLP1d, RepMLPBlock
from .repmlpnet_block import RepMLPNetBlock, RepMLPNetUnit
from .resnet_blocks import RepMLPBottleneck, RepMLPLightBlock, ResNetBottleneck

__all__ = [
    'RepMLPBlock', 'RepMLP1d', 'ResNetBottleneck', 'RepMLPBottleneck', 'RepMLPLightBlock',
    'RepMLPNetBlock', 'RepMLPNetUnit'
]
