# RepMLP-Res50-g8/8 at 224x224 (the paper's 78.55% model); see configs/repmlp_resnet/ for all
# RepMLP-ResNet variants and their deploy forms.
_base_ = ['./repmlp_resnet/repmlp-res50-g8g8_8xb32_in1k.py']
