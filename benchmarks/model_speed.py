"""RepMLP-Res50 vs ResNet-50: speed, training step, peak memory and conversion time, one run.

ResNet-50 is the ``res50-base`` preset of :class:`~mmrepmlp.models.RepMLPResNet` (in deploy
form a plain ResNet-50 with every BN fused into its conv). Every model is a classifier:
backbone -> global average pool -> a 1000-way linear head. For ResNet-50 and each RepMLP-Res50
preset the script measures, all models interleaved in the same rounds
(:func:`mmrepmlp.analysis.measure_interleaved`, median of the rounds) so that the ratios
printed are comparable under a shared, noisy machine:

- deploy images/s (eval mode, no grad, after ``switch_to_deploy()``), and its ratio to
  ResNet-50's (> 1: faster);
- one training step (train form: forward, cross-entropy, backward, SGD with momentum), and its
  time relative to ResNet-50's (< 1: faster);
- the time of ``switch_to_deploy()`` on the whole model (median over fresh copies);
- peak memory of one deploy forward and of one training step: on CPU the peak resident set
  of a fresh subprocess per model and mode, less the interpreter's size after the imports
  (so weights, gradients, optimizer state and activations count); on CUDA
  ``torch.cuda.max_memory_allocated`` during the step.

    python benchmarks/model_speed.py [--batch 8] [--threads 2] [--rounds 5] [--img-size 224]
        [--presets res50-light-g8 ...] [--device cpu|cuda] [--amp] [--channels-last]
        [--no-train] [--no-memory] [--breakdown] [--quick]

The project's performance targets (CPU, batch 8, 2 threads, 224; docs/performance.md) are
printed beside the measured ratios; they are reported, not asserted.
"""
import argparse
import copy
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger

from mmrepmlp.analysis import count_params, measure_interleaved
from mmrepmlp.models.backbones import RepMLPResNet

BASELINE = 'res50-base'
REFERENCE = 'torchvision resnet50'
PRESETS_224 = ('res50-light-g8', 'res50-light-g4', 'res50-g8g8')
QUICK_PRESETS = ('res50-light-g8', )
NUM_CLASSES = 1000
# The performance targets at 224 on CPU (docs/performance.md): preset -> (what, comparison,
# bound).
TARGETS = {
    'res50-light-g8': [('deploy speed vs ResNet-50', '>=', 1.2),
                       ('training step time vs ResNet-50', '<=', 1.2)],
    'res50-g8g8': [('deploy speed vs ResNet-50', '>=', 1.0)],
    'res50-light-g4': [('switch_to_deploy() seconds', '<=', 0.5)],
}


def _quiet_mmengine_logs():
    """Make a WARNING-level logger current, silencing init_weights' line per parameter."""
    if not MMLogger.check_instance_created('model_speed'):
        MMLogger.get_instance('model_speed', log_level='WARNING')


