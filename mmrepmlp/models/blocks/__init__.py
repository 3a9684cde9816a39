from .repmlp_block import LocalPerceptron, RepMLP1d, RepMLPBlock
from .resnet_blocks import RepMLPBottleneck, RepMLPLightBlock, ResNetBottleneck

__all__ = [
    'RepMLPBlock', 'RepMLP1d', 'LocalPerceptron', 'ResNetBottleneck', 'RepMLPBottleneck',
    'RepMLPLightBlock'
]
