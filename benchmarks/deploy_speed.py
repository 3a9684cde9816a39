"""Every inference path of the deploy models, measured side by side: what each one gains.

For ResNet-50 (``res50-base``) and the RepMLP-Res50 presets (Light g=4 / g=8, Bottleneck
g8/8), each an MMPretrain classifier built from its config and converted to the deploy form,
the paths are:

- ``eager``: the deploy model as it is (float32, NCHW);
- ``channels_last``: the same in channels_last memory format (float32);
- ``optimized``: :func:`mmrepmlp.deployment.optimize_for_inference` (float32, compiled);
- ``bf16``: ``optimize_for_inference(dtype=torch.bfloat16)`` (autocast, not exact);
- ``int8``: :func:`mmrepmlp.deployment.quantize_int8` (PT2E, x86 inductor; CPU only),
  calibrated on random batches (speed does not depend on what it is calibrated on);
- ``onnxruntime`` / ``pt2``: the artifacts of :mod:`mmrepmlp.deployment.export` (an ONNX file run
  by onnxruntime on the CPU, an AOTInductor package), float32.

With ``--official-v1 DIR`` (a checkout of the official RepMLP v1 code, the commit before its
RepMLPNet rewrite, which holds ``repmlp_resnet.py``), every model is also run as the official
code's deploy model in eager mode, ``official-v1``, holding the same weights (copied through
the official importer's key mapping, outputs checked equal before timing).

With ``--layouts``, the RepMLP presets are also timed with their RepMLP blocks computed in
other deploy layouts than the block's own partition-major one (the references of
``benchmarks/block_references.py``: ``channel-major``, ``conv-partition``), as extra rows.

Per batch size, the first call of every path is timed alone (for the compiled paths it
includes the compilation, with inductor's on-disk caches empty at the start of the run, and
its line on stderr splits that into tracing, AOT and freezing, lowering, code generation and
the wait for the C++ compiler, by Dynamo's and inductor's own timers; for the exported ones
the export); for the exported ones also what a deployment pays at start:
loading the written artifact and its first call. Then all paths
of all models run in interleaved rounds (:func:`mmrepmlp.analysis.measure_interleaved`,
median of the rounds), so that the ratios printed compare them under the same machine load.
For every precision (float32: the exact paths; bfloat16; int8) each model's fastest path is
compared with ResNet-50's fastest path of the same precision and with the model's own fastest
float32 path. Every path of every model stays built through the rounds, so the memory grows
with the models, paths and batch size; several batch sizes run one after the other, each in a
process of its own, which returns that memory when it ends.

``--breakdown`` splits, for the compiled paths (``optimized``, ``bf16``, ``int8``), the time of
the RepMLP layers into matmuls (FC1, FC2, FC3) and everything else, beside the time of the
blocks they sit in and of ResNet-50's blocks at the same places: each built by the path on
its own, on its input captured from the model (the layers profiled,
:func:`mmrepmlp.analysis.time_in_ops`; the blocks timed interleaved).

Timings are reported, never asserted; the goals they are read against are in docs/deploy.md.

    python benchmarks/deploy_speed.py [--batches 1 8 64] [--threads 2] [--rounds 5]
        [--warmup 2] [--presets res50-light-g8 ...] [--paths eager optimized ...]
        [--layouts partition-major channel-major ...] [--breakdown]
        [--device cpu|cuda] [--official-v1 DIR] [--quick]

``--quick`` (CI, about a minute on two cores) times a two-RepMLP cut of the pure-MLP digits
model at batch 2, one round, on the paths that do not export.
"""
import argparse
import contextlib
import copy
import functools
import gc
import math
import os
import os.path as osp
import pickle
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
from block_references import (
    DEPLOY_LAYOUTS,
    channel_major_fcs,
    deploy_layers,
    use_deploy_layout,
)
from mmengine.logging import MMLogger

