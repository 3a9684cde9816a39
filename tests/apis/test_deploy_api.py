"""Deploy config (mmrepmlp.apis.deploy) and per-module conversion (mmrepmlp.deployment)."""
import os.path as osp

import torch

from mmrepmlp.apis import load_model, make_deploy_config
from mmrepmlp.apis.deploy import default_output_paths
from mmrepmlp.deployment import convert_model
from mmrepmlp.tasks import Task

CLS_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'configs',
                      'tiny_repmlp_resnet.py')


def test_deploy_config_flags_reparameterizable_modules_only():
    _, cfg = load_model(CLS_CONFIG)  # sets the registry scope the lookup uses

    deploy_cfg, flagged = make_deploy_config(cfg)

    assert flagged == ['model.backbone']
    assert deploy_cfg.model.backbone.deploy is True
    assert 'deploy' not in deploy_cfg.model.head and 'deploy' not in deploy_cfg.model.neck
    assert 'deploy' not in cfg.model.backbone  # the input config is left alone


def test_convert_model_reports_each_converted_module_once():
    model, _ = load_model(CLS_CONFIG)
    lines = []

    converted = convert_model(model, lines.append)

    repmlp_blocks = {'backbone.stage2.1.repmlp', 'backbone.stage3.1.repmlp'}
    assert repmlp_blocks <= set(converted)
    # containers (residual blocks, the backbone) convert through their children
    assert 'backbone' not in converted and 'backbone.stage2.1' not in converted
    assert len(lines) == len(converted) == len(set(converted))
    assert lines[-1].endswith(f'[{len(converted)}]')
    # the reporting wrappers are gone again
    assert all(not {'switch_to_deploy', 'reparameterize', 'fuse'} & set(vars(m))
               for m in model.modules())
    assert convert_model(model, lines.append) == []  # nothing left to convert


def test_compare_outputs_is_relative_to_the_largest_output():
    reference = [torch.tensor([1.0, -4.0]), torch.tensor([2.0])]
    outputs = [torch.tensor([1.0, -4.0]), torch.tensor([2.5])]

    assert Task().compare_outputs(reference, outputs) == (0.5, 0.125)


def test_compare_outputs_is_nan_when_an_output_is_not_finite():
    reference = [torch.tensor([1.0, float('nan')])]

    max_abs, max_rel = Task().compare_outputs(reference, [torch.tensor([1.0, 2.0])])

    assert max_abs != max_abs and max_rel != max_rel  # NaN: fails every tolerance check


def test_default_output_paths():
    assert default_output_paths('cfgs/net.py', 'work/epoch_3.pth') == (
        'work/epoch_3_deploy.pth', osp.abspath('work/net_deploy.py'))
    assert default_output_paths('cfgs/net.py', 'a.pth', '/x/y.pth') == ('/x/y.pth',
                                                                        '/x/net_deploy.py')
    # an existing folder, or a path ending in a separator, gets the default file name
    assert default_output_paths('cfgs/net.py', 'w/a.pth', '/x/') == ('/x/a_deploy.pth',
                                                                     '/x/net_deploy.py')
