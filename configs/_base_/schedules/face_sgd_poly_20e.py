# insightface's schedule for its large sets: SGD momentum 0.9, weight decay 5e-4, 20 epochs, lr
# 0.2 for a batch of 1024 (8 GPUs x 128; insightface uses 0.1 per 512), raised linearly over
# the first 2 epochs, then decayed linearly to 0, per iteration.
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=True, begin=2, end=20,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