class Classifier(nn.Module):
    """RepMLPResNet -> global average pool -> linear head (the ImageNet classifier's shape)."""

    def __init__(self, arch, img_size, deploy=False):
        super().__init__()
        self.backbone = RepMLPResNet(arch=arch, img_size=img_size, deploy=deploy)
        self.head = nn.Linear(self.backbone.out_channels[-1], NUM_CLASSES)
        # The backbone's own initialization keeps activations O(1) through the depth; the
        # bare PyTorch defaults shrink them towards denormal floats, which are many times
        # slower on CPU and would make the timings meaningless.
        _quiet_mmengine_logs()
        self.backbone.init_weights()

    def forward(self, x):
        return self.head(self.backbone(x)[-1].mean(dim=(2, 3)))

    def switch_to_deploy(self):
        self.backbone.switch_to_deploy()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch', type=int, default=8, help='images per step (default 8)')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch intra-op threads on CPU (default 2)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='timed interleaved rounds, the median is reported (default 5)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds (default 2)')
    parser.add_argument('--img-size', type=int, default=224, help='input size (default 224)')
    parser.add_argument('--presets', nargs='+', default=None,
                        help=f'RepMLPResNet presets compared with {BASELINE} '
                        f'(default: {" ".join(PRESETS_224)})')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default cpu)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (float16 autocast, gradient scaling); CUDA only')
    parser.add_argument('--channels-last', action='store_true',
                        help='models and inputs in channels_last memory format')
    parser.add_argument('--no-train', action='store_true', help='skip the training step')
    parser.add_argument('--no-memory', action='store_true', help='skip peak memory')
    parser.add_argument('--breakdown', action='store_true',
                        help='also time, in the deploy forward, the blocks that RepMLP '
                        'replaces (vs the rest of the network) and the RepMLP layers in them')
    parser.add_argument('--quick', action='store_true',
                        help='CI smoke run: batch 2, 1 round, 1 warm-up, img-size 112, '
                        f'presets {" ".join(QUICK_PRESETS)} unless given')
    parser.add_argument('--memory-probe', nargs=2, metavar=('PRESET', 'MODE'),
                        help=argparse.SUPPRESS)  # internal: one subprocess's measurement
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.warmup, args.img_size = 2, 1, 1, 112
    if args.presets is None:
        args.presets = list(QUICK_PRESETS if args.quick else PRESETS_224)
    unknown = [p for p in [*args.presets] if p not in RepMLPResNet.arch_settings]
    if unknown:
        parser.error(f'unknown presets {unknown}; choose from '
                     f'{sorted(RepMLPResNet.arch_settings)}')
    args.presets = [p for p in args.presets if p != BASELINE]
    args.device = torch.device(args.device)
    if args.device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA GPU is visible; use --device cpu')
    if args.amp and args.device.type != 'cuda':
        parser.error('--amp needs --device cuda (float16 autocast on CPU is not a speed-up)')
    if min(args.batch, args.rounds, args.threads) < 1 or args.warmup < 0:
        parser.error('--batch, --rounds and --threads must be >= 1 and --warmup >= 0')
    return args


# ---------------------------------------------------------------------------- model steps
def _prepare(model, args):
    model = model.to(args.device)
    return model.to(memory_format=torch.channels_last) if args.channels_last else model


def torchvision_resnet50(args):
    """torchvision's ResNet-50 with every BN folded into its conv (``torch.fx``), deploy-ready.

    Timed beside ``res50-base`` for reference only, to show whether the baseline of the
    ratios is a fair one; the ratios and targets use ``res50-base``.
    """
    import torchvision
    from torch.fx.experimental.optimization import fuse

    return _prepare(fuse(torchvision.models.resnet50(num_classes=NUM_CLASSES).eval()), args)


