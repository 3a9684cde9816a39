"""Inference speed of the models of one or more configs, measured side by side.

Speeds come from :func:`mmrepmlp.analysis.measure_interleaved`: every round runs each model
once, so a ratio printed by one run compares the models under the same machine load.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import torch

from ..analysis import count_params, measure_interleaved
from ..utils.errors import ToolError
from .build import forward_raw, input_shape, load_model
from .deploy import convert_model


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
    """A model to time: its config, optional weights, and whether to convert it first."""
    config: str
    checkpoint: Optional[str] = None
    deploy: bool = False


def _unique_name(spec, converted, taken):
    name = osp.splitext(osp.basename(spec.config))[0] + (' (deploy)' if converted else '')
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f'{name} #{index}', index + 1
    return candidate


def benchmark_models(specs, batch=1, shape=None, warmup=2, rounds=10, device=None):
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

    Returns:
        list[SpeedResult]: in the order of ``specs``.
    """
    device = resolve_device(device)
    models, inputs = {}, {}
    for spec in specs:
        model, cfg = load_model(spec.config, spec.checkpoint)
        converted = convert_model(model, log=lambda line: None) if spec.deploy else []
        name = _unique_name(spec, bool(converted), models)
        models[name] = model.to(device)
        inputs[name] = torch.randn(batch, *input_shape(cfg, shape), device=device)

    def forward_step(name):
        def step():
            with torch.no_grad():
                forward_raw(models[name], inputs[name])
        return step

    seconds = measure_interleaved({name: forward_step(name) for name in models}, warmup,
                                  rounds, device)
    return [SpeedResult(name, tuple(inputs[name].shape[1:]), count_params(model), seconds[name],
                        batch) for name, model in models.items()]


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
