"""The learning rate against the batch actually used: every config names the batch its
learning rate was tuned for (MMEngine's auto_scale_lr.base_batch_size), and tools/train.py
warns when a run trains with a batch far from it without --auto-scale-lr."""
import glob
import os.path as osp
import re

import pytest
from helpers_tools import REPO_ROOT, TINY_CONFIG
from mmengine.config import Config

from mmrepmlp.apis.config import batch_size_warning

CONFIGS = sorted(path for path in glob.glob(f'{REPO_ROOT}/configs/**/*.py', recursive=True)
                 if '_base_' not in path)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda path: osp.relpath(path, REPO_ROOT))
def test_every_config_names_the_batch_of_its_recipe(path):
    cfg = Config.fromfile(path)
    base = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
    assert base is not None, 'auto_scale_lr.base_batch_size is not set'
    recipe = re.search(r'_(\d+)xb(\d+)_', osp.basename(path))
    if recipe:  # <GPUs>x<batch per GPU> in the name is the batch of the recipe
        assert base == int(recipe[1]) * int(recipe[2])


def tiny(batch_size, enable=False):
    cfg = Config.fromfile(TINY_CONFIG)  # lr 0.05 for a batch of 4
    cfg.train_dataloader.batch_size = batch_size
    cfg.auto_scale_lr.enable = enable
    return cfg


def test_warns_about_a_batch_far_from_the_recipes(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    line = batch_size_warning(tiny(32))
    assert line.startswith('warning: ') and '\n' not in line
    assert 'batch of 4' in line and '32 (1 process x 32)' in line
    assert '--auto-scale-lr' in line and '0.4' in line  # 0.05 * 32 / 4

    monkeypatch.setenv('WORLD_SIZE', '8')
    assert batch_size_warning(tiny(1)) is None  # 8 processes x 1 = 2x the recipe's 4
    assert '8 processes x 4' in batch_size_warning(tiny(4))


def test_no_warning_near_the_recipe_or_when_scaling(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    assert batch_size_warning(tiny(4)) is None
    assert batch_size_warning(tiny(8)) is None  # within 2x
    assert batch_size_warning(tiny(64, enable=True)) is None
