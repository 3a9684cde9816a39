# WebFace42M packed by insightface's scripts (train.rec + train.idx, 2,059,906 identities,
# 42,474,557 aligned 112x112 faces; the verification .bin files put next to them), 128 faces
# per GPU. insightface samples its class centres: Partial FC sample rate 0.2.
_base_ = './ms1mv3_bs128_112px.py'

data_root = 'data/webface42m'
num_identities = 2059906
sample_ratio = 0.2

data_preprocessor = dict(num_classes=num_identities)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
