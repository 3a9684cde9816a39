"""The parameter and MAC counts that the docs print are those of the models the code builds.

Every Markdown table of the README, ``docs/`` and the config READMEs (benchmark output quoted
in them included) is read. In a table with a params, MACs or FLOPs column, a row whose first
cell names a model of ``MODELS`` must print that model's counts, rounded as printed; a row
naming no known model there fails (add the model below, so that its numbers are checked).
Which form a number is of comes from the header (``params train``), the cell (``22.38M
(deploy)``), a pair (``train / deploy``) or, where nothing says, the deploy form; in
``ours / paper`` cells the first number is ours. Columns of the paper's numbers, MMEngine's
totals (``(all)``: norms and pooling too, which needs a real forward at full size) and rates
(``/s``) are not read here.

Counts are taken on the meta device (no memory, no arithmetic) with PyTorch's
``FlopCounterMode``: multiply-accumulates of convs, FCs and matmuls, the paper's convention,
which ``tools/analysis_tools/get_flops.py`` counts with MMEngine's analysis (the two agree on
``res50-base`` in ``tests/tools/test_get_flops.py``).
"""
import copy
import functools
import glob
import os.path as osp
import re

import pytest
import torch
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from torch.utils.flop_counter import FlopCounterMode

from mmrepmlp.analysis import count_params
from mmrepmlp.apis.build import build_model, input_shape, load_config
from mmrepmlp.models import RepMLPResNet
from mmrepmlp.reparam import reparameterize_model

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = sorted(['README.md', *glob.glob('docs/*.md', root_dir=REPO_ROOT),
               *glob.glob('configs/*/README.md', root_dir=REPO_ROOT)])
PAPER_PRESETS = sorted(arch for arch in RepMLPResNet.arch_settings
                       if not arch.startswith('face-') and not arch.endswith('-seg'))


def classifier(arch):
    """The ImageNet classifier of a preset, 1000-class head included, as the model zoo."""
    def build(size):
        return MMPRETRAIN_MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='RepMLPResNet', arch=arch, img_size=size),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048))), (3, size, size)
    return build, 320 if arch.endswith('-320') else 224


@functools.cache
def load(path, cfg_options):
    return load_config(osp.join(REPO_ROOT, 'configs', path), dict(cfg_options))


def config(path, default_size, **cfg_options):
    """The model of ``configs/<path>``; ``img_size`` follows the input size when it has one."""
    def build(size):
        cfg = copy.deepcopy(load(path, tuple(cfg_options.items())))
        if 'img_size' in cfg.model.backbone:
            cfg.model.backbone.img_size = size
        return build_model(cfg), input_shape(cfg, (size, size))
    return build, default_size


