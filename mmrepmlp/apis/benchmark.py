"""Inference speed of the models of one or more configs, measured side by side.

Building the models is this module's; measuring them is the harness's
(:mod:`mmrepmlp.analysis`): every round runs each model once, so a ratio printed by one run
compares the models under the same machine load.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import torch

from ..analysis import count_flops, count_params, measure_interleaved, no_grad_step
from ..deployment import convert_model, optimize_for_inference
from .build import (
    build_model,
    forward_raw,
    input_shape,
    load_config,
    load_weights,
    read_checkpoint,
)
from .cli import ToolError, quiet_mmengine_logs
from .config import fit_config_to_device


@dataclass
class SpeedResult:
    """One model's measurement: ``latency_s`` is the median time of one batch."""
    name: str
    input_shape: tuple
    params: int
    latency_s: float
    batch: int

    @property
    def images_per_s(self):
        return self.batch / self.latency_s


def resolve_device(device=None):
    """``device`` as a ``torch.device``; CUDA by default when there is one."""
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ToolError('--device cuda: no CUDA GPU is visible on this machine; use '
                        '--device cpu')
    return device


@dataclass
class ModelSpec:
    """A model to time: its config, optional weights and config overrides, whether to convert
    it first (``deploy``) or to run it as :func:`~mmrepmlp.deployment.optimize_for_inference`
    makes it (``optimize``: deploy form, compiled; the warm-up rounds compile), and the name to
    report it under (by default the config's file name)."""
    config: str
    checkpoint: Optional[str] = None
    deploy: bool = False
    cfg_options: Optional[dict] = None
    name: Optional[str] = None
    optimize: bool = False


@dataclass
class BenchmarkModel:
    """A built model ready to time: its name, the model and its one-image input shape."""
    name: str
    model: torch.nn.Module
    input_shape: tuple


def build_benchmark_models(specs, shape=None, device=None, verbose=False):
    """Build (and convert, for ``deploy``) the models of ``specs`` in eval mode on ``device``.

    Without CUDA, SyncBN becomes BN as in the tools. Names are made unique. MMEngine's log of
    the weight initialization is shown only when ``verbose``.

    Returns:
        list[BenchmarkModel]: in the order of ``specs``.
    """
    device = resolve_device(device)
    built, taken = [], set()
    for spec in specs:
        cfg = load_config(spec.config, spec.cfg_options)
        if device.type != 'cuda':
            fit_config_to_device(cfg)
        model = build_model(cfg)
        if spec.checkpoint is None:
            # Random weights of the scale the model's own initialization gives: PyTorch's
            # defaults shrink activations towards denormal floats, many times slower on CPU.
            with quiet_mmengine_logs(verbose):
                model.init_weights()
        else:
            load_weights(model, read_checkpoint(spec.checkpoint)[1], spec.checkpoint,
                         spec.config)
        converted = convert_model(model, log=lambda line: None) if spec.deploy else []
        model = model.eval().to(device)
        if spec.optimize:
            model = optimize_for_inference(model, device=device, log=lambda line: None)
        name = _unique_name(spec, bool(converted), taken)
        taken.add(name)
        built.append(BenchmarkModel(name, model, input_shape(cfg, shape)))
    return built


def _unique_name(spec, converted, taken):
    form = ' (optimized)' if spec.optimize else ' (deploy)' if converted else ''
    name = spec.name or osp.splitext(osp.basename(spec.config))[0] + form
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f'{name} #{index}', index + 1
    return candidate


def time_models(models, batch=1, warmup=2, rounds=10, device=None):
    """Time the forward pass of each :class:`BenchmarkModel` on a random batch, all models
    interleaved in the same rounds.

    Returns:
        list[SpeedResult]: in the order of ``models``.
    """
    device = resolve_device(device)
    steps = {m.name: no_grad_step(forward_raw, m.model,
                                  torch.randn(batch, *m.input_shape, device=device))
             for m in models}
    seconds = measure_interleaved(steps, warmup, rounds, device)
    return [SpeedResult(m.name, tuple(m.input_shape), count_params(m.model), seconds[m.name],
                        batch) for m in models]


def benchmark_models(specs, batch=1, shape=None, warmup=2, rounds=10, device=None,
                     verbose=False):
    """Build each spec's model and time its forward pass, all models interleaved.

    Args:
        specs (Sequence[ModelSpec]): the models. Speed does not depend on the weights, but
            the deploy conversion of a trained model uses them.
        batch (int): images per forward pass.
        shape (tuple[int, int], optional): ``(H, W)`` of the inputs; by default each
            config's own input size.
        warmup (int): untimed rounds.
        rounds (int): timed rounds (the median is reported).
        device (str, optional): ``'cpu'`` or ``'cuda'``; CUDA when available by default.
        verbose (bool): show MMEngine's log of building the models.

    Returns:
        list[SpeedResult]: in the order of ``specs``.
    """
    return time_models(build_benchmark_models(specs, shape, device, verbose), batch, warmup,
                       rounds, device)


def format_results(results):
    """A table of the results and, for two or more models, the speed ratio of the first two."""
    lines = [f'{"model":<40} {"input":>14} {"params":>9} {"images/s":>10} {"ms/batch":>9}']
    for r in results:
        shape = 'x'.join(map(str, r.input_shape))
        lines.append(f'{r.name:<40} {shape:>14} {r.params / 1e6:>8.2f}M '
                     f'{r.images_per_s:>10.1f} {r.latency_s * 1e3:>9.2f}')
    if len(results) >= 2:
        first, second = results[:2]
        lines.append(f'ratio {first.name} / {second.name}: '
                     f'{first.images_per_s / second.images_per_s:.3f}x images/s')
    return '\n'.join(lines)


def model_flops(models):
    """``{name: (FLOPs of every layer, MACs of convs and FCs)}`` of built
    :class:`BenchmarkModel` s, for one image of their input shape."""
    return {m.name: (count_flops(m.model, m.input_shape),
                     count_flops(m.model, m.input_shape, conv_fc_only=True)) for m in models}


def add_timing_args(parser, batches, rounds, warmup):
    """The options every benchmark script shares: batches, rounds, threads, device, --quick."""
    parser.add_argument('--batches', type=int, nargs='+', default=list(batches),
                        help=f'batch sizes (default {" ".join(map(str, batches))})')
    parser.add_argument('--rounds', type=int, default=rounds,
                        help=f'timed rounds, the median is reported (default {rounds})')
    parser.add_argument('--warmup', type=int, default=warmup,
                        help=f'untimed rounds first (default {warmup})')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (default 2)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default cpu)')
    parser.add_argument('--quick', action='store_true',
                        help='a tiny run of every measurement: what CI runs')
