"""benchmarks/seg_speed.py, face_speed.py and deploy_speed.py: their CI modes run end to end
and measure every model. No timing is asserted; the sizes and counts are checked."""
import pytest
from helpers_tools import load_script


def test_segmentation_benchmark_quick_mode(capsys):
    rows = load_script('benchmarks/seg_speed.py').main(['--quick'])

    names = [row[0] for row in rows]
    assert names == ['pspnet-repmlp-res50-g4g8', 'pspnet-res50-d8', 'pspnet-r50-d8-v1c']
    for _, size, batch, _, flops, macs, speed, ratio in rows:
        assert (size, batch) == (128, 1) and speed > 0 and ratio > 0
        assert 0 < macs <= flops
    baseline = rows[1]
    assert baseline[-1] == 1.0
    # the RepMLP backbone has more parameters than ResNet-50 (Sec. 4.4)
    assert rows[0][3] > baseline[3]
    assert '| pspnet-repmlp-res50-g4g8 | 128x128 | 1 |' in capsys.readouterr().out


def test_face_benchmark_quick_mode():
    rows = load_script('benchmarks/face_speed.py').main(['--quick'])

    assert [row[0] for row in rows] == ['mobilefacenet', 'faceres50', 'repmlp-faceres50']
    assert all(batch == 2 and speed > 0 for _, batch, speed, _ in rows)
    assert rows[0][3] == 1.0


def test_deploy_benchmark_quick_mode_times_every_path(capsys):
    """The CI mode, plus the exported artifacts: each path built, called once and timed."""
    paths = ['eager', 'optimized', 'int8', 'onnxruntime']
    results = load_script('benchmarks/deploy_speed.py').main(['--quick', '--paths', *paths])

    [(batch, timings)] = results.items()
    name = 'pure-mlp (2 RepMLPs)'
    assert batch == 2
    assert {path for _, path in timings['seconds']} == set(paths)
    assert all(timings['seconds'][name, path] > 0 and timings['first_call'][name, path] > 0
               for path in paths)
    assert list(timings['load_call']) == [(name, 'onnxruntime')]  # loaded from its file
    # the compiled paths' first calls split into the compile's phases, the others' not
    compiled = {path: sum(timings['compiling'][name, path].values()) for path in paths}
    assert compiled['eager'] == compiled['onnxruntime'] == 0
    assert all(0 < compiled[path] < timings['first_call'][name, path]
               for path in ('optimized', 'int8'))
    assert min(timings['compiling'][name, 'int8'].values()) > 0
    captured = capsys.readouterr()
    assert f'| {name} | ' in captured.out
    assert f'# built {name} int8 at batch 2: first call ' in captured.err
    assert '; compiling: tracing ' in captured.err


def test_deploy_benchmark_runs_each_batch_size_in_a_process_of_its_own(capfd):
    """Several batch sizes: one process each (the memory of one batch size's built paths is
    returned before the next), their reports in order, their results merged."""
    script = load_script('benchmarks/deploy_speed.py')
    results = script.main(['--quick', '--paths', 'eager', '--batches', '1', '2'])

    assert sorted(results) == [1, 2]
    assert all(timings['seconds']['pure-mlp (2 RepMLPs)', 'eager'] > 0
               for timings in results.values())
    out = capfd.readouterr().out
    assert 0 < out.index('## batch 1:') < out.index('## batch 2:')
    assert out.count('load average') == 4  # before and after, in each process


def test_deploy_benchmark_times_other_layouts_and_splits_the_repmlp_layers(capsys):
    """The deploy layout references as extra rows, every precision against the first model's,
    and the breakdown of the RepMLP layers' time into matmuls and the rest."""
    results = load_script('benchmarks/deploy_speed.py').main(
        ['--quick', '--paths', 'eager', 'optimized', 'bf16', '--layouts', 'partition-major',
         'channel-major', '--breakdown'])

    [(batch, timings)] = results.items()
    name = 'pure-mlp (2 RepMLPs)'
    other = f'{name} [channel-major]'
    assert {model for model, _ in timings['seconds']} == {name, other}
    assert set(timings['breakdown']) == {(model, path) for model in (name, other)
                                         for path in ('optimized', 'bf16')}
    for row in timings['breakdown'].values():
        assert row['blocks'] is None  # a pure MLP has no residual blocks to compare
        assert 0 < row['matmuls'] < row['layers']
    out = capsys.readouterr().out
    assert (f'ratio {other}: float32 (' in out and f"{name}'s bfloat16, " in out
            and "x its float32" in out)
    assert f'| {other} | bf16 | - | ' in out


@pytest.mark.parametrize('argv, message', [
    (['--official-v1', 'DIR'], 'no repmlp_resnet.py there'),
    (['--official-v1', 'DIR', '--quick'], 'drop --quick'),
    (['--official-v1', 'DIR', '--presets', 'res50-g8g8-320'], 'other presets'),
    (['--official-v1', 'DIR', '--img-size', '320'], 'drop --quick, --img-size'),
])
def test_deploy_benchmark_official_comparison_needs_the_v1_code(argv, message, tmp_path,
                                                                 capsys):
    """The official v1 code is the user's checkout: a folder without it, or models it has no
    counterpart of, are refused before anything is built."""
    (tmp_path / 'repmlpnet.py').write_text('')  # the later RepMLPNet code, not v1
    argv = [str(tmp_path) if arg == 'DIR' else arg for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        load_script('benchmarks/deploy_speed.py').parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_deploy_benchmark_official_comparison_adds_its_path(tmp_path):
    (tmp_path / 'repmlp_resnet.py').write_text('')
    args = load_script('benchmarks/deploy_speed.py').parse_args(
        ['--official-v1', str(tmp_path), '--paths', 'eager', 'optimized'])
    assert args.paths == ['eager', 'optimized', 'official-v1']
