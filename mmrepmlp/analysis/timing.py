"""Wall-clock timing, always *interleaved*: every round runs each candidate once, so that the
machine's drift (other load, frequency scaling) hits all candidates alike and their ratio is
meaningful within one run."""
import statistics
import time

import torch


def synchronize(device):
    """Wait for the work queued on ``device``: CUDA runs asynchronously, so a timer that did
    not wait would measure the launch, not the work."""
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn, *args, device='cpu'):
    """Seconds of one call ``fn(*args)``, the device synchronized before and after, and the
    call's result."""
    synchronize(device)
    start = time.perf_counter()
    result = fn(*args)
    synchronize(device)
    return time.perf_counter() - start, result


def no_grad_step(fn, *args):
    """A zero-argument callable running ``fn(*args)`` without autograd: one inference step."""

    def step():
        with torch.no_grad():
            fn(*args)

    return step


def measure_interleaved(fns, warmup=2, rounds=5, device='cpu', setup=None):
    """Median wall time (s) of each callable, measured in interleaved rounds.

    Args:
        fns (dict[str, Callable]): name -> the work of one step.
        warmup (int): untimed rounds first.
        rounds (int): timed rounds; the median over rounds is reported.
        device (str | torch.device): CUDA is synchronized around each step when it is one.
        setup (dict[str, Callable], optional): name -> untimed preparation run before every
            call of that name's step, whose result is the step's argument (e.g. a fresh copy
            of a model for a step that converts it in place). Steps without one take none.

    Returns:
        dict[str, float]: name -> median seconds per call.
    """
    setup = setup or {}

    def timed(name):
        args = (setup[name](), ) if name in setup else ()
        return time_call(fns[name], *args, device=device)[0]

    for _ in range(warmup):
        for name in fns:
            timed(name)
    times = {name: [] for name in fns}
    for _ in range(max(1, rounds)):
        for name in fns:
            times[name].append(timed(name))
    return {name: statistics.median(ts) for name, ts in times.items()}


def inference_speed(models, inputs, warmup=2, rounds=5):
    """Images/s of each model on ``inputs`` (eval mode, no grad), measured interleaved.

    Args:
        models (dict[str, nn.Module]): name -> model (already on the inputs' device).
        inputs (Tensor): a batch ``(N, C, H, W)``.

    Returns:
        dict[str, float]: name -> images per second.
    """
    steps = {name: no_grad_step(model.eval(), inputs) for name, model in models.items()}
    seconds = measure_interleaved(steps, warmup, rounds, inputs.device)
    return {name: inputs.shape[0] / s for name, s in seconds.items()}
