"""Where the time of a step goes: the share of it spent in some operators (e.g. the matmuls),
read from PyTorch's profiler, which records every operator call, the extern kernels of
compiled code included."""
import time

import torch

# Operators that multiply matrices: eager and compiled (inductor's extern kernels, MKL's and
# oneDNN's packed float, bfloat16 and int8 FCs).
MATMUL_OPS = frozenset({
    'aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm', 'aten::matmul', 'aten::linear',
    'aten::_int_mm', 'mkl::_mkl_linear', 'mkldnn::_linear_pointwise',
    'onednn::qlinear_pointwise'
})


def time_in_ops(step, ops=MATMUL_OPS, calls=5):
    """Seconds per call of ``step`` and the seconds of it spent in ``ops``, both from the same
    ``calls`` profiled calls (wall time: the profiler's own overhead and the machine's load
    count in both).

    Nested calls count once: an operator's self time is counted when it is in ``ops``, its
    children's when they are.

    Returns:
        tuple[float, float]: ``(seconds per call, seconds per call in ops)``.
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        start = time.perf_counter()
        for _ in range(calls):
            step()
        total = time.perf_counter() - start
    in_ops = sum(event.self_cpu_time_total for event in profile.key_averages()
                 if event.key in ops) * 1e-6
    return total / calls, in_ops / calls
