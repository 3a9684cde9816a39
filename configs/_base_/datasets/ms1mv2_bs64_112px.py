# MS1M-V2 (data/faces_emore, see ms1mv2_bs64_96px.py) at its own 112x112, 64 faces per GPU.
_base_ = './ms1mv2_bs64_96px.py'

train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='PackInputs', meta_keys=('sample_idx', 'set_name', 'index_in_set', 'issame')),
]))
test_dataloader = val_dataloader
