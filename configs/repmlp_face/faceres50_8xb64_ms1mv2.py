# FaceResNet (paper Sec. 4.3), the stronger baseline: ResNet-50 with blocks 3, 2, 2, 2, widths
# 128 to 1024 and 1x1 convs that keep the width.
_base_ = './repmlp-faceres50_8xb64_ms1mv2.py'

model = dict(backbone=dict(arch='face-res50'))
