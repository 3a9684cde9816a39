"""The machine lines of every benchmark report: which processor, with which of the vector and
matrix extensions that decide float32, bfloat16 and int8 speed, how many threads, and the
load average before and after (a loaded machine changes every timing)."""
import os
import platform

import torch

# /proc/cpuinfo flag -> its name in the reports, in the order they are printed.
CPU_FLAGS = {
    'avx2': 'AVX2',
    'avx512f': 'AVX-512',
    'avx512_bf16': 'AVX512-BF16',
    'avx512_vnni': 'AVX512-VNNI',
    'avx_vnni': 'AVX-VNNI',
    'amx_bf16': 'AMX-BF16',
    'amx_int8': 'AMX-INT8',
}


def cpu_model_and_flags(cpuinfo='/proc/cpuinfo'):
    """``(model name, [the CPU_FLAGS names it has])`` of the first processor in ``cpuinfo``;
    without that file (not Linux) the platform's processor name and ``None``."""
    fields = {}
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                key, _, value = line.partition(':')
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get('model name') or platform.processor() or platform.machine()
    if 'flags' not in fields:
        return name, None
    flags = set(fields['flags'].split())
    return name, [label for flag, label in CPU_FLAGS.items() if flag in flags]


def processor_description(device='cpu'):
    """``'<CPU model> (<flags>)'``, and the GPU's name when ``device`` is a CUDA one."""
    name, flags = cpu_model_and_flags()
    text = f'{name} ({"flags unknown" if flags is None else ", ".join(flags) or "no AVX2"})'
    device = torch.device(device)
    if device.type == 'cuda':
        text += f'; GPU {torch.cuda.get_device_name(device)}'
    return text


def load_average():
    """The 1-minute load average (0 where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.0


def machine_lines(device='cpu', details=(), rounds=None, load_before=None):
    """The lines that open a benchmark report: the processor and its flags; torch, the CPU
    capability it dispatches to, the device, the torch threads, ``details`` and the rounds;
    and the load average now (``before``), or ``load_before`` and now (``after``) for a
    report printed once everything is measured.

    Args:
        device (str | torch.device): where the benchmark runs.
        details (Sequence[str]): what the run measures (sizes, batch, forms).
        rounds (int, optional): the timed rounds of :func:`~.timing.measure_interleaved`.
        load_before (float, optional): :func:`load_average` taken before measuring.
    """
    load = (f'{load_average():.2f} before' if load_before is None else
            f'{load_before:.2f} before, {load_average():.2f} after')
    run = ', '.join([f'torch {torch.__version__}',
                     f'CPU capability {torch.backends.cpu.get_cpu_capability()}',
                     str(device), f'{torch.get_num_threads()} threads', *details])
    if rounds is not None:
        run += f', median of {rounds} interleaved rounds'
    return f'# {processor_description(device)}\n# {run}; load average {load}'


def load_average_line():
    """The line that closes a benchmark report."""
    return f'# load average {load_average():.2f} after'
