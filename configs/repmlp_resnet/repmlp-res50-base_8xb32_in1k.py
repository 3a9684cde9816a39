# RepMLP-Res50: ResNet-50 (plain bottlenecks) trained with the RepMLP recipe; 224x224 inputs.
# The recipe of repmlp-res50-g8g8_8xb32_in1k.py.
_base_ = './repmlp-res50-g8g8_8xb32_in1k.py'

model = dict(backbone=dict(arch='res50-base'))
