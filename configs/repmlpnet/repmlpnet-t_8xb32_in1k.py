# RepMLPNet-T224: channels 64-512, blocks 2, 2, 6, 2, share-sets 1, 4, 16, 128.
_base_ = './repmlpnet-b_8xb32_in1k.py'

model = dict(backbone=dict(arch='t'), head=dict(in_channels=512))
