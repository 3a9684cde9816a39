from .margin_head import MarginSoftmaxHead
from .partial_fc_checkpoint import PartialFCCheckpointHook
from .partial_fc_head import PartialFCHead

__all__ = ['MarginSoftmaxHead', 'PartialFCHead', 'PartialFCCheckpointHook']
