# The baseline tested on whole 1024x2048 images (a plain ResNet takes any size).
_base_ = './pspnet_res50-d8_8xb2-200e_cityscapes-713x713.py'

model = dict(test_cfg=dict(_delete_=True, mode='whole'))
