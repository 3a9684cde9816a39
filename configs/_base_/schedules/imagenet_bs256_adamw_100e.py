# The official RepMLPNet schedule: 100 epochs at batch 256 (8 GPUs x 32), AdamW (lr 1e-3,
# betas 0.9/0.999, weight decay 0.1 except for norms and biases), gradient norm clipped at 5,
# 10 warm-up epochs from 5e-7, then cosine to 0; all per iteration.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=5e-4, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=10, end=100,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# The official code scales the learning rate linearly with the total batch size over 256.
auto_scale_lr = dict(base_batch_size=256)
