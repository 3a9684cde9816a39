# RepMLPNet-T256: RepMLPNet-T at 256x256.
_base_ = './repmlpnet-b_8xb32_in1k-256px.py'

model = dict(backbone=dict(arch='t'), head=dict(in_channels=512))
