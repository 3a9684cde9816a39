# RepMLP-Res50: ResNet-50 (plain bottlenecks) trained with the RepMLP recipe; 320x320 inputs.
# The 320x320 recipe of repmlp-res50-g8g8_8xb32_in1k-320px.py.
_base_ = './repmlp-res50-g8g8_8xb32_in1k-320px.py'

model = dict(backbone=dict(arch='res50-base'))
