"""Inference speed (images/s and latency) of a model, or of two models side by side.

    python tools/analysis_tools/benchmark.py CONFIG [CHECKPOINT] [--deploy | --optimize]
        [--batch N] [--vs CONFIG2 [--vs-deploy | --vs-optimize]] [--rounds R] [--warmup W]
        [--shape H W] [--device cpu|cuda] [--verbose]

With --vs both models run in interleaved rounds and a ratio line compares them. --deploy
converts the first model, --vs-deploy the second: ``CONFIG --deploy --vs CONFIG`` compares the
deploy form with the training form. --optimize (--vs-optimize) runs the model as
``optimize_for_inference`` makes it (deploy form, channels_last, torch.compile); its first
warm-up round compiles: ``CONFIG --optimize --vs CONFIG --vs-deploy`` shows what that gains.
The report opens with the machine lines (processor and its flags, torch threads, load average
before and after the measurement); MMEngine's log of building the models is shown with
--verbose only.
"""
import argparse

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.analysis import load_average, machine_lines
from mmrepmlp.apis import ModelSpec, benchmark_models
from mmrepmlp.apis.benchmark import format_results, resolve_device
from mmrepmlp.apis.cli import tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Measure inference speed.')
    parser.add_argument('config', help='the model config')
    parser.add_argument('checkpoint', nargs='?', help='weights (optional; random otherwise)')
    parser.add_argument('--deploy', action='store_true',
                        help='convert re-parameterizable modules to the deploy form first')
    parser.add_argument('--optimize', action='store_true',
                        help='run the model as optimize_for_inference makes it (deploy form, '
                        'compiled; the first warm-up round compiles)')
    parser.add_argument('--vs', metavar='CONFIG2', help='a second model to compare with')
    parser.add_argument('--vs-deploy', action='store_true',
                        help='convert the --vs model to the deploy form first')
    parser.add_argument('--vs-optimize', action='store_true',
                        help='run the --vs model as optimize_for_inference makes it')
    parser.add_argument('--batch', type=int, default=1, help='images per forward pass')
    parser.add_argument('--rounds', type=int, default=10, help='timed rounds (median)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: each config's own)")
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='where to run (default: cuda when available)')
    parser.add_argument('--verbose', action='store_true',
                        help="also print MMEngine's log of building the models")
    return parser.parse_args(argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    specs = [ModelSpec(args.config, args.checkpoint, args.deploy, optimize=args.optimize)]
    if args.vs:
        specs.append(ModelSpec(args.vs, deploy=args.vs_deploy, optimize=args.vs_optimize))
    device = resolve_device(args.device)
    load_before = load_average()
    results = benchmark_models(specs, args.batch, args.shape, args.warmup, args.rounds, device,
                               args.verbose)
    print(machine_lines(device, [f'batch {args.batch}'], args.rounds, load_before))
    print(format_results(results))


if __name__ == '__main__':
    main()
