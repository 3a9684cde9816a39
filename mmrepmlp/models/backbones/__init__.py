from .mobilefacenet import MobileFaceNet
from .pure_mlp_cifar import ConvFC3RepMLPBlock, PureMLPCifar
from .repmlp_resnet import RepMLPResNet, ResNetStage

__all__ = ['RepMLPResNet', 'ResNetStage', 'PureMLPCifar', 'ConvFC3RepMLPBlock', 'MobileFaceNet']
