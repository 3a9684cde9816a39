# The paper's baseline (Sec. 4.4): PSPNet on a plain ResNet-50 (7x7 stem, no deep stem) at
# output stride 8, dilation 2 in c4 and 4 in c5, from the ImageNet ResNet-50 trained at
# 320x320 with the same recipe; everything else as the RepMLP model.
_base_ = './pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713.py'

pretrained = 'checkpoints/repmlp-res50-base_8xb32_in1k-320px.pth'
model = dict(backbone=dict(arch='res50-base', dilations=(1, 1, 2, 4),
                           init_cfg=dict(checkpoint=pretrained)))
