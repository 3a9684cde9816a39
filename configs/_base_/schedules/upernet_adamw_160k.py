# upernet_adamw_80k.py over 160k iterations (validation and checkpoints every 16k, as MMSeg's
# schedule_160k).
_base_ = './upernet_adamw_80k.py'

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=160000),
]
train_cfg = dict(max_iters=160000, val_interval=16000)
default_hooks = dict(checkpoint=dict(interval=16000))
