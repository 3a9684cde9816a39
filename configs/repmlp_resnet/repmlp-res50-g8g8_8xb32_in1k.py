# RepMLP-Res50: RepMLP Bottlenecks in c3 and c4, g=8/8, h=w=7, K=1,3,5; 224x224 inputs.
# ImageNet-1k, 100 epochs, 8 GPUs x 32 images, SGD (momentum 0.9, wd 1e-4), cosine lr 0.1 -> 0,
# mixup, AutoAugment (paper Sec. 4.2).
_base_ = [
    '../_base_/models/repmlp-res50_in1k.py',
    '../_base_/datasets/imagenet_bs32_autoaug.py',
    'mmpretrain::_base_/schedules/imagenet_bs256_coslr.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(backbone=dict(arch='res50-g8g8'))
