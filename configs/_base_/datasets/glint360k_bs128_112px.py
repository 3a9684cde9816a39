# Glint360K as insightface distributes it (train.rec + train.idx, 360,232 identities,
# 17,091,657 aligned 112x112 faces, with lfw.bin, cfp_fp.bin, agedb_30.bin), 128 faces per
# GPU. insightface trains it with the whole softmax: Partial FC sample rate 1.0.
_base_ = './ms1mv3_bs128_112px.py'

data_root = 'data/glint360k'
num_identities = 360232
sample_ratio = 1.0

data_preprocessor = dict(num_classes=num_identities)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
