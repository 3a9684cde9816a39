from .mobilefacenet import MobileFaceNet
from .pure_mlp_cifar import ConvFC3RepMLPBlock, PureMLPCifar
from .repmlp_resnet import RepMLPResNet, ResNetStage
from .repmlpnet import HierRepMLPNet

__all__ = [
    'RepMLPResNet', 'ResNetStage', 'PureMLPCifar', 'ConvFC3RepMLPBlock', 'MobileFaceNet',
    'HierRepMLPNet'
]
