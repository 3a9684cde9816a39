# RepMLP-Res50: RepMLP Bottlenecks in c3 and c4, g=8/8, h=w=10, K=1,3,5,7; 320x320 inputs.
# The recipe of repmlp-res50-g8g8_8xb32_in1k.py with 320 crops for training, short edge 366
# (= 320 / 0.875, the 224 recipe's ratio) + 320 centre crop for evaluation.
_base_ = './repmlp-res50-g8g8_8xb32_in1k.py'

model = dict(backbone=dict(arch='res50-g8g8-320', img_size=320))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=320),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='AutoAugment',
        policies='imagenet',
        hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=366, edge='short'),
    dict(type='CenterCrop', crop_size=320),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
