# MS1M-V2 as insightface distributes it (data/faces_emore: train.rec + train.idx, 85,742
# identities, 5.8M aligned 112x112 faces; lfw.bin, cfp_fp.bin, agedb_30.bin), resized to 96x96
# as in the paper (Sec. 4.3), 64 faces per GPU. Validation: LFW, CFP-FP and AgeDB-30 pairs.
data_root = 'data/faces_emore'
num_identities = 85742

# insightface's normalization, (x - 127.5) / 127.5 on RGB
data_preprocessor = dict(num_classes=num_identities, mean=[127.5] * 3, std=[127.5] * 3,
                         to_rgb=True)

train_pipeline = [
    dict(type='Resize', scale=(96, 96)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
val_pipeline = [
    dict(type='Resize', scale=(96, 96)),
    # what the verification metric pairs the embeddings with
    dict(type='PackInputs', meta_keys=('sample_idx', 'set_name', 'index_in_set', 'issame')),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    dataset=dict(type='MXFaceDataset', data_root=data_root, rec_file='train.rec',
                 idx_file='train.idx', pipeline=train_pipeline),
    sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(type='FaceVerificationDataset', data_root=data_root,
                 bin_files=dict(lfw='lfw.bin', cfp_fp='cfp_fp.bin', agedb_30='agedb_30.bin'),
                 pipeline=val_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='FaceVerificationMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
