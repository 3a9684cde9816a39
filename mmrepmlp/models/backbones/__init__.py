from .mobilefacenet import MobileFaceNet
from .pure_mlp_cifar import ConvFC3RepMLPBlock, PureMLPCifar
from .repmlp_resnet import RepMLPResNet

__all__ = ['RepMLPResNet', 'PureMLPCifar', 'ConvFC3RepMLPBlock', 'MobileFaceNet']
