# RepMLPNet-L256: channels 96-768, blocks 2, 2, 18, 2, share-sets 1, 4, 32, 256, at 256x256.
_base_ = './repmlpnet-b_8xb32_in1k-256px.py'

model = dict(backbone=dict(arch='l'))
