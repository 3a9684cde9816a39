# MMSeg's Swin-UperNet recipe over MMSeg's 80k schedule, for MLP backbones: AdamW lr 6e-5,
# wd 0.01 (none for norms and biases), 1500 linear warm-up iterations, then a linear (poly,
# power 1) decay to 0.
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=80000),
]
# the recipe's batch: 8 GPUs x 2 images (tools/train.py --auto-scale-lr scales lr to another)
auto_scale_lr = dict(enable=False, base_batch_size=16)
