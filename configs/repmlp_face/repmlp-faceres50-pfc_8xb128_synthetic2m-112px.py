# Training throughput and memory of the WebFace42M configuration on random faces of 2,059,906
# identities (no data needed): one epoch of 200 iterations, no validation.
_base_ = [
    '../_base_/models/repmlp-faceres50-pfc_112px.py',
    '../_base_/datasets/synthetic_faces_bs128_112px.py',
    '../_base_/schedules/face_sgd_poly_20e.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(head=dict(num_classes={{_base_.num_identities}},
                       sample_ratio={{_base_.sample_ratio}}))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
train_cfg = dict(max_epochs=1, val_interval=2)
val_cfg = None
test_cfg = None
default_hooks = dict(logger=dict(interval=10))
