"""The measurement harness of the tools, the quick start, the benchmarks and
``python -m mmrepmlp.reparam``: parameters and MACs, interleaved timing, peak memory, the share
of a step spent in given operators, and the machine lines every benchmark report opens with.
It depends on torch and MMEngine only."""
from .counting import CONV_FC_OPS, count_flops, count_params
from .environment import (
    CPU_FLAGS,
    cpu_model_and_flags,
    load_average,
    load_average_line,
    machine_lines,
    processor_description,
)
from .memory import peak_memory_mib, peak_rss_mib
from .profiling import MATMUL_OPS, time_in_ops
from .timing import inference_speed, measure_interleaved, no_grad_step, synchronize, time_call

__all__ = [
    'CONV_FC_OPS', 'count_flops', 'count_params', 'CPU_FLAGS', 'cpu_model_and_flags',
    'load_average', 'load_average_line', 'machine_lines', 'processor_description',
    'peak_memory_mib', 'peak_rss_mib', 'MATMUL_OPS', 'time_in_ops', 'inference_speed',
    'measure_interleaved', 'no_grad_step', 'synchronize', 'time_call'
]
