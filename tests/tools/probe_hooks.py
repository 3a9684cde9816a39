"""Hooks the tool tests add to training runs (through a config's custom_imports) to observe
what happens inside the processes."""
import os
import os.path as osp
import signal

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def _model(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


@HOOKS.register_module()
class DumpTrainStateHook(Hook):
    """Save each rank's iteration, weights and optimizer state when training starts (after a
    resume has loaded them) and when it ends, to ``{out_dir}/{before,after}_train_rank{r}.pth``.
    """
    priority = 'LOWEST'

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def _dump(self, runner, when):
        state = dict(iter=runner.iter, state_dict=_model(runner).state_dict(),
                     optimizer=runner.optim_wrapper.state_dict())
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save(state, osp.join(self.out_dir, f'{when}_train_rank{get_rank()}.pth'))

    def before_train(self, runner):
        self._dump(runner, 'before')

    def after_train(self, runner):
        self._dump(runner, 'after')


@HOOKS.register_module()
class KillAfterIterHook(Hook):
    """SIGKILL the process right after iteration ``at_iter`` (1-based) and its checkpoint:
    the lowest priority runs after CheckpointHook."""
    priority = 'LOWEST'

    def __init__(self, at_iter):
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillWhileSavingHook(Hook):
    """Let the kernel kill the process in the middle of writing the checkpoint of epoch
    ``at_epoch``: a file-size limit of half the previous checkpoint's size, with SIGXFSZ's
    default action (terminate) restored, since Python ignores it."""
    priority = 'LOWEST'

    def __init__(self, at_epoch, previous):
        self.at_epoch = at_epoch
        self.previous = previous

    def before_save_checkpoint(self, runner, checkpoint):
        import resource

        if runner.epoch + 1 == self.at_epoch:
            limit = os.path.getsize(osp.join(runner.work_dir, self.previous)) // 2
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


@HOOKS.register_module()
class DumpHeadShardHook(Hook):
    """Save each rank's own slice of a PartialFCHead's centres and momentum when training
    ends, to ``{out_dir}/head_shard_rank{r}.pth`` (the state dict gathers them whole)."""
    priority = 'LOWEST'

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train(self, runner):
        head = _model(runner).head
        momentum = runner.optim_wrapper.optimizer.state[head.weight]['momentum_buffer']
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save(dict(classes=(head.class_start, head.class_end), weight=head.weight.detach(),
                        momentum=momentum.clone()),
                   osp.join(self.out_dir, f'head_shard_rank{get_rank()}.pth'))


@HOOKS.register_module()
class KillDuringSaveHook(Hook):
    """Kill the process at a chosen point of saving the checkpoint of epoch ``at_epoch``, the
    same point every time (no timing involved):

    - ``'checkpoint'``: in the middle of writing the checkpoint, at half the size of the
      ``previous`` one (a file-size limit; the kernel sends SIGXFSZ, whose default action,
      which Python ignores, is restored);
    - ``'last_checkpoint'``: in the middle of writing ``last_checkpoint``, after 10 bytes (the
      limit is set when that file, or its temporary, is opened for writing);
    - ``'commit'``: with SIGKILL when the complete checkpoint is renamed into place.
    """
    priority = 'LOWEST'

    def __init__(self, at_epoch, point, previous=None):
        self.at_epoch, self.point, self.previous = at_epoch, point, previous

    def before_save_checkpoint(self, runner, checkpoint):
        import resource
        import sys

        if runner.epoch + 1 != self.at_epoch:
            return
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

        def limit(size):
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

        def at_last_checkpoint(event, args):
            if event == 'open' and osp.basename(str(args[0])).startswith(
                    ('last_checkpoint', '.last_checkpoint.')) and 'r' not in (args[1] or ''):
                limit(10)

        def at_commit(event, args):
            if event == 'os.rename' and str(args[1]).endswith(f'epoch_{self.at_epoch}.pth'):
                os.kill(os.getpid(), signal.SIGKILL)

        if self.point == 'checkpoint':
            limit(os.path.getsize(osp.join(runner.work_dir, self.previous)) // 2)
        else:
            sys.addaudithook(at_last_checkpoint if self.point == 'last_checkpoint'
                             else at_commit)


@HOOKS.register_module()
class InterruptAfterIterHook(Hook):
    """Ctrl-C (SIGINT to this process) right after iteration ``at_iter`` (1-based) and its
    checkpoint."""
    priority = 'LOWEST'

    def __init__(self, at_iter):
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at_iter:
            # A shell starts background jobs with SIGINT ignored, and Python then keeps it
            # ignored; a Ctrl-C reaches a foreground process, which has Python's handler.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.kill(os.getpid(), signal.SIGINT)
