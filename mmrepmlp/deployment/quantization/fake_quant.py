"""Fake int8 quantization of weights, exactly as :func:`~mmrepmlp.deployment.quantize_int8`
quantizes them, for quantization-aware training.

The int8 scheme is that of torchao's ``X86InductorQuantizer`` default config, which
:func:`~mmrepmlp.deployment.quantize_int8` uses: weights symmetric per output channel (dim
0), int8 in ``[-128, 127]``, scale ``max|w| / 127.5`` (``(quant_max - quant_min) / 2``) but at
least ``2**-12``, zero point 0, ``round(w * (1 / scale))`` rounding half to even. The same
formulas here make the fake-quantized kernel of training equal, value for value, the
dequantized int8 kernel of the quantized deploy model.
"""
import torch

WEIGHT_QUANT_MIN, WEIGHT_QUANT_MAX = -128, 127
SCALE_EPS = 2**-12


def int8_weight_scale(weight):
    """The per-output-channel int8 scale ``(O,)`` of ``weight`` (not differentiated)."""
    max_abs = weight.detach().abs().flatten(1).amax(dim=1)
    return torch.clamp(max_abs / ((WEIGHT_QUANT_MAX - WEIGHT_QUANT_MIN) / 2), min=SCALE_EPS)


def fake_quantize_weight(weight):
    """``weight`` rounded to its int8 grid and back to float, output channels first.

    The gradient passes straight through within the int8 range (and is zero for the values
    clamped to it), as in PyTorch's fake quantization.
    """
    scale = int8_weight_scale(weight)
    zero_point = torch.zeros(scale.shape, dtype=torch.int32, device=scale.device)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0,
                                                  WEIGHT_QUANT_MIN, WEIGHT_QUANT_MAX)


def fake_quantized_deploy_fcs(block):
    """The deploy FC1, FC2 and FC3 of a RepMLP block
    (:meth:`~mmrepmlp.models.RepMLPBlock.get_deploy_fcs`: computed from its training form,
    differentiably, in the deploy layout) with their weights fake-quantized: what
    quantization-aware training runs (:meth:`~mmrepmlp.models.RepMLPBlock.forward_with_fcs`).

    Returns:
        tuple: ``(fc1, fc2, fc3)``, each ``(weight, bias)``; ``fc1`` and ``fc2`` are None
        without a Global Perceptron.
    """
    return tuple(None if fc is None else (fake_quantize_weight(fc[0]), fc[1])
                 for fc in block.get_deploy_fcs())
