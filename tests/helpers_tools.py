"""Shared by the tool tests: a tiny ImageNet-layout data set, configs that use it, and running
the command-line tools in subprocesses."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

TESTS_DIR = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(TESTS_DIR)
TINY_CONFIG = osp.join(TESTS_DIR, 'data', 'configs', 'tiny_repmlp_resnet.py')
TINY_SEG_CONFIG = osp.join(TESTS_DIR, 'data', 'configs', 'tiny_repmlp_pspnet.py')
TINY_PURE_MLP_CONFIG = osp.join(TESTS_DIR, 'data', 'configs', 'tiny_pure_mlp_digits.py')
NUM_CLASSES, IMAGES_PER_CLASS, IMAGE_SIZE = 3, 4, 64
OFFICIAL_SHAPES = osp.join(TESTS_DIR, 'data', 'official_v1')


def make_image_folders(root):
    """``root/class_k/img_i.png``: random 64x64 images, each class tinted by one channel."""
    rng = np.random.default_rng(0)
    for label in range(NUM_CLASSES):
        folder = osp.join(root, f'class_{label}')
        os.makedirs(folder, exist_ok=True)
        for index in range(IMAGES_PER_CLASS):
            image = rng.integers(0, 156, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            image[..., label] += 100
            Image.fromarray(image).save(osp.join(folder, f'img_{index}.png'))
    return root


def make_segmentation_folders(root, num_images=4):
    """``root/img/k.png`` random 64x64 images and ``root/ann/k.png`` maps of 4 classes (bands)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4, dtype=np.uint8), IMAGE_SIZE // 4)[:, None]
    labels = np.broadcast_to(labels, (IMAGE_SIZE, IMAGE_SIZE))
    for folder in ('img', 'ann'):
        os.makedirs(osp.join(root, folder), exist_ok=True)
    for index in range(num_images):
        image = rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        Image.fromarray(image).save(osp.join(root, 'img', f'{index}.png'))
        Image.fromarray(np.ascontiguousarray(labels)).save(osp.join(root, 'ann', f'{index}.png'))
    return root


def write_config(path, data_root, base=TINY_CONFIG, extra=''):
    """A config inheriting ``base`` whose dataloaders read ``data_root``; ``extra`` is
    appended as config code."""
    lines = [f'_base_ = [{base!r}]']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        lines.append(f'{loader} = dict(dataset=dict(data_root={str(data_root)!r}))')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n' + extra)
    return str(path)


def probe_hooks(dump_dir, kill_at_iter=None):
    """Config code that makes training runs dump their state into ``dump_dir`` (and maybe
    die) through probe_hooks (importable in the tools' processes, see :func:`tool_env`)."""
    hooks = [f'dict(type="DumpTrainStateHook", out_dir={str(dump_dir)!r})']
    if kill_at_iter is not None:
        hooks.append(f'dict(type="KillAfterIterHook", at_iter={kill_at_iter})')
    return ("custom_imports = dict(imports=['mmrepmlp', 'probe_hooks'], "
            'allow_failed_imports=False)\n'
            f'custom_hooks = [{", ".join(hooks)}]\n')


def probe_config(path, data_root, dump_dir, kill_at_iter=None, base=TINY_CONFIG):
    """A tiny config (``base``) whose runs dump their state (and maybe die) through
    probe_hooks."""
    return write_config(path, data_root, base=base, extra=probe_hooks(dump_dir, kill_at_iter))


def tool_env():
    """One thread per process (the CI machine has 2 cores), the checkout and the probe hooks
    importable, the venv's python first on PATH for the shell launchers."""
    env = dict(os.environ)
    env['OMP_NUM_THREADS'] = '1'
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT, osp.join(TESTS_DIR, 'tools'), env.get('PYTHONPATH', '')])
    env['PYTHON'] = sys.executable
    return env


def run_tool(args, cwd, env=None):
    """Run ``tools/<args[0]>`` (python or shell) with ``args[1:]``; return the CompletedProcess."""
    script = osp.join(REPO_ROOT, 'tools', args[0])
    command = ['bash', script] if script.endswith('.sh') else [sys.executable, script]
    return subprocess.run(command + [str(a) for a in args[1:]], cwd=cwd, env=env or tool_env(),
                          capture_output=True, text=True, timeout=600)


def load_script(relative_path):
    """Import the repository's ``<relative_path>`` (a tool or benchmark script) as a module, to
    call its ``main(argv)`` in-process. Its folder is on ``sys.path`` meanwhile, as when
    Python runs it, so that it imports its sibling modules as it does then."""
    import importlib.util

    path = osp.join(REPO_ROOT, relative_path)
    name = 'script_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, osp.dirname(path))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(osp.dirname(path))
    return module


def load_tool(relative_path):
    """:func:`load_script` of ``tools/<relative_path>``."""
    return load_script(osp.join('tools', relative_path))


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def official_state_dict(name):
    """The official keys and shapes of ``name``, tensor ``i`` filled with the value ``i + 1``.

    Expanded scalars keep the files tiny while loading gives full-size tensors.
    """
    with open(osp.join(OFFICIAL_SHAPES, f'{name}.json')) as f:
        shapes = json.load(f)
    state_dict = {}
    for index, (key, shape) in enumerate(shapes.items()):
        dtype = torch.long if key.endswith('num_batches_tracked') else torch.float32
        state_dict[key] = torch.tensor(index + 1, dtype=dtype).expand(shape)
    return state_dict


def relative_difference(actual, expected):
    """Max absolute difference over the largest magnitude of ``expected``."""
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def assert_same_state(actual, expected, where='state'):
    """Nested dicts/lists of tensors and plain values are equal, tensors exactly."""
    if isinstance(expected, torch.Tensor):
        assert torch.equal(actual, expected), where
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_same_state(actual[key], expected[key], f'{where}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_same_state(a, e, f'{where}[{index}]')
    else:
        assert actual == expected, where


def assert_resumed_from(dump, checkpoint):
    """The run that ``probe_hooks.DumpTrainStateHook`` dumped into ``dump`` last started
    from ``checkpoint``: its iteration, weights and optimizer state."""
    from mmengine.runner.checkpoint import _load_checkpoint

    start = torch.load(osp.join(dump, 'before_train_rank0.pth'))
    saved = _load_checkpoint(str(checkpoint), map_location='cpu')
    assert start['iter'] == saved['meta']['iter'] > 0
    assert_same_state(start['state_dict'], saved['state_dict'], 'weights')
    assert_same_state(start['optimizer'], saved['optimizer'], 'optimizer')


def assert_same_final_state(dump, expected_dump, iters):
    """The state that ``probe_hooks.DumpTrainStateHook`` wrote at the end of training into
    ``dump`` equals the one in ``expected_dump``: iteration ``iters``, the weights and the
    optimizer state, exactly."""
    actual, expected = (torch.load(osp.join(folder, 'after_train_rank0.pth'))
                        for folder in (dump, expected_dump))
    assert actual['iter'] == expected['iter'] == iters
    assert_same_state(actual['state_dict'], expected['state_dict'], 'weights')
    assert_same_state(actual['optimizer'], expected['optimizer'], 'optimizer')
