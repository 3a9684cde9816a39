"""Checking a conversion: training-time vs deploy outputs of the same model.

Freshly built BN layers (mean 0, variance 1, weight 1, bias 0) are near-identities and hide
fusion mistakes, so checks first give them the statistics of a trained model.
"""
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from .convert import repmlp_model_convert


def randomize_norm_layers(model, seed=0):
    """Give every BN of ``model`` random running statistics and affine parameters, in place.

    Means and biases are drawn from U(-1, 1), variances and weights from U(0.5, 2), in each
    layer's own dtype and device.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform_(tensor, low, high):
        values = torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
        tensor.copy_(values * (high - low) + low)

    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, _BatchNorm):
                continue
            if module.track_running_stats:
                uniform_(module.running_mean, -1, 1)
                uniform_(module.running_var, 0.5, 2)
            if module.affine:
                uniform_(module.weight, 0.5, 2)
                uniform_(module.bias, -1, 1)
    return model


@torch.no_grad()
def deploy_difference(model, inputs):
    """Max absolute and relative difference between ``model`` and its deploy form.

    Both run in eval mode on ``inputs``; ``model`` is left untouched (a copy is converted).
    The relative difference is the max absolute difference over the largest magnitude of
    the training-time output.

    Returns:
        tuple[float, float, nn.Module]: ``(max_abs, max_rel, deploy_model)``.
    """
    was_training = model.training
    model.eval()
    try:
        expected = model(inputs)
        deploy_model = repmlp_model_convert(model, do_copy=True)
        actual = deploy_model(inputs)
    finally:
        model.train(was_training)
    max_abs = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    return max_abs, max_abs / scale if scale else max_abs, deploy_model
