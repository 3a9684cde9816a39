# PSPNet with RepMLP-Res50-g4/8 on Cityscapes (paper Sec. 4.4): output stride 8 with dilation
# 4 in c5 only (c4 keeps dilation 1, its receptive field is large already), RepMLPs on the
# 90x90 c3/c4 maps of 713 crops (h = w = 10, 81 partitions, FC1/FC2 narrowed 4x in c3 and 8x
# in c4), initialized from the ImageNet model trained at 320x320 except FC1/FC2; MMSeg's
# PSPNet heads; poly lr 0.01 (power 0.9), wd 1e-4, batch 16 as 8 GPUs x 2, 200 epochs.
# Sliding-window test on 713 crops (see configs/repmlp_pspnet/README.md for the whole-image
# sibling).
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/cityscapes_713x713.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]

custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)

crop_size = (713, 713)
# An MMPretrain checkpoint of configs/repmlp_resnet/repmlp-res50-g4g8_8xb32_in1k-320px.py, made
# by training that config: no official g4/8-320 model was released. Alternatives (docs/
# segmentation.md): a released model imported with tools/model_converters/official_to_mmrepmlp.py
# with init_cfg strict=False (what fits loads, the log names the rest), or init_cfg=None.
pretrained = 'checkpoints/repmlp-res50-g4g8_8xb32_in1k-320px.pth'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.RepMLPResNet',
        arch='res50-g4g8-seg',
        img_size=crop_size,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 1, 4),
        contract_dilation=True,
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=pretrained)),
    # odd crops: corners aligned, as MMSeg's 769x769 PSPNet configs
    decode_head=dict(align_corners=True),
    auxiliary_head=dict(align_corners=True),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(476, 476)))

# 200 epochs of Cityscapes' 2,975 training images at batch 16: 37,188 iterations
max_iters = 37188
optim_wrapper = dict(optimizer=dict(lr=0.01, momentum=0.9, weight_decay=1e-4))
# the batch the learning rate is tuned for; tools/train.py --auto-scale-lr scales it linearly
auto_scale_lr = dict(enable=False, base_batch_size=16)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
