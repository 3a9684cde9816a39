# The same model tested on whole 1024x2048 images: the RepMLPs, built for the 90x90 maps of
# 713 crops, run the larger maps as windows of that size (larger_input='windows').
_base_ = './pspnet_repmlp-res50-g4g8-d8_8xb2-200e_cityscapes-713x713.py'

model = dict(
    backbone=dict(repmlp_cfg=dict(larger_input='windows')),
    test_cfg=dict(_delete_=True, mode='whole'))
