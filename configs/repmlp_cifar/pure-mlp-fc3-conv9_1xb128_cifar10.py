# Table 1, D: FC3 replaced by a 9x9 conv (padding 4) + BN on the partition map. It still merges
# into an FC3 at deploy time, so deploy FLOPs equal the pure MLP's.
_base_ = ['./pure-mlp_1xb128_cifar10.py']

model = dict(backbone=dict(mixer_cfg=dict(fc3_kernel=9)))
