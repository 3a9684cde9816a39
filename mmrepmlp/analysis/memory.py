"""Peak memory of one step of a model: the peak resident set on CPU, allocated memory on CUDA.

The step is named, not passed: ``'path/to/script.py:function'`` or ``'package.module:function'``,
a function that builds what it needs from JSON-able keyword arguments and returns the step (a
zero-argument callable). On CPU it runs in a fresh interpreter because a process's peak
resident set never goes down and memory freed by one model stays with the allocator for the
next, so several models measured in one process would hide each other's peaks.
"""
import importlib
import importlib.util
import json
import os
import os.path as osp
import resource
import subprocess
import sys

import torch

from .timing import synchronize

# The folder holding the mmrepmlp package, for the fresh interpreter's imports.
_PACKAGE_PARENT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def peak_rss_mib():
    """This process's peak resident set (MiB).

    Linux's ``VmHWM`` belongs to the process's own address space, whereas ``getrusage``'s
    maxrss is carried over from the parent across fork and exec, so a child started by a
    large parent would never see its own, smaller peak.
    """
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_step_factory(reference):
    """The function named by ``'file.py:function'`` or ``'module:function'``."""
    location, _, function = reference.rpartition(':')
    if location.endswith('.py'):
        spec = importlib.util.spec_from_file_location('_step_factory', location)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    return getattr(module, function)


def _peak_of_second_step(step, device):
    """Run ``step`` twice (the first allocates gradients and optimizer state) and return the
    CUDA memory allocated at the peak of the second (MiB); on CPU the caller reads the peak
    resident set."""
    step()
    if torch.device(device).type != 'cuda':
        step()
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def peak_memory_mib(factory, kwargs=None, device='cpu'):
    """Peak memory (MiB) of one step built by ``factory(**kwargs)``.

    On CPU: the peak resident set of a fresh interpreter (with this process's torch threads)
    less its size after importing the factory's module, so that weights, gradients, optimizer
    state and activations count. On CUDA: ``torch.cuda.max_memory_allocated`` during the
    step, in this process.

    Args:
        factory (str): ``'path/to/script.py:function'`` or ``'package.module:function'``.
        kwargs (dict, optional): JSON-able keyword arguments of the factory.
        device (str | torch.device): where the step runs.
    """
    kwargs = kwargs or {}
    if torch.device(device).type == 'cuda':
        peak = _peak_of_second_step(load_step_factory(factory)(**kwargs), device)
        torch.cuda.empty_cache()
        return peak
    code = f'from {__name__} import _measure_in_child; _measure_in_child()'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [_PACKAGE_PARENT, os.environ.get('PYTHONPATH')])))
    result = subprocess.run([sys.executable, '-c', code, factory, json.dumps(kwargs),
                             str(torch.get_num_threads())], capture_output=True, text=True,
                            env=env, check=False)
    if result.returncode:
        raise RuntimeError(f'peak memory of {factory}({kwargs}) failed:\n{result.stderr}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def _measure_in_child():
    """The fresh interpreter's side of :func:`peak_memory_mib`: prints the peak as JSON."""
    factory, kwargs, threads = sys.argv[1:]
    torch.set_num_threads(int(threads))
    build = load_step_factory(factory)
    baseline = peak_rss_mib()
    _peak_of_second_step(build(**json.loads(kwargs)), 'cpu')
    print(json.dumps(peak_rss_mib() - baseline))
