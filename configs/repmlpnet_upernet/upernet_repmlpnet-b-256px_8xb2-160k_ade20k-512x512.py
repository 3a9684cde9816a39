# UperNet on RepMLPNet-B256 for ADE20K (150 classes): the Cityscapes config's model and recipe
# with 512x512 crops, batch 16 as 8 GPUs x 2, 160k iterations. Test images (short edge 512)
# are not multiples of the partitions: the RepMLP blocks zero-pad the last partitions.
_base_ = [
    '../_base_/models/upernet_repmlpnet-b-256px.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/upernet_adamw_160k.py',
]

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
train_dataloader = dict(batch_size=2)