from mmrepmlp.analysis import (
    load_average_line,
    machine_lines,
    measure_interleaved,
    no_grad_step,
    time_call,
    time_in_ops,
)
from mmrepmlp.apis.benchmark import (
    BenchmarkModel,
    ModelSpec,
    add_timing_args,
    build_benchmark_models,
    resolve_device,
)
from mmrepmlp.deployment import (
    export_onnx,
    export_pt2,
    forward_raw,
    optimize_for_inference,
    quantize_int8,
)
from mmrepmlp.models.blocks import RepMLPBlock
from mmrepmlp.models.official_import import official_key_to_mmrepmlp
from mmrepmlp.tasks.base import Task

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASELINE = 'res50-base'
PRESETS = ('res50-light-g8', 'res50-light-g4', 'res50-g8g8')
CONFIG = osp.join(REPO, 'configs', 'repmlp_resnet', 'repmlp-{}_8xb32_in1k.py')
QUICK_CONFIG = osp.join(REPO, 'configs', 'repmlp_cifar', 'pure-mlp_1xb32_digits.py')
# --quick: the digits model cut to two RepMLPs (compiling is what takes the time).
QUICK_OPTIONS = {
    'model.backbone.arch': dict(_delete_=True, channels=(16, 32), mixers_per_stage=1,
                                mixer_cfg=dict(type='RepMLP', partition_size=8, groups=2,
                                               local_kernels=(1, 3, 5, 7))),
    'model.backbone.out_indices': (1, ),
    'model.head.in_channels': 32,
}
FLOAT32_PATHS = ('eager', 'channels_last', 'optimized', 'onnxruntime', 'pt2')
# The precision of each path's arithmetic; the fastest path of each is compared across models.
PRECISIONS = {'float32': FLOAT32_PATHS, 'bfloat16': ('bf16', ), 'int8': ('int8', )}
EXPORTED_PATHS = ('onnxruntime', 'pt2')
COMPILED_PATHS = ('optimized', 'bf16', 'int8')  # torch.compile'd at their first call
BREAKDOWN_PATHS = COMPILED_PATHS
KEPT_LAYOUT = 'partition-major'  # the block's own
CACHE_VARIABLE = 'TORCHINDUCTOR_CACHE_DIR'
PATHS = ('eager', 'channels_last', 'optimized', 'bf16', 'int8', *EXPORTED_PATHS)
QUICK_PATHS = ('eager', 'channels_last', 'optimized', 'bf16', 'int8')
CALIBRATION_BATCHES = 2
# The phases of a compile that a build line splits its first call into: (label, Dynamo's or
# inductor's timer of it, a timer nested in that one, whose time is reported apart).
COMPILE_PHASES = (
    ('tracing', 'bytecode_tracing', None),
    ('AOT and freezing', 'create_aot_dispatcher_function', 'compile_fx_inner'),
    ('lowering', 'GraphLowering.run', None),
    ('code generation', 'GraphLowering.codegen', None),
    ('waiting for C++', 'async_compile.wait', None),
)
OFFICIAL_PATH = 'official-v1'
# The official v1 code's RepMLPResNet arguments of each preset (its create_* functions).
OFFICIAL_ARGUMENTS = dict(num_blocks=[3, 4, 6, 3], num_classes=1000, h=7, w=7,
                          reparam_conv_k=(1, 3, 5), fc1_fc2_reduction=1, bottleneck_r=(2, 4),
                          deploy=True)
