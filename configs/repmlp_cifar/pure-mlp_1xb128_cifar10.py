# The pure-MLP model of RepMLP (arXiv 2105.01883) Sec. 4.1 / Fig. 3 on CIFAR-10, with the paper's
# recipe: batch 128, SGD with cosine lr 0.2 -> 0 over 100 epochs, pad to 40x40 (4 pixels on each
# side) + random 32x32 crop + horizontal flip. Momentum and weight decay are not given for CIFAR;
# the paper's ImageNet values (0.9, 1e-4) are used.
_base_ = [
    'mmpretrain::_base_/datasets/cifar10_bs16.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='PureMLPCifar',
        arch='pure_mlp',
        # Fig. 3: g = 2, h = w = 8; Local Perceptron kernels up to the partition size.
        mixer_cfg=dict(type='RepMLP', partition_size=8, groups=2, local_kernels=(1, 3, 5, 7)),
        img_size=32,
        out_indices=(2, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),  # 32 + 2 * 4 = 40
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128, dataset=dict(data_root='data/cifar10', pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, dataset=dict(data_root='data/cifar10'))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='CosineAnnealingLR', T_max=100, eta_min=0, by_epoch=True, convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