SEG = 'repmlp_pspnet/pspnet_{}_8xb2-200e_cityscapes-713x713.py'
# model -> (build(input size) -> (training-time model, input shape), default input size);
# DOC_NAMES maps every name the docs give a model to it.
MODELS = {
    **{arch: classifier(arch) for arch in PAPER_PRESETS},
    **{name: config(f'repmlp_cifar/{name}_1xb128_cifar10.py', 32) for name in (
        'pure-mlp', 'wide-convnet', 'pure-mlp-wo-local', 'pure-mlp-wo-global',
        'pure-mlp-fc3-conv9', 'pure-mlp-repmlp-conv9')},
    'pure-mlp_1xb32_digits': config('repmlp_cifar/pure-mlp_1xb32_digits.py', 32),
    'pure-mlp_1xb32_digits-qat': config('repmlp_cifar/pure-mlp_1xb32_digits-qat.py', 32),
    # the margin head only trains: the docs count the embedder (backbone and neck)
    **{name: config(f'repmlp_face/{name}_8xb64_ms1mv2.py', 96, **{'model.head.num_classes': 2})
       for name in ('mobilefacenet', 'faceres50', 'repmlp-faceres50')},
    **{f'{name}-112px': config(f'repmlp_face/{name}_8xb64_ms1mv2-112px.py', 112,
                               **{'model.head.num_classes': 2})
       for name in ('mobilefacenet', 'faceres50', 'repmlp-faceres50')},
    **{f'RepMLPNet-{arch.upper()}{size}': config(
        f'repmlpnet/repmlpnet-{arch}_8xb32_in1k{"-256px" if size == 256 else ""}.py', size)
       for arch, size in (('t', 224), ('b', 224), ('t', 256), ('b', 256), ('d', 256),
                          ('l', 256))},
    'pspnet-repmlp-res50-g4g8': config(SEG.format('repmlp-res50-g4g8-d8'), 713,
                                       **{'model.backbone.init_cfg': None}),
    'pspnet-res50-d8': config(SEG.format('res50-d8'), 713),
    'pspnet-r50-d8-v1c': config(SEG.format('res50-d8'), 713,
                                **{'model.backbone.deep_stem': True}),
}
DOC_NAMES = {
    **{name: name for name in MODELS},
    **{f'{name}_1xb128_cifar10': name for name in MODELS if name.startswith(('pure-', 'wide-'))},
    'pure MLP': 'pure-mlp', 'Wide ConvNet': 'wide-convnet', 'B w/o Local': 'pure-mlp-wo-local',
    'C w/o Global': 'pure-mlp-wo-global', 'D FC3 as': 'pure-mlp-fc3-conv9',
    'E RepMLP as': 'pure-mlp-repmlp-conv9',
    **{f'{name}_8xb64_ms1mv2': name for name in ('mobilefacenet', 'faceres50',
                                                 'repmlp-faceres50')},
    **{f'{name}_8xb64_ms1mv2-112px': f'{name}-112px' for name in (
        'mobilefacenet', 'faceres50', 'repmlp-faceres50')},
}


def is_face(model):
    return type(model).__name__ == 'FaceRecognizer'


def macs(model, shape):
    """Multiply-accumulates of one forward pass on a meta input (what the docs call FLOPs)."""
    inputs = torch.zeros(1, *shape, device='meta')
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if is_face(model):  # the embedding: backbone and neck
            model.neck(model.backbone(inputs))
        else:
            model(inputs, mode='tensor')
    return counter.get_total_flops() // 2


def params(model):
    if is_face(model):
        return count_params(model.backbone) + count_params(model.neck)
    return count_params(model)


@functools.cache
def forms(name, size):
    """``({'train': model, 'deploy': its conversion}, input shape)`` at ``size``."""
    with torch.device('meta'):
        train, shape = MODELS[name][0](size)
    return dict(train=train.eval(), deploy=reparameterize_model(train)), shape


@functools.cache
def count(name, size, quantity, form):
    """The ``quantity`` (``'params'`` or ``'macs'``) of a model's ``form`` at ``size``."""
    models, shape = forms(name, size)
    return macs(models[form], shape) if quantity == 'macs' else params(models[form])


# ---------------------------------------------------------------------------- the docs
def tables(text):
    """``(header cells, [row cells])`` of every Markdown table of ``text``."""
    lines = text.splitlines()
    found = []
    for i in range(len(lines) - 1):
        starts = lines[i].startswith('|') and (i == 0 or not lines[i - 1].startswith('|'))
        if starts and re.fullmatch(r'\|(\s*:?-+:?\s*\|)+', lines[i + 1].strip()):
            rows = []
            for line in lines[i + 2:]:
                if not line.startswith('|'):
                    break
                rows.append(cells(line))
            found.append((cells(lines[i]), rows))
    return found


def cells(line):
    return [cell.strip() for cell in line.strip().strip('|').split('|')]


def model_of(cell):
    """The model a row's first cell names (the longest doc name found as a whole token)."""
    found = [name for name in DOC_NAMES
             if re.search(rf'(?<![\w-]){re.escape(name)}(?![\w-])', cell)]
    return DOC_NAMES[max(found, key=len)] if found else None


def column_meaning(header):
    """``(quantity, form or None, first number only)`` of a column, or None if not read."""
    header = header.lower()
    if header.startswith('paper') or '(all)' in header or '/s' in header:
        return None
    quantity = 'params' if 'param' in header else 'macs' if re.search(r'mac|flop', header) \
        else None
    if quantity is None:
        return None
    if 'train / deploy' in header:  # a pair in each cell
        form = None
    else:
        form = 'train' if 'train' in header else 'deploy' if 'deploy' in header else None
    return quantity, form, 'ours / paper' in header


