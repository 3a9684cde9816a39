"""The package's layers, read from its source with ``ast``.

Three rules, each a test on the real package and a self-test on a small generated package
that breaks it:

- no import cycle between the package's modules;
- no module imports a module of a higher layer (same-layer imports are allowed when they make
  no cycle); the package root and ``__main__`` modules are entry points above every layer;
- no function imports a module of the package (optional third-party packages such as mmseg or
  onnxruntime may be imported where they are used).
"""
import ast
import os.path as osp
from dataclasses import dataclass
from pathlib import Path

import pytest

import mmrepmlp

# Lowest first. A module belongs to the layer of its longest listed prefix.
LAYERS = (
    ('mmrepmlp.version', 'mmrepmlp.utils', 'mmrepmlp.compat', 'mmrepmlp.analysis'),
    ('mmrepmlp.reparam', ),
    ('mmrepmlp.models', 'mmrepmlp.datasets', 'mmrepmlp.evaluation', 'mmrepmlp.visualization'),
    ('mmrepmlp.deployment', ),
    ('mmrepmlp.tasks', ),
    ('mmrepmlp.apis', ),
)
ENTRY_POINT = len(LAYERS)  # the package root and __main__ modules


@dataclass(frozen=True)
class Import:
    """One import statement's target inside the package."""
    importer: str
    target: str
    line: int
    in_function: bool

    def where(self):
        return f'{self.importer}:{self.line} imports {self.target}'


def package_modules(root):
    """``{module name: file}`` of every module of the package whose folder is ``root``."""
    root = Path(root)
    modules = {}
    for path in sorted(root.rglob('*.py')):
        parts = list(path.relative_to(root.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        modules['.'.join(parts)] = path
    return modules


def _absolute(module, is_package, node):
    """The absolute module an ``ImportFrom`` node names (resolving its leading dots)."""
    if not node.level:
        return node.module
    base = module.split('.')
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return '.'.join(base + ([node.module] if node.module else []))


def _targets(node, module, is_package, modules):
    """The package modules an import node loads: ``from p import m`` names module ``p.m``
    when ``m`` is one, else ``p``."""
    if isinstance(node, ast.Import):
        return sorted({alias.name for alias in node.names})
    source = _absolute(module, is_package, node)
    return sorted({f'{source}.{alias.name}' if f'{source}.{alias.name}' in modules else source
                   for alias in node.names})


def _imports_in(tree):
    """``(import node, whether it is inside a function)`` for every import of a module."""
    pending = [(tree, False)]
    while pending:
        node, in_function = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            pending.append((child, in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))))


def package_imports(root):
    """Every import of a package module by a package module, under the folder ``root``."""
    modules = package_modules(root)
    package = Path(root).name
    found = []
    for module, path in modules.items():
        is_package = path.name == '__init__.py'
        for node, in_function in _imports_in(ast.parse(path.read_text(), str(path))):
            found += [Import(module, target, node.lineno, in_function)
                      for target in _targets(node, module, is_package, modules)
                      if target == package or target.startswith(f'{package}.')]
    return sorted(found, key=lambda edge: (edge.importer, edge.line, edge.target))


def layer_of(module, layers):
    """The layer index of ``module``; ``len(layers)`` for an entry point; None if unlisted."""
    if '.' not in module or module.endswith('.__main__'):
        return len(layers)
    matches = [(len(prefix), index) for index, prefixes in enumerate(layers)
               for prefix in prefixes if module == prefix or module.startswith(f'{prefix}.')]
    return max(matches)[1] if matches else None


def import_cycles(imports):
    """The cycles of the import graph, each as the list of its modules (Tarjan's SCCs)."""
    graph = {}
    for edge in imports:
        graph.setdefault(edge.importer, set()).add(edge.target)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return cycles


