"""RepMLP-Res50 vs ResNet-50: speed, training step, peak memory and conversion time, one run.

Every model is the zoo's RepMLP-Res50 ImageNet classifier
(``configs/repmlp_resnet/repmlp-res50-g8g8_8xb32_in1k.py``: backbone -> global average pool ->
1000-way linear head) with the preset as its backbone's ``arch``, built as the tools build it
(:func:`mmrepmlp.apis.benchmark.build_benchmark_models`, random weights of the model's own
initialization). ResNet-50 is the ``res50-base`` preset (in deploy form a plain ResNet-50 with
every BN fused into its conv). For ResNet-50 and each RepMLP-Res50 preset the script measures,
all models interleaved in the same rounds (:func:`mmrepmlp.analysis.measure_interleaved`,
median of the rounds) so that the ratios printed are comparable under a shared, noisy machine:

- deploy images/s (eval mode, no grad, after ``switch_to_deploy()``), and its ratio to
  ResNet-50's (> 1: faster);
- one training step (train form: forward, cross-entropy, backward, SGD with momentum), and its
  time relative to ResNet-50's (< 1: faster);
- the time of ``switch_to_deploy()`` on the whole model (median over fresh copies);
- peak memory of one deploy forward and of one training step
  (:func:`mmrepmlp.analysis.peak_memory_mib`): on CPU the peak resident set of a fresh
  interpreter per model and mode, less its size after the imports (so weights, gradients,
  optimizer state and activations count); on CUDA ``torch.cuda.max_memory_allocated`` during
  the step.

    python benchmarks/model_speed.py [--batch 8] [--threads 2] [--rounds 5] [--img-size 224]
        [--presets res50-light-g8 ...] [--device cpu|cuda] [--amp] [--channels-last]
        [--no-train] [--no-memory] [--breakdown] [--quick]

The goals these ratios are read against are in docs/performance.md.
"""
import argparse
import copy
import functools
import math
import os.path as osp
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger

from mmrepmlp.analysis import (
    count_params,
    load_average_line,
    machine_lines,
    measure_interleaved,
    no_grad_step,
    peak_memory_mib,
)
from mmrepmlp.apis.benchmark import ModelSpec, build_benchmark_models
from mmrepmlp.models.backbones import RepMLPResNet
from mmrepmlp.utils import find_repo_file

CONFIG = osp.join('repmlp_resnet', 'repmlp-res50-g8g8_8xb32_in1k.py')
BASELINE = 'res50-base'
REFERENCE = 'torchvision resnet50'
PRESETS_224 = ('res50-light-g8', 'res50-light-g4', 'res50-g8g8')
QUICK_PRESETS = ('res50-light-g8', )
# The ResNet-50 family whose last stage fits the classifier's 2048-channel head (not face-*).
CLASSIFIER_PRESETS = sorted(p for p in RepMLPResNet.arch_settings if p.startswith('res50-'))
NUM_CLASSES = 1000


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
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.warmup, args.img_size = 2, 1, 1, 112
    if args.presets is None:
        args.presets = list(QUICK_PRESETS if args.quick else PRESETS_224)
    unknown = [p for p in args.presets if p not in CLASSIFIER_PRESETS]
    if unknown:
        parser.error(f'unknown presets {unknown}; choose from {CLASSIFIER_PRESETS}')
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
def build_classifiers(presets, img_size, device, deploy=False):
    """Name -> the zoo classifier with each preset as its backbone (eval mode, on ``device``);
    with ``deploy`` built directly in deploy form."""
    # A WARNING-level current logger silences init_weights' line per parameter.
    MMLogger.get_instance('model_speed', log_level='WARNING')
    specs = [ModelSpec(osp.join(find_repo_file('configs'), CONFIG), name=preset, cfg_options={
        'model.backbone.arch': preset, 'model.backbone.img_size': img_size,
        'model.backbone.deploy': deploy}) for preset in presets]
    return {entry.name: entry.model
            for entry in build_benchmark_models(specs, device=device)}


def _in_memory_format(model, args):
    return model.to(memory_format=torch.channels_last) if args.channels_last else model


def torchvision_resnet50(args):
    """torchvision's ResNet-50 with every BN folded into its conv (``torch.fx``), deploy-ready.

    Timed beside ``res50-base`` for reference only, to show whether the baseline of the
    ratios is a fair one; the ratios use ``res50-base``.
    """
    import torchvision
    from torch.fx.experimental.optimization import fuse

    model = fuse(torchvision.models.resnet50(num_classes=NUM_CLASSES).eval())
    return _in_memory_format(model.to(args.device), args)