OFFICIAL_PRESETS = {
    'res50-base': dict(block_type='base', fc3_groups=1),
    'res50-light-g8': dict(block_type='light', fc3_groups=8),
    'res50-light-g4': dict(block_type='light', fc3_groups=4),
    'res50-g8g8': dict(block_type='bottleneck', fc3_groups=8),
}
OFFICIAL_TOLERANCE = 1e-4  # largest relative difference of the two implementations' logits


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_timing_args(parser, batches=(1, 8, 64), rounds=5, warmup=2)
    parser.add_argument('--img-size', type=int, default=224, help='input size (default 224)')
    parser.add_argument('--presets', nargs='+', default=list(PRESETS),
                        help=f'presets compared with {BASELINE} (default: {" ".join(PRESETS)})')
    parser.add_argument('--paths', nargs='+', choices=PATHS, default=None,
                        help='paths to time (default: all; on CUDA without int8 and the '
                        'exported ones)')
    parser.add_argument('--layouts', nargs='+', choices=sorted(DEPLOY_LAYOUTS),
                        default=[KEPT_LAYOUT],
                        help='deploy layouts of the RepMLP blocks to time the presets in '
                        f'(default: {KEPT_LAYOUT}, the block\'s own; the others are the '
                        'references of block_references.py, as extra rows)')
    parser.add_argument('--breakdown', action='store_true',
                        help='split the time of the RepMLP layers into matmuls and the rest, '
                        'beside the blocks they replace, on the compiled paths')
    parser.add_argument('--official-v1', metavar='DIR',
                        help='also time the official v1 code\'s deploy models from this checkout '
                        'of github.com/DingXiaoH/RepMLP (the commit before the RepMLPNet '
                        'rewrite, with repmlp_resnet.py)')
    # Where a process running one of several batch sizes leaves its results for the parent.
    parser.add_argument('--results-file', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.device = resolve_device(args.device)
    if args.paths is None:
        args.paths = list(QUICK_PATHS if args.quick else PATHS)
        if args.device.type == 'cuda':  # int8 is the x86 backend's, the artifacts CPU ones
            args.paths = [p for p in args.paths if p not in ('int8', *EXPORTED_PATHS)]
    if args.quick:
        if args.batches == parser.get_default('batches'):
            args.batches = [2]
        args.rounds, args.warmup, args.img_size = 1, 1, 32
    if min(*args.batches, args.rounds, args.threads) < 1 or args.warmup < 0:
        parser.error('--batches, --rounds and --threads must be >= 1 and --warmup >= 0')
    if args.official_v1:
        unknown = set([BASELINE, *args.presets]) - set(OFFICIAL_PRESETS)
        if args.quick or unknown or args.img_size != 224:
            parser.error('--official-v1 times the 224x224 ImageNet presets '
                         f'{", ".join(OFFICIAL_PRESETS)}; drop --quick, --img-size and other '
                         'presets')
        if not osp.isfile(osp.join(args.official_v1, 'repmlp_resnet.py')):
            parser.error(f'--official-v1 {args.official_v1}: no repmlp_resnet.py there; give a '
                         'checkout of github.com/DingXiaoH/RepMLP at the commit before its '
                         'RepMLPNet rewrite (git checkout 82c0ea6~1)')
        args.paths.append(OFFICIAL_PATH)
    return args


def with_layouts(models, layouts):
    """``models`` and, for every model with RepMLP blocks and every layout but the kept one,
    a copy computing them in that layout, named ``'<name> [<layout>]'``."""
    extra = []
    for layout in layouts:
        if layout == KEPT_LAYOUT:
            continue
        for entry in models:
            if deploy_layers(entry.model):
                model = use_deploy_layout(copy.deepcopy(entry.model), layout)
                extra.append(BenchmarkModel(f'{entry.name} [{layout}]', model,
                                            entry.input_shape))
    return [*models, *extra]


def model_specs(args):
    if args.quick:
        return [ModelSpec(QUICK_CONFIG, deploy=True, cfg_options=QUICK_OPTIONS,
                          name='pure-mlp (2 RepMLPs)')]
    return [ModelSpec(CONFIG.format(name), deploy=True, name=name,
                      cfg_options={'model.backbone.img_size': args.img_size})
            for name in dict.fromkeys([BASELINE, *args.presets])]


# ---------------------------------------------------------------------------- the paths
def build_path(path, model, example, device, workdir, log=print):
    """``path``'s callable on a batch ``(N, C, H, W)``; it expects no grad. ``log`` gets the
    int8 quantization's line."""
    quiet = dict(log=lambda line: None)
    if path == 'eager':
        return raw_forward(model)
    if path == 'channels_last':
        return raw_forward(optimize_for_inference(model, backend='eager', channels_last=True,
                                                  device=device, **quiet))
    if path == 'optimized':
        return raw_forward(optimize_for_inference(model, device=device, **quiet))
    if path == 'bf16':
        return raw_forward(optimize_for_inference(model, dtype=torch.bfloat16, device=device,
                                                  **quiet))
    if path == 'int8':
        calibration = [torch.randn_like(example) for _ in range(CALIBRATION_BATCHES)]
        # Its line says where the build's time goes (before the first call compiles).
        return raw_forward(quantize_int8(model, calibration,
                                         log=lambda line: log(f'# {line}', flush=True)))
    return export_and_load(path, model, example, workdir)


def raw_forward(model):
    return lambda inputs: forward_raw(model, inputs)


def artifact_path(path, model, example, workdir):
    return osp.join(workdir, f'{id(model)}_{len(example)}.{path}')


def export_and_load(path, model, example, workdir):
    """Export a copy of ``model`` at the example's batch size with
    :mod:`mmrepmlp.deployment.export` and load the artifact into its runtime."""
    target = artifact_path(path, model, example, workdir)
    exporter = export_pt2 if path == 'pt2' else export_onnx
    exporter(copy.deepcopy(model), target, example, log=lambda line: None)
    return load_artifact(path, target)


def load_artifact(path, target):
    """The callable that runs an exported artifact: AOTInductor's, or onnxruntime's (CPU)."""
    if path == 'pt2':
        return torch._inductor.aoti_load_package(target)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(target, options, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return lambda inputs: session.run(None, {name: inputs.numpy()})


def official_twins(models, args):
    """Name -> the official v1 code's deploy model of that preset, holding the same weights.

    The weights go through the official importer's key mapping backwards: every official key
    is renamed as the importer renames it and takes the mmrepmlp tensor of that name.
    """
    sys.path.insert(0, osp.abspath(args.official_v1))
    import repmlp_resnet

    twins = {}
    for entry in models:
        official = repmlp_resnet.RepMLPResNet(img_H=args.img_size, img_W=args.img_size,
                                              **OFFICIAL_ARGUMENTS, **OFFICIAL_PRESETS[entry.name])
        ours = channel_major_state_dict(entry.model)
        official.load_state_dict({
            key: ours[official_key_to_mmrepmlp(key)].reshape(tensor.shape)
            for key, tensor in official.state_dict().items()})
        official = official.eval().to(args.device)
        example = torch.randn(2, *entry.input_shape, device=args.device)
        with torch.no_grad():
            expected, actual = forward_raw(entry.model, example), official(example)
        difference = Task().compare_outputs([expected], [actual])[1]  # NaN if not finite
        if not difference <= OFFICIAL_TOLERANCE:
            sys.exit(f'the official v1 {entry.name} computes something else than mmrepmlp\'s '
                     f'with the same weights (largest relative difference {difference:.1e}); '
                     'is the checkout the v1 code?')
        print(f'# official v1 {entry.name}: same weights, largest relative difference of the '
              f'logits {difference:.1e}', file=sys.stderr, flush=True)
        twins[entry.name] = official
    return twins


def channel_major_state_dict(model):
    """``model``'s state dict with the deploy FCs of its RepMLP blocks in the channel-major
    order of the official code (mmrepmlp's deploy form stores them partition-major)."""
    state = dict(model.state_dict())
    for name, block in model.named_modules():
        if not (isinstance(block, RepMLPBlock) and block.deploy):
            continue
        prefix = f'{name}.' if name else ''
        with torch.no_grad():
            fcs = dict(zip(('fc1', 'fc2', 'fc3'), channel_major_fcs(block)))
        state.update({f'{prefix}{fc}.{part}': tensor for fc, params in fcs.items()
                      if params is not None for part, tensor in zip(('weight', 'bias'), params)})
    return state


# ---------------------------------------------------------------------------- measuring
def measure(models, twins, batch, args, workdir):
    """Per ``(model name, path)`` at ``batch``: seconds of the first call (building the path
    included), of loading an exported artifact and its first call, and of a steady step.
    ``twins``: the official v1 models by name, for the ``official-v1`` path."""
    steps, first_call, load_call, compiling = {}, {}, {}, {}
    for entry in models:
        example = torch.randn(batch, *entry.input_shape, device=args.device)
        for path in args.paths:
            key = entry.name, path
            if path == OFFICIAL_PATH and entry.name not in twins:
                continue  # a deploy layout reference has no official counterpart
            build = (functools.partial(twins.get, entry.name) if path == OFFICIAL_PATH else
                     functools.partial(build_path, path, entry.model, example, args.device,
                                       workdir))
            timers = compile_timers()
            first_call[key], run = timed_first_call(build, example, args.device)
            # the exported paths compile at export, through other timers
            compiling[key] = compile_phases_since(timers) if path in COMPILED_PATHS else {}
            if path in EXPORTED_PATHS:
                target = artifact_path(path, entry.model, example, workdir)
                load_call[key], run = timed_first_call(
                    functools.partial(load_artifact, path, target), example, args.device)
            steps[key] = no_grad_step(run, example)
            print(f'# built {entry.name} {path} at batch {batch}: first call '
                  f'{first_call[key]:.1f} s{_phases_text(compiling[key])}', file=sys.stderr,
                  flush=True)
    seconds = measure_interleaved(steps, warmup=args.warmup, rounds=args.rounds,
                                  device=args.device)
    return first_call, load_call, compiling, seconds


def compile_timers():
    """Dynamo's and inductor's timers (``{timer: [seconds of each call]}``), each with the
    number of calls it has timed so far."""
    from torch._dynamo.utils import compilation_time_metrics

    return {timer: (calls, len(calls)) for timer, calls in compilation_time_metrics.items()}


def compile_phases_since(timers):
    """Seconds spent in each phase of :data:`COMPILE_PHASES` since :func:`compile_timers`
    returned ``timers`` (``torch._dynamo.reset()``, which torch.export calls, starts the
    timers' lists anew)."""
    from torch._dynamo.utils import compilation_time_metrics

    def seconds(timer):
        calls = compilation_time_metrics.get(timer, [])
        earlier, count = timers.get(timer, (None, 0))
        return sum(calls[count:] if calls is earlier else calls)

    return {label: seconds(timer) - (seconds(nested) if nested else 0.0)
            for label, timer, nested in COMPILE_PHASES}


def _phases_text(phases):
    """``'; compiling: tracing 1.2 s, ...'``, or nothing for a build that compiled nothing
    (or was not timed by phase)."""
    if not any(phases.values()):
        return ''
    return '; compiling: ' + ', '.join(f'{phase} {seconds:.1f} s'
                                       for phase, seconds in phases.items())


def timed_first_call(build, example, device):
    """Seconds to ``build()`` a path and run it once on ``example``, and the path."""

    def build_and_call():
        run = build()
        with torch.no_grad():
            run(example)
        return run

    return time_call(build_and_call, device=device)


# ---------------------------------------------------------------------------- breakdown
def breakdown(models, batch, args):
    """Per ``(model name, path)`` of :data:`BREAKDOWN_PATHS`: seconds of the replaced blocks
    (None without them) and of the RepMLP layers, and the latter's seconds in matmuls (None
    without RepMLP layers)."""
    positions = replaced_positions(models)
    paths = [p for p in BREAKDOWN_PATHS if p in args.paths]
    rows, block_steps = {}, {}
    for path in paths:
        for entry in models:
            rows[entry.name, path] = time_layers(entry, path, batch, args)
            # Each layer's compiled code holds a copy of its weights; the layers are timed.
            release_compiled_code()
    for path in paths:
        for entry in models:
            parts = replaced_blocks(entry.model, positions)
            inputs = path_inputs(entry, path, batch, parts, args)
            for name, blocks in parts.items():
                run = build_path(path, blocks, inputs[name], args.device, None, _silent)
                block_steps[entry.name, path, name] = no_grad_step(run, inputs[name])
            print(f'# breakdown: built {entry.name} {path} at batch {batch}', file=sys.stderr,
                  flush=True)
    seconds = measure_interleaved(block_steps, warmup=args.warmup, rounds=args.rounds,
                                  device=args.device)
    for (name, path, _), s in seconds.items():
        rows[name, path]['blocks'] = (rows[name, path]['blocks'] or 0) + s
    return rows, positions


def time_layers(entry, path, batch, args):
    """The row of ``entry`` on ``path``: its RepMLP layers' seconds and their matmuls', each
    layer built by the path on its own and profiled."""
    layers = deploy_layers(entry.model)
    inputs = path_inputs(entry, path, batch, layers, args)
    layer_s = matmul_s = None
    for name, layer in layers.items():
        step = no_grad_step(build_path(path, layer, inputs[name], args.device, None, _silent),
                            inputs[name])
        for _ in range(max(1, args.warmup)):
            step()
        total, in_matmuls = time_in_ops(step, calls=max(3, args.rounds))
        layer_s, matmul_s = (layer_s or 0) + total, (matmul_s or 0) + in_matmuls
    macs = sum(layer_macs(layer, batch) for layer in layers.values())
    return dict(layers=layer_s, matmuls=matmul_s, blocks=None, macs=macs)


def path_inputs(entry, path, batch, modules, args):
    """``{name: input}`` of ``modules`` (by name) in ``entry``'s model on a random batch, in
    the memory format (and for bf16 the dtype) ``path`` runs them in."""
    example = torch.randn(batch, *entry.input_shape, device=args.device)
    dtype = torch.bfloat16 if path == 'bf16' else torch.float32
    return {name: x.to(dtype, memory_format=torch.channels_last)
            for name, x in captured_inputs(entry.model, example, modules).items()}


def layer_macs(layer, batch):
    """Multiply-accumulates of a RepMLP layer's FCs on a batch: FC3 on every partition, FC1
    and FC2 once per image."""
    macs = math.prod(layer.num_parts) * layer.fc3.weight.numel()
    if layer.with_global:
        macs += layer.fc1.weight.numel() + layer.fc2.weight.numel()
    return batch * macs


def _silent(*args, **kwargs):
    pass


def replaced_positions(models):
    """``{stage name: [block indices]}`` of the RepMLP blocks of the RepMLP-ResNet models (the
    same in every preset, as in the paper); empty for other models."""
    positions = {}
    for entry in models:
        backbone = getattr(entry.model, 'backbone', None)
        for i, stage in enumerate(getattr(backbone, 'stage_cfgs', ())):
            if stage.repmlp_blocks:
                positions[f'stage{i + 1}'] = sorted(stage.repmlp_blocks)
    return positions


def replaced_blocks(model, positions):
    """``{name: nn.Sequential}`` of ``model``'s blocks at ``positions`` (consecutive blocks
    of a stage run as one sequence)."""
    backbone = getattr(model, 'backbone', None)
    if backbone is None or not positions:
        return {}
    return {f'backbone.{stage}': nn.Sequential(
        *(getattr(backbone, stage)[i] for i in indices)).eval()
            for stage, indices in positions.items()}


def captured_inputs(model, example, modules):
    """``{name: the input that module receives}`` in one forward of ``model`` on
    ``example``; a sequence of blocks receives its first block's."""
    inputs, hooks = {}, []
    for name, module in modules.items():
        first = module[0] if isinstance(module, nn.Sequential) else module
        hooks.append(first.register_forward_pre_hook(
            lambda _, args, name=name: inputs.__setitem__(name, args[0])))
    try:
        with torch.no_grad():
            forward_raw(model, example)
    finally:
        for hook in hooks:
            hook.remove()
    return inputs


def print_breakdown(rows, positions, seconds, batch, args):
    """The breakdown table; ``seconds``: the whole models' (the report's), for the ceiling."""
    where = ', '.join(f'{stage} blocks {", ".join(map(str, indices))}'
                      for stage, indices in positions.items()) or 'none'
    baseline = next(iter(rows))[0]
    print(f'\n## batch {batch}, breakdown (ms): "replaced blocks" = the blocks at the RepMLP '
          f'positions ({where}), each run built by the path on its own, median of '
          f'{args.rounds} interleaved rounds; "RepMLP layers" = each RepMLP layer built by the '
          f'path on its own, profiled over {max(3, args.rounds)} calls: its matmuls (FC1, FC2, '
          'FC3; their GMAC/s) and the rest (copies, the Global Perceptron\'s pooling and add, '
          'quantize and dequantize, the calls\' overhead); inputs captured from the model, '
          f'channels_last (bf16: in bfloat16); "ceiling" = {baseline} / (the model - the '
          'rest), its speed ratio if the rest were free')
    print('| model | path | replaced blocks | RepMLP layers | matmuls | matmul GMAC/s | rest '
          '| rest / matmuls | ceiling |')
    print('|---|---|---:|---:|---:|---:|---:|---:|---:|')
    for (name, path), row in rows.items():
        blocks = '-' if row['blocks'] is None else f'{row["blocks"] * 1e3:.1f}'
        if row['layers'] is None:
            layers = '- | - | - | - | - | -'
        else:
            rest = row['layers'] - row['matmuls']
            remaining = seconds[name, path] - rest
            ceiling = (f'{seconds[baseline, path] / remaining:.2f}x' if remaining > 0 else
                       'noisy')
            layers = (f'{row["layers"] * 1e3:.1f} | {row["matmuls"] * 1e3:.1f} | '
                      f'{row["macs"] / row["matmuls"] / 1e9:.0f} | {rest * 1e3:.1f} | '
                      f'{rest / row["matmuls"]:.0%} | {ceiling}')
        print(f'| {name} | {path} | {blocks} | {layers} |')


# ---------------------------------------------------------------------------- report
def fastest(seconds, name, paths):
    """``(path, seconds)`` of the fastest of ``paths`` timed for model ``name``; ``(None,
    None)`` when none was."""
    timed = [(path, seconds[name, path]) for path in paths if (name, path) in seconds]
    return min(timed, key=lambda item: item[1]) if timed else (None, None)


def print_report(names, batch, first_call, load_call, seconds, args):
    paths = args.paths
    baseline = names[0]
    print(f'\n## batch {batch}: images/s (first call s[; load + first call of the artifact '
          f's]) ratio, median of {args.rounds} interleaved rounds; ratio = vs the same '
          'model\'s eager float32')
    print('| model | ' + ' | '.join(paths) + ' |')
    print('|---|' + '---:|' * len(paths))
    for name in names:
        cells = []
        for path in paths:
            if (name, path) not in seconds:
                cells.append('-')
                continue
            s = seconds[name, path]
            ratio = seconds[name, 'eager'] / s if 'eager' in paths else 1.0
            load = f'; {load_call[name, path]:.1f} s' if (name, path) in load_call else ''
            cells.append(f'{batch / s:.1f} ({first_call[name, path]:.1f} s{load}) {ratio:.2f}x')
        print(f'| {name} | ' + ' | '.join(cells) + ' |')
    best = {(name, precision): fastest(seconds, name, precision_paths)
            for name in names for precision, precision_paths in PRECISIONS.items()}
    print(f'# {baseline}\'s fastest path of each precision: ' + ', '.join(
        f'{precision} {path} ({batch / s:.1f} images/s)'
        for precision in PRECISIONS for path, s in [best[baseline, precision]] if path))
    for name in names[1:]:
        print(f'ratio {name}: ' + '; '.join(
            _precision_ratios(best, name, baseline, precision) for precision in PRECISIONS
            if best[name, precision][0]) + _official_ratio(seconds, best, name, paths))


def _precision_ratios(best, name, baseline, precision):
    """``'<precision> (<path>) R.RRx <baseline>'s <precision>[, R.RRx its float32]'``."""
    path, s = best[name, precision]
    text = f'{precision} ({path})'
    if best[baseline, precision][0]:
        text += f' {best[baseline, precision][1] / s:.2f}x {baseline}\'s {precision}'
    float32_s = best[name, 'float32'][1]
    if precision != 'float32' and float32_s:
        text += f', {float32_s / s:.2f}x its float32'
    return text


def _official_ratio(seconds, best, name, paths):
    if OFFICIAL_PATH not in paths or (name, OFFICIAL_PATH) not in seconds:
        return ''
    return (f'; float32 {seconds[name, OFFICIAL_PATH] / best[name, "float32"][1]:.2f}x the '
            'official v1 deploy model (eager, same weights)')


@contextlib.contextmanager
def fresh_compile_cache(workdir):
    """Inductor's on-disk caches in ``workdir`` meanwhile, so that every first call compiles
    as in a new deployment, whatever earlier runs left in the user's cache."""
    previous = os.environ.get(CACHE_VARIABLE)
    os.environ[CACHE_VARIABLE] = osp.join(workdir, 'inductor')
    try:
        yield
    finally:
        if previous is None:
            del os.environ[CACHE_VARIABLE]
        else:
            os.environ[CACHE_VARIABLE] = previous


def release_compiled_code():
    """Drop Dynamo's compiled code of the paths just timed: its frozen graphs keep copies of
    the models' weights, which would otherwise pile up over the batch sizes and breakdowns."""
    torch._dynamo.reset()
    gc.collect()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if len(args.batches) > 1:
        return run_batches_apart(argv, args.batches)
    torch.set_num_threads(args.threads)
    # Every model, batch size and path compiles its own code of the same functions: more
    # than Dynamo's default of 8 per function, after which it would silently run eagerly.
    torch._dynamo.config.recompile_limit = torch._dynamo.config.accumulated_recompile_limit = (
        10_000)
    # A WARNING-level current logger silences init_weights' line per parameter.
    MMLogger.get_instance('deploy_speed', log_level='WARNING')
    print(machine_lines(args.device, [f'{args.img_size}x{args.img_size}, deploy forms'],
                        args.rounds))
    torch.manual_seed(0)
    models = build_benchmark_models(model_specs(args), device=args.device)
    twins = official_twins(models, args) if args.official_v1 else {}
    models = with_layouts(models, args.layouts)
    names = [entry.name for entry in models]
    results = {}
    with tempfile.TemporaryDirectory() as workdir, fresh_compile_cache(workdir):
        for batch in args.batches:
            first_call, load_call, compiling, seconds = measure(models, twins, batch, args,
                                                                workdir)
            release_compiled_code()
            print_report(names, batch, first_call, load_call, seconds, args)
            results[batch] = dict(first_call=first_call, load_call=load_call,
                                  compiling=compiling, seconds=seconds)
            if args.breakdown:
                rows, positions = breakdown(models, batch, args)
                release_compiled_code()
                print_breakdown(rows, positions, seconds, batch, args)
                results[batch]['breakdown'] = rows
    print(load_average_line())
    if args.results_file:
        with open(args.results_file, 'wb') as file:
            pickle.dump(results, file)
    return results


def run_batches_apart(argv, batches):
    """Run each batch size in a process of its own, in turn, its report on this process's
    output: every path of every model stays built through a batch size's rounds, and only a
    process's end returns all of that memory (the default four models at batch 1, 8 and 64
    outgrew 24 GB in one process). Returns the results of all batch sizes."""
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for batch in batches:
            results_file = osp.join(workdir, f'{batch}.pickle')
            sys.stdout.flush()
            returncode = subprocess.run([
                sys.executable, osp.abspath(__file__), *argv, '--batches', str(batch),
                '--results-file', results_file
            ]).returncode
            if returncode:
                sys.exit(f'error: the run at batch {batch} failed (exit status {returncode}'
                         f'{"; killed, out of memory?" if returncode < 0 else ""}); rerun '
                         f'that batch size with fewer --presets or --paths')
            with open(results_file, 'rb') as file:
                results.update(pickle.load(file))
    return results


if __name__ == '__main__':
    main()
