# The paper's face schedule (Sec. 4.3): batch 512 (8 GPUs x 64), SGD momentum 0.9, 420k
# iterations, lr 0.1 divided by 10 at 252k, 364k and 406k. Weight decay follows MobileFaceNets
# (Chen et al., 2018): 4e-5, and 4e-4 for the layers after the last feature map (the
# embedding neck and the margin head).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=4e-5),
    paramwise_cfg=dict(custom_keys={'neck': dict(decay_mult=10.0),
                                    'head': dict(decay_mult=10.0)}))
param_scheduler = dict(type='MultiStepLR', by_epoch=False,
                       milestones=[252000, 364000, 406000], gamma=0.1)
train_cfg = dict(by_epoch=False, max_iters=420000, val_interval=20000)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)
