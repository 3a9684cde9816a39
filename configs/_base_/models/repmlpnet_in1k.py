# RepMLPNet-B classifier for ImageNet-1k (224x224), trained with mixup 0.4 and cutmix 1.0 and
# label smoothing 0.1, as the official recipe.
custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='HierRepMLPNet', arch='b', img_size=224, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original',
                  loss_weight=1.0),
        topk=(1, 5)),
    # One of the two per batch, as the official training's mixup with switch probability 0.5.
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.4), dict(type='CutMix', alpha=1.0)]),
)
