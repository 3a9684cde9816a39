# RepMLP-FaceRes at 112x112 (RepMLP partitions h = w = 7, see the model's base config) on
# MS1M-V2 with the paper's recipe: AM-Softmax (m = 0.35, s = 30), batch 512 as 8 GPUs x 64.
_base_ = [
    '../_base_/models/repmlp-faceres50_112px.py',
    '../_base_/datasets/ms1mv2_bs64_112px.py',
    '../_base_/schedules/ms1mv2_420k.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(head=dict(num_classes={{_base_.num_identities}}))

# iteration-based logging and checkpoints; keep the best LFW model
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=20000, max_keep_ckpts=3,
                    save_best='lfw/accuracy', rule='greater'))
log_processor = dict(by_epoch=False)
