"""RepMLPNet-B224 deploy: mmrepmlp's HierRepMLPNet vs MMPretrain's RepMLPNet on the same
weights, eager and each one's fastest path, side by side in one run.

The models are the ImageNet classifiers of ``configs/repmlpnet/repmlpnet-b_8xb32_in1k.py`` and
of MMPretrain's ``repmlp/repmlp-base_8xb64_in1k.py``, built as the tools build them. MMPretrain's
is initialized (its own initialization; speed does not depend on the values), its weights go
into mmrepmlp's through the importer's mapping, and each is converted to its deploy form by its
own code (MMPretrain's ``switch_to_deploy``, mmrepmlp's locality injection); the logits of both
are checked equal on a batch before anything is timed. The paths, for each implementation:

- ``eager``: the deploy model as it is (float32, NCHW);
- ``channels_last``: the same in channels_last memory format;
- ``optimized``: :func:`mmrepmlp.deployment.optimize_for_inference` (float32: channels_last
  where it pays, ``torch.compile`` by inductor with freezing), which compiles either
  implementation alike.

Per batch size, the first call of every path is timed alone (for ``optimized`` it includes the
compilation); then all paths of both run in interleaved rounds
(:func:`mmrepmlp.analysis.measure_interleaved`, median), so that the ratios printed compare
them under the same machine load. Timings are reported, never asserted.

    python benchmarks/repmlpnet_speed.py [--batches 1 8] [--threads 2] [--rounds 5]
        [--warmup 2] [--paths eager channels_last optimized] [--device cpu|cuda] [--quick]

``--quick`` (CI) runs both implementations with a small arch at 32x32, batch 2, one round.
"""
import argparse
import os.path as osp
import sys

import mmengine.utils
import torch
from mmengine.logging import MMLogger

from mmrepmlp.analysis import (
    load_average_line,
    machine_lines,
    measure_interleaved,
    no_grad_step,
    time_call,
)
from mmrepmlp.apis.benchmark import ModelSpec, add_timing_args, build_benchmark_models
from mmrepmlp.deployment import convert_model, forward_raw, optimize_for_inference
from mmrepmlp.models.repmlpnet_import import convert_repmlpnet_state_dict
from mmrepmlp.tasks.base import Task
from mmrepmlp.utils import find_repo_file

OURS, THEIRS = 'mmrepmlp', 'MMPretrain'
CONFIG = osp.join('repmlpnet', 'repmlpnet-b_8xb32_in1k.py')
MMPRETRAIN_CONFIG = osp.join('repmlp', 'repmlp-base_8xb64_in1k.py')
# --quick: RepMLPNet with four small stages (MMPretrain's Global Perceptron needs channels // 4
# to be a multiple of 8) at 32x32, in each implementation's arch keys.
QUICK_ARCH = dict(channels=[32, 64, 64, 128], num_blocks=[1, 1, 2, 1],
                  num_sharesets=[1, 2, 4, 8])
QUICK_OPTIONS = {
    OURS: {'model.backbone.arch': dict(_delete_=True, **QUICK_ARCH)},
    THEIRS: {'model.backbone.arch': dict(_delete_=True, channels=QUICK_ARCH['channels'],
                                         depths=QUICK_ARCH['num_blocks'],
                                         sharesets_nums=QUICK_ARCH['num_sharesets'])},
}
QUICK_SIZE = 32
PATHS = ('eager', 'channels_last', 'optimized')
TOLERANCE = 1e-4  # largest relative difference of the two implementations' logits


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_timing_args(parser, batches=(1, 8), rounds=5, warmup=2)
    parser.add_argument('--paths', nargs='+', choices=PATHS, default=list(PATHS),
                        help=f'paths to time (default: {" ".join(PATHS)})')
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.rounds, args.warmup = [2], 1, 0
    if min(*args.batches, args.rounds, args.threads) < 1 or args.warmup < 0:
        parser.error('--batches, --rounds and --threads must be >= 1 and --warmup >= 0')
    args.device = torch.device(args.device)
    if args.device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA GPU is visible; use --device cpu')
    return args


