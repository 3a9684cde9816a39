# Table 1, E: every RepMLP replaced by a 9x9 conv (padding 4) + BN over the whole feature map.
_base_ = ['./pure-mlp_1xb128_cifar10.py']

model = dict(backbone=dict(mixer_cfg=dict(_delete_=True, type='Conv', kernel_size=9)))
