"""Model complexity and speed measurement shared by the tools, the quick start and benchmarks.

Speeds are always measured *interleaved*: every round runs each model once, so that the
machine's drift (other load, frequency scaling) hits all models alike and their ratio is
meaningful within one run.
"""
import statistics
import time

import torch


def count_params(model):
    """Number of parameters (buffers such as BN running stats are not counted)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model, input_shape):
    """Multiply-accumulates of one forward pass (MMEngine's analysis), batch 1.

    Args:
        model (nn.Module): the model; run in eval mode on a zero input.
        input_shape (tuple[int]): the input shape without batch, e.g. ``(3, 224, 224)``.
    """
    from mmengine.analysis import FlopAnalyzer

    param = next(model.parameters())
    inputs = torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    try:
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer.total()
    finally:
        model.train(was_training)


def _synchronize(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def measure_interleaved(fns, warmup=2, rounds=5, device='cpu'):
    """Median wall time (s) of each zero-argument callable, measured in interleaved rounds.

    Args:
        fns (dict[str, Callable]): name -> the work of one step.
        warmup (int): untimed rounds first.
        rounds (int): timed rounds; the median over rounds is reported.
        device (str | torch.device): CUDA is synchronized around each step when it is one.

    Returns:
        dict[str, float]: name -> median seconds per call.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(max(1, rounds)):
        for name, fn in fns.items():
            _synchronize(device)
            start = time.perf_counter()
            fn()
            _synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def inference_speed(models, inputs, warmup=2, rounds=5):
    """Images/s of each model on ``inputs`` (eval mode, no grad), measured interleaved.

    Args:
        models (dict[str, nn.Module]): name -> model (already on the inputs' device).
        inputs (Tensor): a batch ``(N, C, H, W)``.

    Returns:
        dict[str, float]: name -> images per second.
    """
    for model in models.values():
        model.eval()

    def step(model):
        def run():
            with torch.no_grad():
                model(inputs)
        return run

    seconds = measure_interleaved({name: step(m) for name, m in models.items()}, warmup,
                                  rounds, inputs.device)
    return {name: inputs.shape[0] / s for name, s in seconds.items()}
