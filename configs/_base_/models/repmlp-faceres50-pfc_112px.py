# RepMLP-FaceRes at 112x112 with its class centres split across the GPUs (PartialFCHead), for
# training sets of hundreds of thousands to millions of identities. The hook makes checkpoints
# hold the whole centre matrix, so that they resume at any number of GPUs.
_base_ = './repmlp-faceres50_112px.py'

model = dict(head=dict(type='PartialFCHead'))
custom_hooks = [dict(type='PartialFCCheckpointHook')]