def make_inputs(args, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(args.batch, 3, args.img_size, args.img_size, generator=generator)
    labels = torch.randint(NUM_CLASSES, (args.batch, ), generator=generator)
    images = images.to(args.device)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(args.device)


def _autocast(amp):
    return torch.autocast('cuda', dtype=torch.float16) if amp else nullcontext()


def _forward(model, images, amp):
    with _autocast(amp):
        return model(images)


def deploy_step(model, images, args):
    """One inference forward of a deploy model."""
    return no_grad_step(_forward, model.eval(), images, args.amp)


def training_step(model, images, labels, args):
    """Forward, cross-entropy, backward and one SGD step of a train-form model."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler('cuda', enabled=args.amp)

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(_forward(model, images, args.amp), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return run


def time_switch_to_deploy(train_models, args):
    """Median seconds of ``switch_to_deploy()`` per model over fresh copies (the copying is
    not timed), interleaved.

    Returns the timings and the deploy models (the last converted copies).
    """
    deploy_models = {}

    def convert(name, model):
        model.backbone.switch_to_deploy()
        deploy_models[name] = model

    seconds = measure_interleaved(
        {name: functools.partial(convert, name) for name in train_models}, warmup=0,
        rounds=args.rounds, device=args.device,
        setup={name: functools.partial(_fresh_eval_copy, model)
               for name, model in train_models.items()})
    return seconds, deploy_models


def _fresh_eval_copy(model):
    return copy.deepcopy(model).eval()


# ---------------------------------------------------------------------------- breakdown
def _replaced_blocks(model):
    """``(stage name, block index)`` of every RepMLP block of ``model``."""
    return [(f'stage{i + 1}', j) for i, stage in enumerate(model.backbone.stage_cfgs)
            for j in sorted(stage.repmlp_blocks)]


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


def _call_each(calls):
    for fn, x in calls:
        fn(x)


def _blocks_step(model, inputs):
    return no_grad_step(_call_each, [(getattr(model.backbone, stage)[index], x)
                                     for (stage, index), x in inputs.items()])


def _fc3_step(model, positions, batch):
    """The FC3 matmuls of the RepMLP blocks at ``positions`` alone, on inputs of their shape.

    Also returns their multiply-accumulates per call.
    """
    layers = [getattr(model.backbone, stage)[index].repmlp for stage, index in positions]
    work = [(layer.fc3, torch.randn(layer.groups, batch * math.prod(layer.num_parts),
                                    layer.fc3.in_features // layer.groups,
                                    device=layer.fc3.weight.device)) for layer in layers]
    return (no_grad_step(_call_each, [(fc3.grouped, x) for fc3, x in work]),
            sum(x.shape[1] * fc3.weight.numel() for fc3, x in work))


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
                     f'| {t["fc3_macs"] / t["fc3"] / 1e9:.3g} | {ceiling}')
        print(f'| {name} | {t["whole"] * 1e3:.1f} | {t["replaced"] * 1e3:.1f} '
              f'| {(t["whole"] - t["replaced"]) * 1e3:.1f} | {extra} |')
    print(f'# for scale, in the same rounds: a {SGEMM_SIZE}x{SGEMM_SIZE} by {SGEMM_SIZE}x'
          f'{SGEMM_SIZE} float32 matmul runs at {sgemm_rate / 1e9:.0f} GMAC/s')


# ---------------------------------------------------------------------------- memory
def memory_step(preset, mode, batch, img_size, device, channels_last, amp):
    """One step of ``preset`` in ``mode`` ('deploy' or 'train'), built for
    :func:`~mmrepmlp.analysis.peak_memory_mib`; the deploy model is built directly in deploy
    form so that building never peaks above the step."""
    args = argparse.Namespace(batch=batch, img_size=img_size, device=torch.device(device),
                              channels_last=channels_last, amp=amp)
    torch.manual_seed(0)
    images, labels = make_inputs(args)
    [model] = build_classifiers([preset], img_size, args.device, mode == 'deploy').values()
    model = _in_memory_format(model, args)
    return (deploy_step(model, images, args) if mode == 'deploy' else
            training_step(model, images, labels, args))


def peak_memory(names, modes, args):
    """name -> mode -> peak MiB (on CPU a fresh interpreter per model and mode: models measured
    in one process would reuse each other's freed memory)."""
    options = dict(batch=args.batch, img_size=args.img_size, device=str(args.device),
                   channels_last=args.channels_last, amp=args.amp)
    factory = f'{osp.abspath(__file__)}:memory_step'
    return {name: {mode: peak_memory_mib(factory, dict(preset=name, mode=mode, **options),
                                         args.device) for mode in modes} for name in names}


# ---------------------------------------------------------------------------- report
def _fmt(value, spec):
    return '-' if value is None else format(value, spec)


def print_report(names, results):
    baseline = results[BASELINE]
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


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    print(machine_lines(args.device, [
        f'batch {args.batch}', f'{args.img_size}x{args.img_size}',
        'AMP float16' if args.amp else 'float32', *(['channels_last'] * args.channels_last)],
        args.rounds))
    names = [BASELINE, *args.presets]
    torch.manual_seed(0)
    train_models = {name: _in_memory_format(model, args) for name, model in
                    build_classifiers(names, args.img_size, args.device).items()}
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
    print_report(names, results)
    print(f'# reference: {REFERENCE} with its BNs fused (torch.fx) runs at '
          f'{args.batch / seconds[REFERENCE]:.1f} img/s; {BASELINE} (the "ResNet-50" above) at '
          f'{seconds[REFERENCE] / seconds[BASELINE]:.2f}x its speed')
    if split:
        print_breakdown(*split, args)
    print(load_average_line())
    return results


if __name__ == '__main__':
    main()
