"""The test suite's root: pytest puts this folder on ``sys.path`` (its rootdir conftest), so
every test module can import the shared helpers in ``tests/helpers_*.py``.

A Runner built in-process (a tool run in the test's process, a training fixture) makes its
config's ``default_scope`` the process's registry scope, as MMEngine does. Later tests in the
same pytest worker must not inherit it (their builds would go to, say, MMSeg's registries), so
the scope is put back after every test and after every module (whose fixtures may build
Runners too), MMEngine's own way.
"""
import copy

import pytest
from mmengine.registry import DefaultScope


def _scope_kept():
    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict = saved


default_scope_kept_per_module = pytest.fixture(scope='module', autouse=True,
                                               name='default_scope_kept_per_module')(_scope_kept)
default_scope_kept = pytest.fixture(autouse=True, name='default_scope_kept')(_scope_kept)
