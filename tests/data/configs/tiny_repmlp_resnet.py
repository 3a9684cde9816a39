# A tiny RepMLP-ResNet classifier for the tool tests: 64x64 images, 3 classes, a few
# iterations on CPU. The tests write a config that inherits this one and sets data_root.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='RepMLPResNet',
        # c3 (8x8) holds RepMLP Bottlenecks and c4 (4x4) Light Blocks, partitions of 4x4.
        arch=dict(num_blocks=(1, 2, 2, 1), widths=(16, 32, 64, 128),
                  block_type=('base', 'bottleneck', 'light', 'base'), r=2, groups=2,
                  partition=4, local_kernels=(1, 3)),
        img_size=64,
        norm_cfg=dict(type='SyncBN'),  # the tools turn it into BN without CUDA
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=3, in_channels=128,
              loss=dict(type='CrossEntropyLoss'), topk=(1, )),
)

data_preprocessor = dict(num_classes=3, mean=[127.5, 127.5, 127.5], std=[64.0, 64.0, 64.0],
                         to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
data_root = 'data/tiny_imagenet'
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, pipeline=train_pipeline),
    sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=False, T_max=4)
train_cfg = dict(by_epoch=False, max_iters=4, val_interval=4)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=4)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
randomness = dict(seed=0)