def make_inputs(args, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(args.batch, 3, args.img_size, args.img_size, generator=generator)
    labels = torch.randint(NUM_CLASSES, (args.batch, ), generator=generator)
    images = images.to(args.device)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(args.device)


def _autocast(args):
    return torch.autocast('cuda', dtype=torch.float16) if args.amp else nullcontext()


def deploy_step(model, images, args):
    """One inference forward of a deploy model."""
    model.eval()

    def run():
        with torch.no_grad(), _autocast(args):
            model(images)

    return run


def training_step(model, images, labels, args):
    """Forward, cross-entropy, backward and one SGD step of a train-form model."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler('cuda', enabled=args.amp)

    def run():
        optimizer.zero_grad(set_to_none=True)
        with _autocast(args):
            loss = F.cross_entropy(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return run


def _synchronize(args):
    if args.device.type == 'cuda':
        torch.cuda.synchronize(args.device)


def time_switch_to_deploy(train_models, args):
    """Median seconds of ``switch_to_deploy()`` per model over fresh copies, interleaved.

    Returns the timings and the deploy models (the last converted copies).
    """
    times = {name: [] for name in train_models}
    deploy_models = {}
    for _ in range(args.rounds):
        for name, model in train_models.items():
            converted = copy.deepcopy(model).eval()
            _synchronize(args)
            start = time.perf_counter()
            converted.switch_to_deploy()
            _synchronize(args)
            times[name].append(time.perf_counter() - start)
            deploy_models[name] = converted
    return {name: statistics.median(ts) for name, ts in times.items()}, deploy_models


# ---------------------------------------------------------------------------- breakdown
def _replaced_blocks(model):
    """``(stage name, block index)`` of every RepMLP block of ``model``."""
    return [(f'stage{i + 1}', j) for i, cfg in enumerate(model.backbone.stage_cfgs)
            for j in sorted(cfg['repmlp_blocks'])]


def _block_inputs(model, images, positions):
    """The input each block at ``positions`` receives in one forward of ``model``."""
    inputs, hooks = {}, []
    for stage, index in positions:
        block = getattr(model.backbone, stage)[index]
        hooks.append(block.register_forward_pre_hook(
            lambda module, args, key=(stage, index): inputs.__setitem__(key, args[0])))
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    return inputs


def _blocks_step(model, inputs):
    blocks = [(getattr(model.backbone, stage)[index], x) for (stage, index), x in inputs.items()]

    def run():
        with torch.no_grad():
            for block, x in blocks:
                block(x)

    return run


def _fc3_step(model, positions, batch):
    """The FC3 matmuls of the RepMLP blocks at ``positions`` alone, on inputs of their shape.

    Also returns their multiply-accumulates per call.
    """
    layers = [getattr(model.backbone, stage)[index].repmlp for stage, index in positions]
    work = [(layer.fc3, torch.randn(batch * math.prod(layer.num_parts), layer.fc3.in_features,
                                    device=layer.fc3.weight.device)) for layer in layers]

    def run():
        with torch.no_grad():
            for fc3, x in work:
                fc3.features_first(x)

    return run, sum(x.shape[0] * fc3.weight.numel() for fc3, x in work)


SGEMM_SIZE = 2048


def _sgemm_step(device):
    """One large square float32 matmul: the BLAS's best case on this machine, for scale."""
    a, b = (torch.randn(SGEMM_SIZE, SGEMM_SIZE, device=device) for _ in range(2))
    return lambda: a @ b


def breakdown(deploy_models, images, args):
    """Deploy time split into the blocks RepMLP replaces and the rest, measured interleaved.

    The replaced positions are the RepMLP blocks' (the same in every preset of a run, as in
    the paper; the baseline's plain bottlenecks there are the ones RepMLP replaces). The
    RepMLP layers' own share is the time of those blocks minus the time of the same blocks
    with their RepMLP replaced by an identity. The FC3 matmuls of those RepMLP layers are
    also timed alone (the batched matmuls on inputs of their shapes, one after the other):
    the part of the RepMLP layers' time that remains if everything around the matmuls is
    free.

    Returns:
        tuple: name -> dict of seconds ``whole``, ``replaced``, ``repmlp`` and ``fc3``, and
        ``fc3_macs`` (``None`` for the baseline's entries); and the multiply-accumulates/s of
        a large square matmul measured in the same rounds, for scale.
    """
    positions = sorted({pos for model in deploy_models.values()
                        for pos in _replaced_blocks(model)})
    steps, macs = {'sgemm': _sgemm_step(args.device)}, {}
    for name, model in deploy_models.items():
        inputs = _block_inputs(model, images, positions)
        steps[f'{name} whole'] = deploy_step(model, images, args)
        steps[f'{name} replaced'] = _blocks_step(model, inputs)
        if name != BASELINE:
            without = copy.deepcopy(model)
            for stage, index in positions:
                getattr(without.backbone, stage)[index].repmlp = nn.Identity()
            steps[f'{name} without'] = _blocks_step(without, inputs)
            steps[f'{name} fc3'], macs[name] = _fc3_step(model, positions, args.batch)
    seconds = measure_interleaved(steps, warmup=args.warmup, rounds=args.rounds,
                                  device=args.device)
    split = {}
    for name in deploy_models:
        whole, replaced = seconds[f'{name} whole'], seconds[f'{name} replaced']
        if name == BASELINE:
            split[name] = dict(whole=whole, replaced=replaced, repmlp=None, fc3=None,
                               fc3_macs=None)
        else:
            split[name] = dict(whole=whole, replaced=replaced,
                               repmlp=replaced - seconds[f'{name} without'],
                               fc3=seconds[f'{name} fc3'], fc3_macs=macs[name])
    return split, SGEMM_SIZE**3 / seconds['sgemm']


def print_breakdown(split, sgemm_rate, args):
    """The breakdown table, with the best deploy ratio each model could reach if its RepMLP
    layers cost only their FC3 matmuls (at the speed measured here).

    The ceiling takes the rest of the network at ResNet-50's time: it is the same network in
    every model, so its spread between models is noise of the run.
    """
    base = split[BASELINE]
    base_rest = base['whole'] - base['replaced']
    print(f'# deploy time breakdown, batch {args.batch}, median of {args.rounds} interleaved '
          'rounds (ms); "replaced blocks" = the RepMLP blocks\' positions; "FC3 alone" = '
          'their FC3 matmuls timed alone; "ceiling" = ResNet-50 / (ResNet-50\'s rest + '
          'replaced blocks - RepMLP layers + FC3 alone), an estimate of the deploy ratio if '
          'everything in the RepMLP layers but the matmuls were free ("noisy" where the '
          'timings\' noise left that sum without a positive time)')
    print('| model | whole | replaced blocks | rest | RepMLP layers in them | FC3 alone '
          '| FC3 GMAC/s | ceiling vs ResNet-50 |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for name, t in split.items():
        if t['repmlp'] is None:
            extra = '- | - | - | -'
        else:
            # A sum of differences of timings: noise larger than the rest of the network
            # leaves no positive time, and then no ratio to print.
            estimate = base_rest + t['replaced'] - t['repmlp'] + t['fc3']
            ceiling = f'{base["whole"] / estimate:.2f}x' if estimate > 0 else 'noisy'
            extra = (f'{t["repmlp"] * 1e3:.1f} | {t["fc3"] * 1e3:.1f} '
                     f'| {t["fc3_macs"] / t["fc3"] / 1e9:.0f} | {ceiling}')
        print(f'| {name} | {t["whole"] * 1e3:.1f} | {t["replaced"] * 1e3:.1f} '
              f'| {(t["whole"] - t["replaced"]) * 1e3:.1f} | {extra} |')
    print(f'# for scale, in the same rounds: a {SGEMM_SIZE}x{SGEMM_SIZE} by {SGEMM_SIZE}x'
          f'{SGEMM_SIZE} float32 matmul runs at {sgemm_rate / 1e9:.0f} GMAC/s')


# ---------------------------------------------------------------------------- memory
def _peak_rss_mib():
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


def probe_memory(preset, mode, args):
    """Peak memory (MiB) of one step of ``preset`` in ``mode`` ('deploy' or 'train').

    On CPU this runs in a fresh interpreter (see :func:`peak_memory`); the deploy model is
    built directly in deploy form so that building never peaks above the step.
    """
    torch.manual_seed(0)
    images, labels = make_inputs(args)
    baseline = _peak_rss_mib()
    model = _prepare(Classifier(preset, args.img_size, deploy=mode == 'deploy'), args)
    step = (deploy_step(model, images, args) if mode == 'deploy' else
            training_step(model, images, labels, args))
    step()  # the first step allocates the gradients and the optimizer state
    if args.device.type == 'cuda':
        _synchronize(args)
        torch.cuda.reset_peak_memory_stats(args.device)
        step()
        _synchronize(args)
        return torch.cuda.max_memory_allocated(args.device) / 2**20
    step()
    return _peak_rss_mib() - baseline


def _probe_argv(preset, mode, args):
    argv = [sys.executable, os.path.abspath(__file__), '--memory-probe', preset, mode,
            '--batch', str(args.batch), '--threads', str(args.threads),
            '--img-size', str(args.img_size), '--device', str(args.device)]
    return argv + (['--channels-last'] if args.channels_last else [])


def peak_memory(names, modes, args):
    """name -> mode -> peak MiB; on CPU one fresh subprocess per model and mode."""
    peaks = {name: {} for name in names}
    for name in names:
        for mode in modes:
            if args.device.type == 'cuda':
                peaks[name][mode] = probe_memory(name, mode, args)
                torch.cuda.empty_cache()
                continue
            result = subprocess.run(_probe_argv(name, mode, args), capture_output=True,
                                    text=True, check=False)
            if result.returncode:
                raise RuntimeError(f'memory probe of {name} ({mode}) failed:\n{result.stderr}')
            peaks[name][mode] = json.loads(result.stdout.strip().splitlines()[-1])
    return peaks


# ---------------------------------------------------------------------------- report
def _fmt(value, spec):
    return '-' if value is None else format(value, spec)


def print_report(names, results, args, load_before, load_after):
    baseline = results[BASELINE]
    device = (torch.cuda.get_device_name(args.device) if args.device.type == 'cuda' else
              f'CPU, {args.threads} threads')
    print(f'# {device}, batch {args.batch}, {args.img_size}x{args.img_size}, '
          f'{"AMP float16" if args.amp else "float32"}'
          f'{", channels_last" if args.channels_last else ""}, median of {args.rounds} '
          f'interleaved rounds, torch {torch.__version__}')
    print(f'# load average (1 min) {load_before:.2f} before, {load_after:.2f} after')
    print('| model | params (deploy) | deploy img/s | vs ResNet-50 | train step ms '
          '| vs ResNet-50 | peak MiB deploy | peak MiB train | switch_to_deploy s |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
    for name in names:
        r = results[name]
        speed_ratio = r['images_per_s'] / baseline['images_per_s']
        train_ms = None if r['train_s'] is None else r['train_s'] * 1e3
        train_ratio = None if r['train_s'] is None else r['train_s'] / baseline['train_s']
        train_ratio = _fmt(train_ratio, '.2f') + ('' if train_ratio is None else 'x')
        print(f'| {name} | {r["params"] / 1e6:.2f}M | {r["images_per_s"]:.1f} '
              f'| {speed_ratio:.2f}x | {_fmt(train_ms, ".0f")} | {train_ratio} '
              f'| {_fmt(r["peak"].get("deploy"), ".0f")} | {_fmt(r["peak"].get("train"), ".0f")} '
              f'| {r["switch_s"]:.3f} |')
    print('# ratios to ResNet-50: deploy speed (> 1: faster); training step time (< 1: faster)')
    for name in names[1:]:
        r = results[name]
        line = f'ratio {name}: deploy speed {r["images_per_s"] / baseline["images_per_s"]:.2f}x'
        if r['train_s'] is not None:
            line += f', training step time {r["train_s"] / baseline["train_s"]:.2f}x'
        print(line + f' ResNet-50; switch_to_deploy {r["switch_s"]:.3f} s')
    _print_targets(results, args)


def _print_targets(results, args):
    if args.img_size != 224 or args.device.type != 'cpu':
        return
    baseline = results[BASELINE]
    for name, targets in TARGETS.items():
        if name not in results:
            continue
        r = results[name]
        measured = {
            'deploy speed vs ResNet-50': r['images_per_s'] / baseline['images_per_s'],
            'training step time vs ResNet-50': (None if r['train_s'] is None else
                                                r['train_s'] / baseline['train_s']),
            'switch_to_deploy() seconds': r['switch_s'],
        }
        for what, comparison, bound in targets:
            value = measured[what]
            if value is None:
                continue
            met = value >= bound if comparison == '>=' else value <= bound
            print(f'target {name} {what}: {value:.2f} (target {comparison} {bound}) '
                  f'{"met" if met else "NOT met"}')


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        print(json.dumps(probe_memory(*args.memory_probe, args)))
        return None
    if args.device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    load_before = os.getloadavg()[0]
    names = [BASELINE, *args.presets]
    torch.manual_seed(0)
    train_models = {name: _prepare(Classifier(name, args.img_size), args) for name in names}
    switch_s, deploy_models = time_switch_to_deploy(train_models, args)
    images, labels = make_inputs(args)
    deploy_steps = {name: deploy_step(m, images, args) for name, m in deploy_models.items()}
    deploy_steps[REFERENCE] = deploy_step(torchvision_resnet50(args), images, args)
    seconds = measure_interleaved(deploy_steps, warmup=args.warmup, rounds=args.rounds,
                                  device=args.device)
    params = {name: count_params(model) for name, model in deploy_models.items()}
    split = breakdown(deploy_models, images, args) if args.breakdown else None
    del deploy_models
    train_s = dict.fromkeys(names)
    if not args.no_train:
        train_s = measure_interleaved(
            {name: training_step(m, images, labels, args) for name, m in train_models.items()},
            warmup=args.warmup, rounds=args.rounds, device=args.device)
    del train_models
    modes = ('deploy', ) + (() if args.no_train else ('train', ))
    peaks = {name: {} for name in names} if args.no_memory else peak_memory(names, modes, args)
    results = {
        name: dict(params=params[name], images_per_s=args.batch / seconds[name],
                   train_s=train_s[name], switch_s=switch_s[name], peak=peaks[name])
        for name in names
    }
    print_report(names, results, args, load_before, os.getloadavg()[0])
    print(f'# reference: {REFERENCE} with its BNs fused (torch.fx) runs at '
          f'{args.batch / seconds[REFERENCE]:.1f} img/s; {BASELINE} (the "ResNet-50" above) at '
          f'{seconds[REFERENCE] / seconds[BASELINE]:.2f}x its speed')
    if split:
        print_breakdown(*split, args)
    return results


if __name__ == '__main__':
    main()
