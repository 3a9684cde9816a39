"""Quantization-aware training of RepMLP blocks, applied to a model from outside the blocks.

:func:`prepare_quant_aware` makes every RepMLP block in training form compute its deploy form's
function with its FC1, FC2 and FC3 kernels (the deploy ones,
:meth:`~mmrepmlp.models.RepMLPBlock.get_deploy_fcs`) fake-quantized to int8
exactly as :func:`~mmrepmlp.deployment.quantize_int8` quantizes the converted model, so that
the deploy model quantizes without loss. Gradients flow to every branch; the BN statistics are
used, not updated, so fine-tune a trained model with it (train and eval mode alike compute the
fake-quantized function). The blocks keep their parameters and state_dict keys: a QAT
checkpoint loads into the plain model and converts and quantizes with the usual tools.

In a config, :class:`QuantAwareTrainingHook` applies it before the Runner trains, validates or
tests: ``custom_hooks = [dict(type='QuantAwareTrainingHook')]``.
"""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ...models.blocks import RepMLPBlock, RepMLPNetBlock
from ...utils.errors import InputError
from .fake_quant import fake_quantized_deploy_fcs

# The blocks with ``forward_with_fcs`` and ``get_deploy_fcs``: RepMLP-ResNet's and RepMLPNet's
# RepMLP blocks.
QUANT_AWARE_BLOCKS = (RepMLPBlock, RepMLPNetBlock)


class QuantAware:
    """The mixin that :func:`prepare_quant_aware` puts in front of a RepMLP block's class:
    its training form runs the fake-quantized deploy form (the deploy form runs as usual)."""

    def forward(self, x):
        if self.deploy:
            return super().forward(x)
        return self.forward_with_fcs(x, *fake_quantized_deploy_fcs(self))


_QUANT_AWARE_CLASSES = {}


def _quant_aware_class(cls):
    """``QuantAware<cls>``: a subclass of ``cls`` with :class:`QuantAware` first (one per class,
    so that blocks of one class share it, as ``torch.nn.utils.parametrize`` does)."""
    if cls not in _QUANT_AWARE_CLASSES:
        _QUANT_AWARE_CLASSES[cls] = type(f'QuantAware{cls.__name__}', (QuantAware, cls), {})
    return _QUANT_AWARE_CLASSES[cls]


def prepare_quant_aware(model):
    """Switch quantization-aware training on for every RepMLP block of ``model``, in place
    (idempotent).

    Each block's class becomes a subclass that runs :class:`QuantAware`'s forward; nothing
    else changes (parameters, buffers, state_dict keys, conversion to the deploy form). A block
    in deploy form, or converted later, runs its deploy form as usual, so a deploy config that
    keeps :class:`QuantAwareTrainingHook` tests the float deploy model.

    Args:
        model (nn.Module): any model (also one wrapped by MMEngine for distributed training).

    Returns:
        list[str]: the names of the quantization-aware blocks.

    Raises:
        InputError: ``model`` has no RepMLP block.
    """
    names = []
    for name, module in model.named_modules():
        if isinstance(module, QUANT_AWARE_BLOCKS):
            if not isinstance(module, QuantAware):
                module.__class__ = _quant_aware_class(type(module))
            names.append(name)
    if not names:
        raise InputError(f'prepare_quant_aware: {type(model).__name__} has no RepMLP block; '
                         'quantization-aware training trains the deploy kernels of RepMLP '
                         'blocks, so apply it to a RepMLP model')
    return names


def is_quant_aware(module):
    """Whether :func:`prepare_quant_aware` switched ``module`` to quantization-aware training."""
    return isinstance(module, QuantAware)


@HOOKS.register_module()
class QuantAwareTrainingHook(Hook):
    """Apply :func:`prepare_quant_aware` to the Runner's model before it runs, so that
    training fine-tunes the fake-quantized kernels and validation and testing measure them.

    Config: ``custom_hooks = [dict(type='QuantAwareTrainingHook')]``.
    """

    def before_run(self, runner):
        names = prepare_quant_aware(runner.model)
        runner.logger.info(f'quantization-aware training of {len(names)} RepMLP blocks')
