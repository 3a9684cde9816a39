# FaceResNet at 112x112: the RepMLP-FaceRes config without RepMLP (last map 4x4).
_base_ = './repmlp-faceres50_8xb64_ms1mv2-112px.py'

model = dict(backbone=dict(arch='face-res50'))