NUMBER = re.compile(r'(\d+(?:\.\d+)?)\s*([MG]?)(?![\w.])')


def printed_numbers(header, cell):
    """``[(form, printed digits, unit)]`` of a cell: the form from the header, a
    ``train / deploy`` pair, the cell's ``(train)``/``(deploy)``, else deploy."""
    _, form, first_only = column_meaning(header)
    cell = cell.replace('*', '')
    numbers = NUMBER.findall(cell)
    if first_only:
        numbers = numbers[:1]
    scale = 1e9 if re.search(r'\bg(macs|flops)', header.lower()) else 1
    units = [{'M': 1e6, 'G': 1e9}.get(suffix, scale) for _, suffix in numbers]
    if form is None and len(numbers) == 2:  # "train / deploy"
        forms = ['train', 'deploy']
    else:
        annotated = re.search(r'\((train|deploy)\)', cell)
        forms = [form or (annotated and annotated.group(1)) or 'deploy'] * len(numbers)
    return [(f, digits, unit) for f, (digits, _), unit in zip(forms, numbers, units)]


def input_size(header, row, default):
    """The row's input size: its ``input`` column, a size in its first cell, or the
    model's default."""
    for name, cell in zip(header, row):
        if name.lower() == 'input':
            return int(re.match(r'\d+', cell).group())
    size = re.search(r'(?<![\w-])(\d{3})(?:x\d{3})?(?![\w-])', row[0])
    return int(size.group(1)) if size else default


def doc_numbers():
    """``[(where, model, size, quantity, form, printed digits, unit)]`` of every doc, and the
    rows that print numbers but name no known model."""
    numbers, unknown = [], []
    for doc in DOCS:
        with open(osp.join(REPO_ROOT, doc)) as f:
            text = f.read()
        for header, rows in tables(text):
            columns = [(i, name) for i, name in enumerate(header) if column_meaning(name)]
            if not columns:
                continue
            for row in rows:
                where = f'{doc}: | {" | ".join(row)} |'
                printed = [(name, row[i]) for i, name in columns
                           if i < len(row) and NUMBER.search(row[i])]
                model = model_of(row[0])
                if model is None:
                    if printed:
                        unknown.append(where)
                    continue
                size = input_size(header, row, MODELS[model][1])
                for name, cell in printed:
                    quantity = column_meaning(name)[0]
                    for form, digits, unit in printed_numbers(name, cell):
                        numbers.append((where, model, size, quantity, form, digits, unit))
    return numbers, unknown


@pytest.fixture(scope='module')
def numbers():
    return doc_numbers()


def as_printed(value, digits, unit):
    decimals = len(digits.partition('.')[2])
    return f'{value / unit:.{decimals}f}'


def test_every_number_the_docs_print_is_the_models(numbers):
    printed, unknown = numbers
    wrong = []
    for where, model, size, quantity, form, digits, unit in printed:
        actual = as_printed(count(model, size, quantity, form), digits, unit)
        if actual != digits:
            wrong.append(f'{where}\n  {quantity} {form} of {model} at {size}: printed {digits}, '
                         f'the model has {actual}')
    assert not wrong, '\n'.join(wrong)
    assert not unknown, ('rows printing params/MACs of a model this test does not know (add '
                         'it to MODELS and DOC_NAMES):\n' + '\n'.join(unknown))


def test_the_docs_print_every_presets_train_and_deploy_counts(numbers):
    checked = {(model, size, quantity, form) for _, model, size, quantity, form, *_ in numbers[0]}
    required = {(arch, MODELS[arch][1], quantity, form) for arch in PAPER_PRESETS
                for quantity in ('params', 'macs') for form in ('train', 'deploy')}
    required |= {(name, MODELS[name][1], quantity, 'deploy') for quantity in ('params', 'macs')
                 for name in ('pure-mlp', 'mobilefacenet', 'faceres50', 'repmlp-faceres50')}
    assert not required - checked, f'not printed in any doc table: {sorted(required - checked)}'
