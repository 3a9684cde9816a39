# UperNet on RepMLPNet-B256 for Cityscapes, the official FAQ's downstream use: the
# training-time backbone from the ImageNet model, fine-tuned inside UperNet; 512x1024 crops
# (maps of 2x4 partitions), batch 16 as 8 GPUs x 2, 80k iterations, whole 1024x2048 images at
# test time. Convert with tools/deploy_convert.py: the backbone's blocks, the heads kept.
_base_ = [
    '../_base_/models/upernet_repmlpnet-b-256px.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/upernet_adamw_80k.py',
]

crop_size = (512, 1024)
model = dict(data_preprocessor=dict(size=crop_size))