def model_specs(quick):
    """The two classifiers' configs (MMPretrain's from its installed package)."""
    configs = {OURS: osp.join(find_repo_file('configs'), CONFIG),
               # read at call time: mmrepmlp's compat replaces it (no pkg_resources)
               THEIRS: osp.join(mmengine.utils.get_installed_path('mmpretrain'), '.mim',
                                'configs', MMPRETRAIN_CONFIG)}
    specs = []
    for name, config in configs.items():
        options = {}
        if quick:
            options = {**QUICK_OPTIONS[name], 'model.backbone.img_size': QUICK_SIZE,
                       'model.head.in_channels': QUICK_ARCH['channels'][-1]}
        specs.append(ModelSpec(config, cfg_options=options, name=name))
    return specs


def same_weights_deploy_models(args):
    """``({name: deploy model}, one image's input shape)``: MMPretrain's weights in both, each
    converted by its own code, their logits checked equal."""
    torch.manual_seed(0)
    built = {entry.name: entry for entry in
             build_benchmark_models(model_specs(args.quick), device=args.device)}
    ours, theirs = built[OURS].model, built[THEIRS].model
    ours.load_state_dict(convert_repmlpnet_state_dict(theirs.state_dict()))  # strict
    theirs.backbone.switch_to_deploy()
    convert_model(ours, log=lambda line: None)
    shape = built[OURS].input_shape
    example = torch.randn(2, *shape, device=args.device)
    with torch.no_grad():
        difference = Task().compare_outputs([forward_raw(theirs, example)],
                                            [forward_raw(ours, example)])[1]
    if not difference <= TOLERANCE:  # NaN fails too
        sys.exit(f'mmrepmlp\'s RepMLPNet computes something else than MMPretrain\'s on the same '
                 f'weights (largest relative difference of the logits {difference:.1e})')
    print(f'# same weights: largest relative difference of the deploy logits {difference:.1e}',
          flush=True)
    return {OURS: ours, THEIRS: theirs}, shape


def build_path(path, model, device):
    """``path``'s model (the deploy model, or a copy made by optimize_for_inference)."""
    if path == 'eager':
        return model
    eager_only = dict(backend='eager', channels_last=True) if path == 'channels_last' else {}
    return optimize_for_inference(model, device=device, log=lambda line: None, **eager_only)


def measure(models, shape, batch, args):
    """Per ``(implementation, path)`` at ``batch``: seconds of the first call (building the
    path included) and of a steady step."""
    example = torch.randn(batch, *shape, device=args.device)
    steps, first_call = {}, {}
    for name, model in models.items():
        for path in args.paths:

            def build_and_call(path=path, model=model):
                built = build_path(path, model, args.device)
                with torch.no_grad():
                    forward_raw(built, example)
                return built

            first_call[name, path], built = time_call(build_and_call, device=args.device)
            steps[name, path] = no_grad_step(forward_raw, built, example)
    seconds = measure_interleaved(steps, warmup=args.warmup, rounds=args.rounds,
                                  device=args.device)
    return first_call, seconds


def print_report(batch, first_call, seconds, args):
    print(f'\n## batch {batch}: images/s (first call s), median of {args.rounds} interleaved '
          'rounds')
    print('| implementation | ' + ' | '.join(args.paths) + ' |')
    print('|---|' + '---:|' * len(args.paths))
    for name in (OURS, THEIRS):
        cells = [f'{batch / seconds[name, path]:.2f} ({first_call[name, path]:.1f} s)'
                 for path in args.paths]
        print(f'| {name} | ' + ' | '.join(cells) + ' |')
    best = {name: min(args.paths, key=lambda path: seconds[name, path]) for name in (OURS,
                                                                                     THEIRS)}
    ratios = [f'{path} {seconds[THEIRS, path] / seconds[OURS, path]:.2f}x'
              for path in args.paths]
    print(f'ratio {OURS} / {THEIRS} images/s: {", ".join(ratios)}; best paths '
          f'({OURS} {best[OURS]}, {THEIRS} {best[THEIRS]}) '
          f'{seconds[THEIRS, best[THEIRS]] / seconds[OURS, best[OURS]]:.2f}x')


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    # A WARNING-level current logger silences init_weights' line per parameter.
    MMLogger.get_instance('repmlpnet_speed', log_level='WARNING')
    models, shape = same_weights_deploy_models(args)
    print(machine_lines(args.device, [f'{shape[1]}x{shape[2]}, deploy forms'], args.rounds))
    results = {}
    for batch in args.batches:
        first_call, seconds = measure(models, shape, batch, args)
        print_report(batch, first_call, seconds, args)
        results[batch] = dict(first_call=first_call, seconds=seconds)
    print(load_average_line())
    return results


if __name__ == '__main__':
    main()
