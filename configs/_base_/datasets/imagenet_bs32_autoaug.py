# ImageNet-1k, 32 images per GPU: random resized crop + flip + AutoAugment for training,
# resize (short edge 256) + 224 centre crop for evaluation. Standard MMPretrain layout under
# data/imagenet (train/ and val/ class folders, or meta/train.txt and meta/val.txt).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64_autoaug.py'

train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=32)
test_dataloader = val_dataloader
