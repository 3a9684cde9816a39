# The Wide ConvNet of RepMLP Table 1: the pure-MLP layout with every RepMLP replaced by a 3x3 conv
# + BN, and channels 32, 64, 128. Same recipe as the pure MLP.
_base_ = ['./pure-mlp_1xb128_cifar10.py']

model = dict(
    backbone=dict(arch='wide_convnet', mixer_cfg=dict(_delete_=True, type='Conv', kernel_size=3)),
    head=dict(in_channels=128))
