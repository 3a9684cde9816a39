"""int8 quantization of RepMLP models.

- :func:`quantize_int8`: static post-training quantization of a deploy model (PT2E through
  the x86 inductor backend), calibrated on a dataloader or a list of input tensors;
- quantization-aware training of the equivalent kernels: ``quant_aware=True`` on
  :class:`~mmrepmlp.models.RepMLPBlock` (in a config: ``repmlp_cfg=dict(quant_aware=True)``
  of ``RepMLPResNet``, ``mixer_cfg=dict(..., quant_aware=True)`` of ``PureMLPCifar``) trains
  the deploy FC1/FC2/FC3 fake-quantized (:func:`fake_quantized_deploy_fcs`) as
  :func:`quantize_int8` quantizes them;
- :func:`insert_fc3_bn` / :func:`fuse_fc3_bn`: the BN-after-FC3 recovery recipe.
"""
from .bn_recovery import FC3WithBN, fuse_fc3_bn, insert_fc3_bn
from .fake_quant import fake_quantize_weight, fake_quantized_deploy_fcs, int8_weight_scale
from .ptq import Int8Network, SplitGroupwiseFC, calibration_inputs, int8_weights, quantize_int8

__all__ = [
    'quantize_int8', 'int8_weights', 'calibration_inputs', 'Int8Network', 'SplitGroupwiseFC',
    'fake_quantize_weight', 'fake_quantized_deploy_fcs', 'int8_weight_scale', 'insert_fc3_bn',
    'fuse_fc3_bn', 'FC3WithBN'
]
