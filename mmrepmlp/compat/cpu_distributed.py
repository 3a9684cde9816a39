"""mmengine's distributed set-up assumes CUDA."""
import contextlib
import functools
import logging

from .marks import is_ours, mark

logger = logging.getLogger(__name__)

def _accelerator_available():
    import torch
    from mmengine import device

    return (torch.cuda.is_available() or device.is_mlu_available()
            or device.is_npu_available() or device.is_musa_available())


@contextlib.contextmanager
def _cuda_set_device_skipped():
    """``torch.cuda.set_device`` as a no-op: mmengine's launchers call it unconditionally."""
    import torch

    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def _wrap_init_dist_launcher(original):
    """``original`` (an ``_init_dist_*`` of mmengine) made to work without an accelerator."""

    @functools.wraps(original)
    def init(backend, *args, **kwargs):
        if _accelerator_available():
            return original(backend, *args, **kwargs)
        if backend == 'nccl':
            logger.info('No CUDA device: using the gloo backend instead of nccl.')
            backend = 'gloo'
        with _cuda_set_device_skipped():  # there is no device to pick
            return original(backend, *args, **kwargs)

    init.__wrapped_upstream__ = original
    return mark(init)


def _on_cpu_only(module):
    tensors = list(module.parameters()) + list(module.buffers())
    return all(t.device.type == 'cpu' for t in tensors)


def _wrap_ddp_init(original):

    @functools.wraps(original)
    def __init__(self, module, *args, **kwargs):
        if (kwargs.get('device_ids') is not None and not _accelerator_available()
                and _on_cpu_only(module)):
            # DDP of a CPU module must not be given device_ids
            kwargs['device_ids'] = None
            kwargs.pop('output_device', None)
        original(self, module, *args, **kwargs)

    __init__.__wrapped_upstream__ = original
    return mark(__init__)


def fix_cpu_distributed():
    """Make mmengine's ``pytorch``, ``slurm`` and ``mpi`` launchers work without CUDA.

    Upstream problem: ``mmengine.dist.utils._init_dist_{pytorch,slurm,mpi}`` always call
    ``torch.cuda.set_device`` and the Runner's default backend is nccl; ``Runner.wrap_model``
    (and ``DDPStrategy``) build ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``, which
    DDP rejects for a CPU module. With no CUDA/MLU/NPU/MUSA device this makes those
    launchers use gloo instead of nccl and skip ``set_device``, and
    ``MMDistributedDataParallel`` drop ``device_ids`` for a module that lives on the CPU.
    Nothing changes when an accelerator is available.

    Remove when mmengine supports CPU distributed training itself.

    Returns:
        bool: True if anything was patched by this call.
    """
    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel

    changed = False
    for name in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi'):
        launcher = getattr(dist_utils, name)
        if not is_ours(launcher):
            setattr(dist_utils, name, _wrap_init_dist_launcher(launcher))
            changed = True
    init = MMDistributedDataParallel.__dict__['__init__']
    if not is_ours(init):
        MMDistributedDataParallel.__init__ = _wrap_ddp_init(init)
        changed = True
    return changed
