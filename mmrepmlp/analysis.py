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


# Operators that are convs, FCs or matmuls: the MACs the paper counts (Tables 1-6).
CONV_FC_OPS = ('conv', 'linear', 'addmm', 'bmm', 'baddbmm', 'matmul', 'mm', 'einsum')


def _baddbmm_macs(inputs, outputs):
    """baddbmm(bias, a, b) costs what bmm(a, b) does; MMEngine has no handle for it."""
    from mmengine.analysis.jit_handles import bmm_flop_jit

    return bmm_flop_jit(inputs[1:3], outputs)


def count_flops(model, input_shape, conv_fc_only=False):
    """Multiply-accumulates of one forward pass (MMEngine's analysis), batch 1.

    Args:
        model (nn.Module): the model; run in eval mode on a zero input.
        input_shape (tuple[int]): the input shape without batch, e.g. ``(3, 224, 224)``.
        conv_fc_only (bool): count convs, FCs and matmuls only (the paper's convention),
            not norm layers and pooling. Defaults to False.
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
        analyzer.set_op_handle('aten::baddbmm', _baddbmm_macs)
        if not conv_fc_only:
            return analyzer.total()
        return sum(n for op, n in analyzer.by_operator().items() if op in CONV_FC_OPS)
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
