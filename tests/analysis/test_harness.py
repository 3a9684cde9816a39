"""mmrepmlp.analysis: interleaved rounds, untimed preparation, peak memory, the time in given
operators and machine lines.

No speed is asserted: the tests check the order of the calls, what reaches each step, which
operators are counted and what the reports name."""
import pytest
import torch

from mmrepmlp.analysis import (
    cpu_model_and_flags,
    machine_lines,
    measure_interleaved,
    peak_memory_mib,
    peak_rss_mib,
    time_in_ops,
)

ALLOCATION_MIB = 256


def test_every_round_runs_every_candidate_once_in_order():
    calls = []
    seconds = measure_interleaved({'a': lambda: calls.append('a'),
                                   'b': lambda: calls.append('b')}, warmup=1, rounds=3)
    assert calls == ['a', 'b'] * 4  # one warm-up round, three timed ones
    assert seconds.keys() == {'a', 'b'} and all(s >= 0 for s in seconds.values())


def test_setup_gives_each_call_a_fresh_argument_outside_the_step():
    made, seen = [], []

    def make():
        made.append(len(made))
        return made[-1]

    measure_interleaved({'convert': seen.append, 'plain': lambda: seen.append('plain')},
                        warmup=0, rounds=2, setup={'convert': make})
    assert seen == [0, 'plain', 1, 'plain']


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nmodel name\t: Test CPU 9000\n'
                       'flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile amx_int8\n'
                       'processor\t: 1\nmodel name\t: Other\n')
    assert cpu_model_and_flags(str(cpuinfo)) == ('Test CPU 9000',
                                                 ['AVX2', 'AVX-512', 'AVX512-VNNI', 'AMX-INT8'])
    missing = cpu_model_and_flags(str(tmp_path / 'none'))
    assert missing[1] is None and missing[0]


def test_machine_lines_name_torch_threads_rounds_and_the_load():
    first, second = machine_lines('cpu', ['batch 8'], rounds=3, load_before=0.5).split('\n')
    assert first.startswith('# ') and '(' in first
    assert f'torch {torch.__version__}' in second
    assert f'{torch.get_num_threads()} threads, batch 8, median of 3 interleaved rounds' in second
    assert 'load average 0.50 before, ' in second and second.endswith(' after')


def allocation_step(mib):
    """A step that holds ``mib`` MiB of float32 while it runs (the peak memory factory)."""

    def step():
        torch.ones(mib * 2**18).sum()

    return step


def test_peak_memory_of_a_step_is_measured_in_a_fresh_interpreter():
    peak = peak_memory_mib(f'{__file__}:allocation_step', dict(mib=ALLOCATION_MIB))
    # the fresh interpreter sees the tensor, not this process's larger history
    assert ALLOCATION_MIB * 0.9 < peak < ALLOCATION_MIB * 1.5
    assert peak_rss_mib() > 0


def test_a_failing_step_reports_the_fresh_interpreters_error():
    with pytest.raises(RuntimeError, match='no_such_factory'):
        peak_memory_mib(f'{__file__}:no_such_factory')


def test_time_in_ops_counts_the_named_operators_of_each_call():
    a, b = torch.randn(64, 64), torch.randn(64, 64)

    def step():
        torch.mm(a, b).relu()

    per_call, in_matmuls = time_in_ops(step, calls=3)
    assert 0 < in_matmuls < per_call
    assert time_in_ops(step, ops={'aten::sin'}, calls=3)[1] == 0
