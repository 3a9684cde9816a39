# Random 112x112 faces of WebFace42M's 2,059,906 identities (SyntheticFaceDataset, no files):
# training throughput and memory without data. 204,800 images: one epoch is 200 iterations of
# 8 GPUs x 128. No validation.
_base_ = './webface42m_bs128_112px.py'

train_dataloader = dict(dataset=dict(
    _delete_=True, type='SyntheticFaceDataset', num_identities={{_base_.num_identities}},
    num_images=204800, img_size=112, pipeline=[dict(type='PackInputs')]))
val_dataloader = None
val_evaluator = None
test_dataloader = None
test_evaluator = None
