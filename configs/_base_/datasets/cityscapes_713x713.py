# Cityscapes in MMSegmentation's layout (data/cityscapes: leftImg8bit/ and
# gtFine/*_labelTrainIds.png, made by MMSeg's tools/dataset_converters/cityscapes.py) with the
# paper's 713x713 crops (Sec. 4.4), 2 images per GPU; MMSeg's augmentation otherwise.
_base_ = 'mmseg::_base_/datasets/cityscapes.py'

crop_size = (713, 713)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
