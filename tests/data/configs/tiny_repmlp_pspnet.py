# A tiny MMSegmentation PSPNet on a RepMLP-ResNet backbone (default_scope 'mmseg'), for the
# tool tests: 64x64 inputs, 4 classes, a few iterations on CPU. The tests write a config
# that inherits this one and sets data_root.
custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255, size=(64, 64)),
    backbone=dict(
        type='mmpretrain.RepMLPResNet',
        arch=dict(num_blocks=(1, 2, 2, 1), widths=(16, 32, 64, 128),
                  block_type=('base', 'bottleneck', 'light', 'base'), r=2, groups=2,
                  partition=4, local_kernels=(1, 3)),
        img_size=64, out_indices=(0, 1, 2, 3), norm_cfg=norm_cfg),
    decode_head=dict(type='PSPHead', in_channels=128, in_index=3, channels=16,
                     pool_scales=(1, 2), dropout_ratio=0.1, num_classes=4, norm_cfg=norm_cfg,
                     align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0)),
    auxiliary_head=dict(type='FCNHead', in_channels=64, in_index=2, channels=8, num_convs=1,
                        concat_input=False, dropout_ratio=0.1, num_classes=4,
                        norm_cfg=norm_cfg, align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

data_root = 'data/tiny_seg'  # img/*.png and ann/*.png (class indices); tests override it
dataset = dict(
    type='BaseSegDataset', data_root=data_root,
    data_prefix=dict(img_path='img', seg_map_path='ann'), img_suffix='.png',
    seg_map_suffix='.png',
    metainfo=dict(classes=('a', 'b', 'c', 'd'),
                  palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]),
    pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
              dict(type='PackSegInputs')])
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dataset,
                        sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(batch_size=1, num_workers=0, dataset=dataset,
                      sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
visualizer = dict(type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='nccl'),
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
log_processor = dict(by_epoch=False)
