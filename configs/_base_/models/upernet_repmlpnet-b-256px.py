# UperNet (MMSeg's heads) on the training-time RepMLPNet-B256, initialized from the ImageNet
# model: every tensor fits, as segmentation crops have maps that run as partitions of the
# ImageNet model's (larger_input='windows').
_base_ = 'mmseg::_base_/models/upernet_r50.py'

custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)

# An MMPretrain checkpoint of configs/repmlpnet/repmlpnet-b_8xb32_in1k-256px.py (trained with
# tools/train.py, or imported with tools/model_converters/official_to_mmrepmlp.py).
pretrained = 'checkpoints/repmlpnet-b_8xb32_in1k-256px.pth'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.HierRepMLPNet',
        arch='b',
        img_size=256,
        larger_input='windows',
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
