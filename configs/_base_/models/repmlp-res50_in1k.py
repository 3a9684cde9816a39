# RepMLP-ResNet-50 classifier for ImageNet-1k, trained with mixup (paper Sec. 4.2).
custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepMLPResNet', arch='res50-g8g8', img_size=224, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        # Mixup gives soft targets.
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0, use_soft=True),
        topk=(1, 5)),
    # The paper does not give mixup's alpha; 0.2 is MMPretrain's ResNet-50 mixup setting.
    train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)),
)
