"""The MMEngine hook that lets the Runner save and resume models with a
:class:`~.partial_fc_head.PartialFCHead` at any number of processes."""
import inspect

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmpretrain.registry import HOOKS

from .partial_fc_head import PartialFCHead


@HOOKS.register_module()
class PartialFCCheckpointHook(Hook):
    """Make checkpoints of a sharded :class:`PartialFCHead` whole, and resumable anywhere.

    The head's ``state_dict()`` and its optimizer state gather the centres from every rank,
    a collective, but MMEngine's ``Runner.save_checkpoint`` runs on rank 0 only. Before the
    run this hook attaches the optimizer to every PartialFCHead of the model
    (:meth:`PartialFCHead.attach_optimizer`) and makes the other ranks take part in each save:
    they gather the model's and (when it is saved) the optimizer's state with rank 0 and
    discard it. The checkpoint is then one ordinary state dict with the whole
    ``(num_classes, D)`` centres and momentum, which resumes at any number of processes (each
    rank loads its rows). Without several processes it changes nothing.

    Add it to the training config: ``custom_hooks = [dict(type='PartialFCCheckpointHook')]``.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        heads = [m for m in model.modules() if isinstance(m, PartialFCHead)]
        for head in heads:
            for optimizer in _optimizers(runner.optim_wrapper):
                head.attach_optimizer(optimizer)
        if any(head.world_size > 1 for head in heads):
            runner.save_checkpoint = _collective_save(runner, model, runner.save_checkpoint)


def _optimizers(optim_wrapper):
    """The built optimizers of a Runner's ``optim_wrapper`` (none before it is built)."""
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [wrapper.optimizer for wrapper in optim_wrapper.values()]
    if isinstance(optim_wrapper, OptimWrapper):
        return [optim_wrapper.optimizer]
    return []


def _collective_save(runner, model, save_checkpoint):
    """``runner.save_checkpoint`` on rank 0; on the other ranks, the gathers it runs."""
    signature = inspect.signature(save_checkpoint)

    def save_on_every_rank(*args, **kwargs):
        if is_main_process():
            return save_checkpoint(*args, **kwargs)
        arguments = signature.bind(*args, **kwargs).arguments
        model.state_dict()
        if arguments.get('save_optimizer', True):
            runner.optim_wrapper.state_dict()

    return save_on_every_rank
