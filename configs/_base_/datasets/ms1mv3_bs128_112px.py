# MS1MV3 as insightface distributes it (ms1m-retinaface-t1: train.rec + train.idx, 93,431
# identities, 5,179,510 aligned 112x112 faces; lfw.bin, cfp_fp.bin, agedb_30.bin), 128 faces
# per GPU. insightface trains it with the whole softmax: Partial FC sample rate 1.0.
data_root = 'data/ms1m-retinaface-t1'
num_identities = 93431
sample_ratio = 1.0

# insightface's normalization, (x - 127.5) / 127.5 on RGB
data_preprocessor = dict(num_classes=num_identities, mean=[127.5] * 3, std=[127.5] * 3,
                         to_rgb=True)

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(type='MXFaceDataset', data_root=data_root, rec_file='train.rec',
                 idx_file='train.idx', pipeline=[
                     dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                     dict(type='PackInputs'),
                 ]),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type='FaceVerificationDataset', data_root=data_root,
                 bin_files=dict(lfw='lfw.bin', cfp_fp='cfp_fp.bin', agedb_30='agedb_30.bin'),
                 pipeline=[dict(type='PackInputs',
                                meta_keys=('sample_idx', 'set_name', 'index_in_set', 'issame'))]),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='FaceVerificationMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
