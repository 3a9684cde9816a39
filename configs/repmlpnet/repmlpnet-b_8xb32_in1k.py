# RepMLPNet-B224: channels 96-768, blocks 2, 2, 12, 2, share-sets 1, 4, 32, 128; ImageNet-1k
# with the official recipe (100 epochs, AdamW, RandAugment, mixup, cutmix; 8 GPUs x 32).
_base_ = [
    '../_base_/models/repmlpnet_in1k.py',
    '../_base_/datasets/imagenet_bs32_raug15.py',
    '../_base_/schedules/imagenet_bs256_adamw_100e.py',
    'mmpretrain::_base_/default_runtime.py',
]
