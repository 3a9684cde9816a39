# The digits quick start with a small RepMLPNet (HierRepMLPNet, one unit per stage, 2x2 patches:
# maps of 16, 8, 4 and 2 pixels, up to 32 share-sets), for the deployment tests of RepMLPNet:
# int8 is judged by the accuracy of a trained model. Two epochs (about 98%) take about 40 s on
# two CPU cores.
_base_ = ['../../../configs/repmlp_cifar/pure-mlp_1xb32_digits.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='HierRepMLPNet',
        arch=dict(channels=(16, 32, 64, 128), num_blocks=(1, 1, 1, 1),
                  num_sharesets=(1, 4, 16, 32), patch_size=2),
        img_size=32,
        in_channels=1,
        out_indices=(3, )),
    head=dict(in_channels=128))
param_scheduler = dict(T_max=2)
train_cfg = dict(max_epochs=2)
