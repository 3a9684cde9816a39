# Table 1, B: the pure MLP without Local Perceptron.
_base_ = ['./pure-mlp_1xb128_cifar10.py']

model = dict(backbone=dict(mixer_cfg=dict(local_kernels=())))
