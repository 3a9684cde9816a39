"""tools/analysis_tools/get_flops.py: parameter and MAC counts of both forms of a model."""
import contextlib
import io
import os.path as osp

import pytest
from helpers_tools import load_tool

from mmrepmlp.models import RepMLPBlock

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_MODEL = """
custom_imports = dict(imports=['mmrepmlp'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='RepMLPResNet', img_size=64, deploy={deploy},
        arch=dict(num_blocks=(1, 2, 2, 1), widths=(16, 32, 64, 128),
                  block_type=('base', 'bottleneck', 'light', 'base'), r=2, groups=2,
                  partition=4, local_kernels=(1, 3))),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=3, in_channels=128))
"""


@pytest.fixture(scope='module')
def get_flops():
    return load_tool('analysis_tools/get_flops.py')


def tiny_config(tmp_path, deploy=False):
    path = tmp_path / f'tiny_{deploy}.py'
    path.write_text(TINY_MODEL.format(deploy=deploy))
    return str(path)


def local_perceptron_macs(model):
    """MACs of every Local Perceptron conv: per partition, O*h*w outputs of C/g * kh*kw each."""
    total = 0
    for block in model.modules():
        if isinstance(block, RepMLPBlock):
            (h, w), (nh, nw) = block.partition_size, block.num_parts
            per_output = block.in_channels // block.groups
            kernel_area = sum(kh * kw for kh, kw in block.local_kernels)
            total += nh * nw * block.out_channels * h * w * per_output * kernel_area
    return total


def test_resnet50_counts_equal_the_paper_table(get_flops):
    config = osp.join(REPO_ROOT, 'configs', 'repmlp_resnet', 'repmlp-res50-base_8xb32_in1k.py')
    rows = {row[2]: row for row in get_flops.measure(config)}
    assert rows['train'][1] == rows['deploy'][1] == (3, 224, 224)
    assert rows['train'][3] == 25557032 and rows['deploy'][3] == 25530472  # 25.56M, 25.53M
    assert f'{rows["train"][5] / 1e9:.3f}' == f'{rows["deploy"][5] / 1e9:.3f}' == '4.089'
    # MMEngine's total also counts the BNs of the training form.
    assert rows['train'][4] > rows['train'][5]


def test_deploy_form_drops_exactly_the_local_perceptron_macs(get_flops, tmp_path):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    config = tiny_config(tmp_path)
    (_, shape, train_form, train_params, _, train_macs), (*_, deploy_form, deploy_params, _,
                                                          deploy_macs) = get_flops.measure(config)
    assert (train_form, deploy_form, shape) == ('train', 'deploy', (3, 64, 64))
    expected = local_perceptron_macs(MODELS.build(Config.fromfile(config).model))
    assert expected > 0
    assert train_macs - deploy_macs == expected  # FC1, FC2, FC3 and every conv are kept
    assert deploy_params < train_params


def test_shape_option_rebuilds_the_repmlps_for_that_size(get_flops, tmp_path):
    rows = get_flops.measure(tiny_config(tmp_path), shape=(96, 96))
    assert [row[1] for row in rows] == [(3, 96, 96)] * 2
    assert rows[1][5] > get_flops.measure(tiny_config(tmp_path))[1][5]


def test_deploy_config_has_one_row_and_the_cli_prints_a_table(get_flops, tmp_path):
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        get_flops.main([tiny_config(tmp_path, deploy=True)])
    lines = output.getvalue().strip().splitlines()
    assert lines[0].startswith('| config | input | form | params |')
    assert len(lines) == 3 and '| 64x64 | deploy |' in lines[2]


def test_missing_config_is_reported_in_one_line(get_flops, tmp_path):
    with pytest.raises(SystemExit, match='^error: config .*nothing.py does not exist'):
        get_flops.main([str(tmp_path / 'nothing.py')])
