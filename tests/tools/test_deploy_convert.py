"""tools/deploy_convert.py: exact conversion that tools/test.py accepts, and clean failures."""
import os
import re

import pytest
import torch
from helpers_tools import (
    TINY_SEG_CONFIG,
    load_tool,
    make_image_folders,
    relative_difference,
    run_tool,
    write_config,
)
from mmengine.config import Config
from mmengine.fileio import load
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain import get_model

from mmrepmlp.apis import ToolError, convert_checkpoint, load_model
from mmrepmlp.reparam import randomize_norm_layers


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny config on generated images and a checkpoint with non-trivial BN statistics (so
    that merging them is not an identity)."""
    root = tmp_path_factory.mktemp('deploy')
    data = make_image_folders(root / 'data')
    config = write_config(root / 'tiny.py', data)
    model = randomize_norm_layers(load_model(config)[0])
    checkpoint = root / 'tiny.pth'
    torch.save({'meta': {'dataset_meta': {'classes': ['a', 'b', 'c']}},
                'state_dict': model.state_dict()}, checkpoint)
    return root, config, str(checkpoint)


def test_convert_verify_and_test_gives_same_metric(trained, tmp_path):
    root, config, checkpoint = trained
    out = tmp_path / 'deploy' / 'tiny_deploy.pth'

    converted = run_tool(['deploy_convert.py', config, checkpoint, '--out', out], tmp_path)

    assert converted.returncode == 0, converted.stdout[-2000:] + converted.stderr[-3000:]
    relative = float(re.search(r'max relative difference ([0-9.e+-]+)', converted.stdout)[1])
    assert relative <= 1e-5
    assert re.search(r'converted backbone\.\S+ \(RepMLPBlock\)', converted.stdout)
    deploy_config = tmp_path / 'deploy' / 'tiny_deploy.py'
    assert Config.fromfile(str(deploy_config)).model.backbone.deploy is True
    state = _load_checkpoint(str(out), map_location='cpu')['state_dict']
    assert not any('local_perceptron' in key or 'fc3_bn' in key for key in state)
    deployed = get_model(str(deploy_config), pretrained=str(out))
    assert deployed.backbone.deploy and deployed._dataset_meta == {'classes': ['a', 'b', 'c']}

    metrics, scores = {}, {}
    for name, (cfg, ckpt) in {'train': (config, checkpoint),
                              'deploy': (deploy_config, out)}.items():
        tested = run_tool(['test.py', cfg, ckpt, '--work-dir', tmp_path / name, '--out',
                           tmp_path / f'{name}.pkl'], tmp_path)
        assert tested.returncode == 0, tested.stderr[-3000:]
        metrics[name] = re.findall(r'accuracy/top1: ([0-9.]+)', tested.stdout + tested.stderr)
        predictions = load(tmp_path / f'{name}.pkl')
        scores[name] = torch.stack([sample['pred_score'] for sample in predictions])
    assert metrics['train'] and metrics['deploy'] == metrics['train']
    assert scores['train'].shape == (12, 3)  # every image, every class
    assert relative_difference(scores['deploy'], scores['train']) <= 1e-5

    # A deploy checkpoint is recognised, not converted twice.
    again = convert_checkpoint(config, str(out), str(tmp_path / 'twice.pth'), log=print)
    assert again.already_deployed and not (tmp_path / 'twice.pth').exists()


def test_segmentor_converts_with_heads_kept(tmp_path):
    """Any task: an MMSeg PSPNet (default_scope 'mmseg') converts and verifies the same way."""
    model = randomize_norm_layers(load_model(TINY_SEG_CONFIG)[0], seed=1)
    checkpoint = tmp_path / 'seg.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)

    result = convert_checkpoint(TINY_SEG_CONFIG, str(checkpoint), log=lambda line: None)

    assert result.max_rel_diff <= 1e-5
    assert result.checkpoint == str(tmp_path / 'seg_deploy.pth')
    assert 'backbone.stage2.1.repmlp' in result.converted
    deploy_cfg = Config.fromfile(result.config)
    assert deploy_cfg.model.backbone.deploy is True and deploy_cfg.default_scope == 'mmseg'
    state = _load_checkpoint(result.checkpoint, map_location='cpu')['state_dict']
    # heads are kept as they are (their conv-BN modules are MMCV's, not re-parameterizable)
    for key in ('decode_head.conv_seg.weight', 'auxiliary_head.convs.0.bn.running_var'):
        assert torch.equal(state[key], model.state_dict()[key])


def _run_in_process(argv):
    """The tool's exit message and code, from its own main()."""
    with pytest.raises(SystemExit) as exit_info:
        load_tool('deploy_convert.py').main([str(a) for a in argv])
    return exit_info.value


def _assert_one_line_error(exit_value, *fragments):
    message = str(exit_value.code)
    assert message.startswith('error: ') and '\n' not in message
    for fragment in fragments:
        assert fragment in message


def test_difference_above_tolerance_writes_nothing(trained, tmp_path):
    _, config, checkpoint = trained
    lines = []

    with pytest.raises(ToolError, match='differ from training outputs'):
        # float32 rounding alone is far above 1e-12
        convert_checkpoint(config, checkpoint, str(tmp_path / 'x.pth'), tolerance=1e-12,
                           log=lines.append)

    assert any('max relative difference' in line for line in lines)  # printed first
    assert list(tmp_path.iterdir()) == []


def test_corrupt_checkpoint(trained, tmp_path):
    _, config, checkpoint = trained
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(open(checkpoint, 'rb').read()[:5000])

    error = _run_in_process([config, corrupt, '--out', tmp_path / 'out' / 'x.pth'])

    _assert_one_line_error(error, 'cannot read checkpoint', str(corrupt))
    assert not (tmp_path / 'out').exists()


def test_wrong_config(trained, tmp_path):
    root, _, checkpoint = trained
    other = write_config(tmp_path / 'other.py', root / 'data',
                         extra='model = dict(head=dict(num_classes=5))\n')

    error = _run_in_process([other, checkpoint, '--out', tmp_path / 'out' / 'x.pth'])

    _assert_one_line_error(error, 'does not fit the model of config', 'head.fc.weight')
    assert not (tmp_path / 'out').exists()


def test_refuses_to_overwrite_input(trained):
    _, config, checkpoint = trained
    size = os.path.getsize(checkpoint)

    error = _run_in_process([config, checkpoint, '--out', checkpoint])

    _assert_one_line_error(error, 'over the input')
    assert os.path.getsize(checkpoint) == size


def test_missing_file_from_the_command_line(trained, tmp_path):
    _, config, _ = trained

    result = run_tool(['deploy_convert.py', config, tmp_path / 'nope.pth'], tmp_path)

    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: checkpoint') and 'does not exist' in last
    assert os.listdir(tmp_path) == []
