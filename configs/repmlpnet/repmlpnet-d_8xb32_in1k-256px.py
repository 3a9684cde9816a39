# RepMLPNet-D256: channels 80-640, blocks 2, 2, 18, 2, share-sets 1, 4, 16, 128, at 256x256.
_base_ = './repmlpnet-b_8xb32_in1k-256px.py'

model = dict(backbone=dict(arch='d'), head=dict(in_channels=640))
