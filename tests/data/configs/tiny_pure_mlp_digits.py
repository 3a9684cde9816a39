# The digits quick start's pure-MLP model cut to two RepMLPs (16 and 32 channels, one per
# stage), for the deployment tests: it trains to about 87% in 3 epochs in half a minute on
# two CPU cores and compiles in seconds, where the full model takes minutes.
_base_ = ['../../../configs/repmlp_cifar/pure-mlp_1xb32_digits.py']

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            channels=(16, 32),
            mixers_per_stage=1,
            mixer_cfg=dict(type='RepMLP', partition_size=8, groups=2, local_kernels=(1, 3, 5, 7))),
        out_indices=(1, )),
    head=dict(in_channels=32))
