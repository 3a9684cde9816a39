"""What the tools leave behind when they refuse or are interrupted: a refused test.py run
leaves no work dir, and train.py stopped with Ctrl-C names the checkpoints it saved."""
import pytest
import torch
from helpers_tools import load_tool, make_image_folders, run_tool, write_config

from mmrepmlp.apis import load_model


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('leftovers')
    data = make_image_folders(root / 'data')
    config = write_config(root / 'tiny.py', data)
    other = write_config(root / 'other.py', data, extra='model = dict(head=dict(num_classes=5))\n')
    wrong = root / 'other.pth'
    torch.save({'state_dict': load_model(other)[0].state_dict()}, wrong)
    return root, data, config, str(wrong)


@pytest.mark.parametrize('work_dir_exists', [False, True])
def test_refused_test_run_leaves_the_work_dir_as_it_was(tiny, tmp_path, monkeypatch,
                                                        work_dir_exists):
    _, _, config, wrong = tiny
    monkeypatch.chdir(tmp_path)
    work = tmp_path / 'work_dirs' / 'mine'
    if work_dir_exists:
        (work / 'earlier_run').mkdir(parents=True)

    with pytest.raises(SystemExit) as refused:
        load_tool('test.py').main([config, wrong, '--work-dir', str(work)])

    assert 'does not fit' in refused.value.code
    if work_dir_exists:
        assert [p.name for p in work.iterdir()] == ['earlier_run']
    else:
        assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_training_names_the_saved_checkpoints(tiny, tmp_path):
    root, data, _, _ = tiny
    config = write_config(tmp_path / 'interrupted.py', data, extra="""
train_cfg = dict(_delete_=True, by_epoch=False, max_iters=6, val_interval=100)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
custom_imports = dict(imports=['mmrepmlp', 'probe_hooks'], allow_failed_imports=False)
custom_hooks = [dict(type='InterruptAfterIterHook', at_iter=3)]
""")
    work = tmp_path / 'work'

    result = run_tool(['train.py', config, '--work-dir', work], tmp_path)

    assert result.returncode == 130, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('interrupted: ') and 'no output' not in last
    assert str(work / 'iter_2.pth') in last and '--resume' in last
    assert (work / 'iter_2.pth').is_file()
