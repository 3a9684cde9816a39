# Table 1, C: the pure MLP without Global Perceptron (no FC1/FC2; partitions go straight to the
# Partition and Local Perceptrons).
_base_ = ['./pure-mlp_1xb128_cifar10.py']

model = dict(backbone=dict(mixer_cfg=dict(with_global=False)))