def layer_violations(imports, layers):
    """Imports of a higher layer's module, and imports of modules that are in no layer."""
    problems = []
    for edge in imports:
        mine, theirs = layer_of(edge.importer, layers), layer_of(edge.target, layers)
        if mine is None or theirs is None:
            unlisted = edge.importer if mine is None else edge.target
            problems.append(f'{edge.where()}: {unlisted} is in no layer')
        elif theirs > mine:
            problems.append(f'{edge.where()}: layer {mine} imports layer {theirs}')
    return problems


def function_local_imports(imports):
    return [edge.where() for edge in imports if edge.in_function]


PACKAGE_ROOT = osp.dirname(mmrepmlp.__file__)


@pytest.fixture(scope='module')
def imports():
    return package_imports(PACKAGE_ROOT)


def test_the_walk_sees_the_package_imports(imports):
    seen = {(edge.importer, edge.target) for edge in imports}
    assert ('mmrepmlp', 'mmrepmlp.compat') in seen
    assert ('mmrepmlp.models.backbones.base', 'mmrepmlp.reparam') in seen


def test_no_import_cycle(imports):
    assert import_cycles(imports) == []


def test_no_import_of_a_higher_layer(imports):
    assert layer_violations(imports, LAYERS) == []


def test_no_function_imports_a_package_module(imports):
    assert function_local_imports(imports) == []


# ----------------------------------------------------------------------------- self-test
FAKE_LAYERS = (('fake.low', ), ('fake.mid', ), ('fake.high', ))
CLEAN_FAKE = {
    '__init__.py': 'from . import high\n',
    '__main__.py': 'from .high import run\n',
    'low/__init__.py': 'import os\n',
    'low/util.py': 'from . import helper\n',
    'low/helper.py': 'VALUE = 1\n',
    'mid/__init__.py': 'from ..low.util import helper\n',
    'high/__init__.py': ('from fake.mid import *\n'
                         'def run():\n'
                         '    import json  # third-party and standard modules may be local\n'
                         '    return json\n'),
}


def _fake_package(tmp_path, **changes):
    files = {**CLEAN_FAKE, **{name.replace('__', '/') + '.py': text
                              for name, text in changes.items()}}
    for name, text in files.items():
        path = tmp_path / 'fake' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package_imports(tmp_path / 'fake')


def test_self_test_a_clean_package_passes(tmp_path):
    imports = _fake_package(tmp_path)
    assert {(e.importer, e.target) for e in imports} == {
        ('fake', 'fake.high'), ('fake.__main__', 'fake.high'), ('fake.low.util', 'fake.low.helper'),
        ('fake.mid', 'fake.low.util'), ('fake.high', 'fake.mid')}
    assert import_cycles(imports) == []
    assert layer_violations(imports, FAKE_LAYERS) == []
    assert function_local_imports(imports) == []


def test_self_test_a_cycle_is_found(tmp_path):
    imports = _fake_package(tmp_path, low__helper='from .util import helper\n')
    assert import_cycles(imports) == [['fake.low.helper', 'fake.low.util']]


def test_self_test_an_import_of_a_higher_layer_is_found(tmp_path):
    imports = _fake_package(tmp_path, low__helper='from ..mid import helper\n')
    assert layer_violations(imports, FAKE_LAYERS) == [
        'fake.low.helper:1 imports fake.mid: layer 0 imports layer 1']
    imports = _fake_package(tmp_path, low__helper='import fake\n')
    assert layer_violations(imports, FAKE_LAYERS) == [
        'fake.low.helper:1 imports fake: layer 0 imports layer 3']


def test_self_test_a_module_in_no_layer_is_found(tmp_path):
    imports = _fake_package(tmp_path, stray='from .low import util\n')
    assert layer_violations(imports, FAKE_LAYERS) == [
        'fake.stray:1 imports fake.low.util: fake.stray is in no layer']


def test_self_test_a_function_local_import_is_found(tmp_path):
    imports = _fake_package(tmp_path, mid__worker=('def work():\n'
                                                   '    from ..low import util\n'
                                                   '    return util\n'))
    assert function_local_imports(imports) == ['fake.mid.worker:2 imports fake.low.util']
