from .repmlp_block import LocalPerceptron, RepMLP1d, RepMLPBlock
from .repmlpnet_block import RepMLPNetBlock, RepMLPNetUnit
from .resnet_blocks import RepMLPBottleneck, RepMLPLightBlock, ResNetBottleneck

__all__ = [
    'RepMLPBlock', 'RepMLP1d', 'LocalPerceptron', 'ResNetBottleneck', 'RepMLPBottleneck',
    'RepMLPLightBlock', 'RepMLPNetBlock', 'RepMLPNetUnit'
]
