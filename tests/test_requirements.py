"""What installing mmrepmlp asks of an environment: ranges, not the development lock's pins
(which requirements/*.txt keep for `make`), no mmcv flavour by name, and mmcv's version
checked at import."""
import ast
import os.path as osp
import sys

import pytest
from packaging.requirements import Requirement

from mmrepmlp.utils import REPO_ROOT
from mmrepmlp.version import MMCV_MAX, MMCV_MIN, check_mmcv


def setup_constant(name):
    tree = ast.parse(open(osp.join(REPO_ROOT, 'setup.py')).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f'setup.py defines no {name}')


def lock(name):
    with open(osp.join(REPO_ROOT, 'requirements', name)) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [Requirement(line) for line in lines if line]


def test_install_requires_ranges_that_hold_the_lock():
    required = {req.name: req for req in map(Requirement, setup_constant('INSTALL_REQUIRES'))}
    assert not [str(r) for r in required.values() if '==' in str(r.specifier)]
    assert not [name for name in required if name.startswith('mmcv')]
    assert {'torch', 'torchvision', 'mmengine', 'mmpretrain'} <= set(required)
    for pinned in lock('runtime.txt'):  # the development lock is one supported set
        if pinned.name in required and str(pinned.specifier).startswith('=='):
            version = str(pinned.specifier)[2:]
            assert required[pinned.name].specifier.contains(version), pinned


def test_mmcv_is_checked_at_import_naming_both_flavours(monkeypatch):
    check_mmcv()  # the installed one
    check_mmcv(MMCV_MIN)
    for version in ('2.0.1', MMCV_MAX):
        with pytest.raises(ImportError, match=f'mmcv {version} is installed.*mmcv-lite'):
            check_mmcv(version)
    monkeypatch.setitem(sys.modules, 'mmcv', None)  # as if no mmcv were installed
    with pytest.raises(ImportError, match=rf'needs mmcv>={MMCV_MIN},<{MMCV_MAX} and mmcv is '
                       'not installed'):
        check_mmcv()
