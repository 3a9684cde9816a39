# RepMLP-Res50: RepMLP Bottlenecks in c3 and c4, g=4/8, h=w=10, K=1,3,5,7; 320x320 inputs.
# The 320x320 recipe of repmlp-res50-g8g8_8xb32_in1k-320px.py.
_base_ = './repmlp-res50-g8g8_8xb32_in1k-320px.py'

model = dict(backbone=dict(arch='res50-g4g8-320'))
