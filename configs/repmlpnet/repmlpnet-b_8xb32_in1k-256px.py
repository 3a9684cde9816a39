# RepMLPNet-B256: RepMLPNet-B built for and trained on 256x256 inputs (partitions 64, 32, 16,
# 8), the official recipe.
_base_ = [
    '../_base_/models/repmlpnet_in1k.py',
    '../_base_/datasets/imagenet_bs32_raug15-256px.py',
    '../_base_/schedules/imagenet_bs256_adamw_100e.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(backbone=dict(img_size=256))
