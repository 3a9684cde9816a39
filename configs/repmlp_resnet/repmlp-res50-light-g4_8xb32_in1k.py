# RepMLP-Res50: RepMLP Light Blocks in c3 and c4, g=4 (the official checkpoint's setting); 224x224 inputs.
# The recipe of repmlp-res50-g8g8_8xb32_in1k.py.
_base_ = './repmlp-res50-g8g8_8xb32_in1k.py'

model = dict(backbone=dict(arch='res50-light-g4'))
