"""Shared by the compat tests: fresh interpreters, a tiny MMEngine model and data set, and
objects that pickle into malicious checkpoints."""
import json
import socket
import subprocess
import sys
import textwrap
import uuid

import torch

# setuptools>=81 has no pkg_resources; None in sys.modules makes any import of it fail.
BLOCK_PKG_RESOURCES = "import sys\nsys.modules['pkg_resources'] = None\n"

# runs ``fn`` and records 'ok' or the exception, so one interpreter can try several things
ATTEMPT = textwrap.dedent("""\
    import json
    results = {}

    def attempt(name, fn):
        try:
            value = fn()
            results[name] = ['ok', value]
        except BaseException as e:
            results[name] = [type(e).__name__, str(e)]
    """)


def run_pythons(jobs, tmp_path, timeout=180):
    """Run each ``(code, env)`` of ``jobs`` in a fresh interpreter, all at once; return the
    JSON each printed on its last line."""
    procs = []
    try:
        for code, env in jobs:
            script = tmp_path / f'script_{uuid.uuid4().hex[:8]}.py'
            script.write_text(code)
            procs.append(subprocess.Popen(
                [sys.executable, '-W', 'ignore', str(script)], env=env, cwd=str(tmp_path),
                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        outs = [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    results = []
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, out[-3000:] + err[-5000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# the tiny mmengine model/dataset of the Runner tests, as text: the DDP workers run it too
TINY_SOURCE = textwrap.dedent("""\
    import torch
    import torch.nn as nn
    from mmengine.model import BaseModel
    from torch.utils.data import Dataset


    class TinyModel(BaseModel):

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.fc(inputs)
            if mode == 'loss':
                return dict(loss=((out - labels) ** 2).mean())
            return out


    class ToyDataset(Dataset):

        def __len__(self):
            return 16

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return dict(inputs=torch.randn(4, generator=g),
                        labels=torch.randn(2, generator=g))
    """)


_tiny = {}
exec(compile(TINY_SOURCE, '<tiny>', 'exec'), _tiny)
TinyModel, ToyDataset = _tiny['TinyModel'], _tiny['ToyDataset']


def runner_kwargs(work_dir, max_iters, **kwargs):
    cfg = dict(
        model=TinyModel(),
        work_dir=str(work_dir),
        experiment_name=f'compat_{uuid.uuid4().hex}',
        train_dataloader=dict(dataset=ToyDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3,
                                           by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        default_scope=None,  # do not make 'mmengine' the current scope for later tests
    )
    cfg.update(kwargs)
    return cfg


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def state_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


class Payload:
    """Pickles as ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


