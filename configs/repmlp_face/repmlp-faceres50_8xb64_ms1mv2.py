# RepMLP-FaceRes (paper Sec. 4.3): FaceResNet whose stride-1 bottlenecks of c2, c3 and c4 are
# RepMLP Bottlenecks (h = w = 6, r = 2, g = 4), a 512-d embedding, AM-Softmax (m = 0.35,
# s = 30) over MS1M-V2's 85,742 identities; 96x96 faces, batch 512 as 8 GPUs x 64.
_base_ = [
    '../_base_/datasets/ms1mv2_bs64_96px.py',
    '../_base_/schedules/ms1mv2_420k.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)

model = dict(
    type='FaceRecognizer',
    backbone=dict(type='RepMLPResNet', arch='face-repmlp-res50', img_size=96,
                  out_indices=(3, )),
    # the last map: 1024 x 3 x 3 at 96x96
    neck=dict(type='FaceEmbeddingNeck', in_channels=1024, in_size=3, embedding_dim=512),
    head=dict(type='MarginSoftmaxHead', num_classes={{_base_.num_identities}},
              in_channels=512, scale=30.0, margins=(1.0, 0.0, 0.35)),
    flip_test=True)

# iteration-based logging and checkpoints; keep the best LFW model
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=20000, max_keep_ckpts=3,
                    save_best='lfw/accuracy', rule='greater'))
log_processor = dict(by_epoch=False)
