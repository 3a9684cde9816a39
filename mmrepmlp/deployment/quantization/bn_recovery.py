"""The BN-after-FC3 recovery recipe for quantized RepMLP models (the official RepMLP FAQ).

When a deploy model loses accuracy to quantization, a BN inserted after each FC3 and briefly
fine-tuned recovers it; the BN then fuses back into FC3, and the model is quantized again:

    names = insert_fc3_bn(deploy_model, calibration)   # the model's function is unchanged
    ...fine-tune deploy_model for a few hundred iterations (any training loop)...
    fuse_fc3_bn(deploy_model)                          # back to the plain deploy form
    int8_model = quantize_int8(deploy_model.eval(), calibration)

Each BN starts as the identity of FC3's outputs on the calibration data (as the official
recipe initializes it): its statistics are those of the outputs, its affine parameters undo
them, so the model computes what it did in eval mode, and in train mode (batch statistics)
nearly so. With ``quant_aware`` (the default) FC3's weight is fake-quantized while
fine-tuning, exactly as :func:`~mmrepmlp.deployment.quantize_int8` will quantize it: a
per-channel scale (the fused BN) does not change the int8 grid of a row, so what the
fine-tuning sees is what the quantized model computes.
"""
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from ...models.blocks import RepMLPBlock
from ...models.layers import GroupwiseFC
from ...reparam import fuse_conv_bn
from ..outputs import forward_raw
from .fake_quant import fake_quantize_weight
from .ptq import calibration_inputs


class _FakeQuantized(nn.Module):
    """A parametrization: the weight as :func:`fake_quantize_weight` rounds it."""

    def forward(self, weight):
        return fake_quantize_weight(weight)


class FC3WithBN(nn.Module):
    """A deploy FC3 (a ``GroupwiseFC``) followed by a BN over its output features, called by
    its block as the FC3 itself.

    Args:
        fc3 (GroupwiseFC): the deploy FC3 (with bias).
    """

    def __init__(self, fc3):
        super().__init__()
        self.fc = fc3
        self.bn = nn.BatchNorm1d(fc3.out_features, device=fc3.weight.device,
                                 dtype=fc3.weight.dtype)

    def forward(self, x):
        """``(N, in_features)`` -> ``(N, out_features)``."""
        return self.bn(self.fc(x))

    def features_first(self, x):
        """``(N, in_features)`` -> ``(out_features, N)``."""
        return self(x).t()

    def grouped(self, x):
        """``(groups, N, in_features // groups)`` -> ``(groups, N, out_features // groups)``,
        as :meth:`GroupwiseFC.grouped`, through :meth:`forward` (the BN normalizes the
        features of all groups)."""
        groups, batch = x.shape[:2]
        out = self(x.transpose(0, 1).reshape(batch, -1))
        return out.reshape(batch, groups, -1).transpose(0, 1)


def insert_fc3_bn(model, calibration, max_batches=None, quant_aware=True):
    """Insert a BN after the FC3 of every deploy-form RepMLP block of ``model``, in place.

    Args:
        model (nn.Module): a model in deploy form (e.g. from
            :func:`~mmrepmlp.reparam.reparameterize_model`), in eval mode; any module taking
            one image batch, or an MMEngine ``BaseModel``.
        calibration (Iterable): batches to initialize the BNs from, as for
            :func:`~mmrepmlp.deployment.quantize_int8`.
        max_batches (int, optional): use at most this many batches. Defaults to all.
        quant_aware (bool): fake-quantize FC3's weight while fine-tuning. Defaults to True.

    Returns:
        list[str]: the names of the blocks that got a BN.

    Raises:
        ValueError: ``model`` has no deploy-form RepMLP block, or is in train mode.
    """
    if model.training:
        raise ValueError('insert_fc3_bn: call model.eval() first (the BNs are initialized '
                         'from the outputs of the eval-mode model)')
    blocks = _deploy_blocks(model)
    if not blocks:
        raise ValueError(f'insert_fc3_bn: {type(model).__name__} has no RepMLP block in deploy '
                         'form; convert the model first (reparameterize_model)')
    statistics = {name: _OutputStatistics() for name in blocks}
    hooks = []
    for name, block in blocks.items():
        block.fc3 = FC3WithBN(block.fc3).eval()
        # FC3WithBN calls its FC as a module (the block calls FC3's grouped, which would
        # bypass hooks); meanwhile a fresh BN in eval mode is nearly the identity.
        hooks.append(block.fc3.fc.register_forward_hook(statistics[name]))
    try:
        with torch.no_grad():
            for inputs in calibration_inputs(model, calibration, max_batches):
                forward_raw(model, inputs.to(next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    for name, block in blocks.items():
        statistics[name].initialize_identity(block.fc3.bn)
        if quant_aware:
            parametrize.register_parametrization(block.fc3.fc, 'weight', _FakeQuantized())
    return list(blocks)


def fuse_fc3_bn(model):
    """Fuse every BN that :func:`insert_fc3_bn` inserted back into its FC3, in place.

    The float (not fake-quantized) FC3 weight is fused, with the BN's running statistics;
    the block is then in the plain deploy form again.

    Returns:
        list[str]: the names of the blocks whose BN was fused.
    """
    fused = []
    for name, block in _deploy_blocks(model).items():
        if not isinstance(block.fc3, FC3WithBN):
            continue
        fc, bn = block.fc3.fc, block.fc3.bn
        if parametrize.is_parametrized(fc):
            parametrize.remove_parametrizations(fc, 'weight', leave_parametrized=False)
        with torch.no_grad():
            weight, bias = fuse_conv_bn(fc, bn)
        block.fc3 = GroupwiseFC.from_weight(weight, bias, fc.groups)
        fused.append(name)
    return fused


def _deploy_blocks(model):
    return {name: module for name, module in model.named_modules()
            if isinstance(module, RepMLPBlock) and module.deploy}


class _OutputStatistics:
    """A forward hook accumulating the per-feature mean and variance of a layer's output
    ``(N, features)``, in float64."""

    def __init__(self):
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def __call__(self, module, args, output):
        output = output.detach().double()
        self.count += output.shape[0]
        self.total = self.total + output.sum(0)
        self.squares = self.squares + (output * output).sum(0)

    def initialize_identity(self, bn):
        """Set ``bn``'s statistics to the outputs' and its affine parameters to undo them:
        ``bn(x) = (x - mean) / sqrt(var + eps) * sqrt(var + eps) + mean``."""
        mean = self.total / self.count
        variance = (self.squares / self.count - mean * mean).clamp(min=0)
        with torch.no_grad():
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(variance)
            bn.weight.copy_(torch.sqrt(variance + bn.eps))
            bn.bias.copy_(mean)
