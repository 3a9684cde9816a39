"""int8 quantization of RepMLP models.

- :func:`quantize_int8`: static post-training quantization of a deploy model (PT2E through
  the x86 inductor backend), calibrated on a dataloader or a list of input tensors;
- quantization-aware training of the equivalent kernels: :func:`prepare_quant_aware` on a
  model (in a config: ``custom_hooks = [dict(type='QuantAwareTrainingHook')]``) makes its
  RepMLP blocks train the deploy FC1/FC2/FC3 fake-quantized
  (:func:`fake_quantized_deploy_fcs`) as :func:`quantize_int8` quantizes them;
- :func:`insert_fc3_bn` / :func:`fuse_fc3_bn`: the BN-after-FC3 recovery recipe.
"""
from .bn_recovery import FC3WithBN, fuse_fc3_bn, insert_fc3_bn
from .fake_quant import fake_quantize_weight, fake_quantized_deploy_fcs, int8_weight_scale
from .ptq import (
    GroupedConvFC,
    Int8Network,
    SplitGroupwiseFC,
    calibration_inputs,
    int8_weights,
    quantize_int8,
)
from .qat import QuantAware, QuantAwareTrainingHook, is_quant_aware, prepare_quant_aware

__all__ = [
    'quantize_int8', 'int8_weights', 'calibration_inputs', 'Int8Network', 'SplitGroupwiseFC',
    'GroupedConvFC',
    'fake_quantize_weight', 'fake_quantized_deploy_fcs', 'int8_weight_scale', 'insert_fc3_bn',
    'fuse_fc3_bn', 'FC3WithBN', 'prepare_quant_aware', 'is_quant_aware', 'QuantAware',
    'QuantAwareTrainingHook'
]
