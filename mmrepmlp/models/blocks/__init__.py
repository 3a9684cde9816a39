from .repmlp_block import RepMLP1d, RepMLPBlock
from .resnet_blocks import RepMLPBottleneck, RepMLPLightBlock, ResNetBottleneck

__all__ = ['RepMLPBlock', 'RepMLP1d', 'ResNetBottleneck', 'RepMLPBottleneck', 'RepMLPLightBlock']
