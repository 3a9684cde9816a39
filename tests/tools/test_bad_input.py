"""Every tool against bad input: missing, empty, truncated, random-bytes, wrong-architecture,
deploy-form and malicious inputs; unwritable outputs and outputs that are an input; Ctrl-C
while an output is written.

Each case asserts the exit status, that the message is one line naming the problem (its
subject) and the fix (after the ``;``), that no input changed (their bytes are hashed before
and after) and that no output appeared: an output that existed before keeps its bytes, and
no temporary file is left next to it. The tools run in-process (their ``main``), a few also as
subprocesses for the real exit status and stderr.
"""
import hashlib
import os
import subprocess

import pytest
import torch
from helpers_tools import load_tool, make_image_folders, run_tool, write_config

from mmrepmlp.apis import convert_checkpoint, load_model
from mmrepmlp.reparam import randomize_norm_layers

TOOLS = {
    'train': 'train.py',
    'test': 'test.py',
    'deploy': 'deploy_convert.py',
    'flops': 'analysis_tools/get_flops.py',
    'benchmark': 'analysis_tools/benchmark.py',
    'vis': 'visualizations/vis_fc3.py',
    'import': 'model_converters/official_to_mmrepmlp.py',
    'export': 'deployment/export.py',
}
OUTPUT_NAMES = {'test': 'preds.pkl', 'deploy': 'model_deploy.pth', 'vis': 'fc3.png',
                'import': 'imported.pth', 'export': 'model.onnx'}


class Evil:
    """Pickles as a call that would create ``marker``: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return subprocess.call, (['touch', str(self.marker)], )


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """The good inputs (config, training checkpoint) and one bad input of every kind."""
    root = tmp_path_factory.mktemp('bad_input')
    data = make_image_folders(root / 'data')
    config = write_config(root / 'tiny.py', data)
    model = randomize_norm_layers(load_model(config)[0])
    good = root / 'good.pth'
    torch.save({'state_dict': model.state_dict()}, good)
    other = write_config(root / 'other.py', data, extra='model = dict(head=dict(num_classes=5))\n')
    wrong = root / 'wrong_arch.pth'
    torch.save({'state_dict': load_model(other)[0].state_dict()}, wrong)
    deploy = convert_checkpoint(config, str(good), str(root / 'deployed' / 'd.pth'),
                                log=lambda line: None).checkpoint
    raw = good.read_bytes()
    bad = {
        'missing': root / 'missing.pth',
        'empty': root / 'empty.pth',
        'truncated': root / 'truncated.pth',
        'random': root / 'random.pth',
        'wrong_arch': wrong,
        'deploy_form': deploy,
        'malicious': root / 'evil.pth',
    }
    bad['empty'].write_bytes(b'')
    bad['truncated'].write_bytes(raw[:len(raw) // 2])
    bad['random'].write_bytes(os.urandom(4096))
    torch.save({'state_dict': model.state_dict(), 'meta': Evil(root / 'pwned')},
               bad['malicious'])
    bad_configs = {'missing': root / 'missing.py', 'empty': root / 'empty.py',
                   'random': root / 'random.py'}
    bad_configs['empty'].write_text('')
    bad_configs['random'].write_bytes(b'model = dict(\x00\xff')
    return dict(root=root, config=config, good=str(good), bad=bad, bad_configs=bad_configs,
                marker=root / 'pwned')


def argv(tool, config, checkpoint, out, work):
    """The tool's command line for these inputs; ``out`` is its output (None: it has none)."""
    return {
        'train': [config, '--work-dir', work, '--resume', checkpoint],
        'test': [config, checkpoint, '--work-dir', work, '--out', out],
        'deploy': [config, checkpoint, '--out', out],
        'flops': [config],
        'benchmark': [config, checkpoint, '--rounds', '1', '--warmup', '0'],
        'vis': [config, checkpoint, '--block', 'backbone.stage2.1.repmlp', '--out', out],
        'import': [checkpoint, out],
        'export': [config, checkpoint, '--format', 'onnx', '--out', out],
    }[tool]


def digest(paths):
    out = {}
    for path in paths:
        if os.path.isfile(path):
            out[str(path)] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    return out


def run_in_process(tool, args):
    """The tool's exit code (0, 1 with the message, or another status) and message."""
    try:
        load_tool(TOOLS[tool]).main([str(a) for a in args])
    except SystemExit as exit_info:
        code = exit_info.code
        return (1, code) if isinstance(code, str) else (code, '')
    return 0, ''


def assert_refused(tool, args, inputs, out, *fragments):
    """Run and check the contract: status 1, one line naming ``fragments`` and a fix, no
    input changed, ``out`` as it was and nothing new beside it."""
    before = digest(inputs)
    out_before = digest([out]) if out else {}
    folder = os.path.dirname(str(out)) if out else None
    listing = sorted(os.listdir(folder)) if folder and os.path.isdir(folder) else []

    status, message = run_in_process(tool, args)

    assert status == 1, (tool, status, message)
    assert message.startswith('error: ') and '\n' not in message, message
    assert ';' in message, f'no fix named in: {message}'
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert digest(inputs) == before
    if out:
        assert digest([out]) == out_before
        assert (sorted(os.listdir(folder)) if os.path.isdir(folder) else []) == listing
    return message


CHECKPOINT_TOOLS = ('train', 'test', 'deploy', 'benchmark', 'vis', 'import', 'export')
EXPECTED = {  # what the message names, per bad checkpoint (None: the path itself only)
    'missing': 'does not exist',
    'empty': 'cannot read checkpoint',
    'truncated': 'cannot read checkpoint',
    'random': 'cannot read checkpoint',
    'malicious': 'refused',
}


def expected_for(kind, tool):
    if kind == 'wrong_arch':
        return {'import': 'matches no RepMLP-ResNet model',
                'train': 'holds weights only'}.get(tool, 'does not fit')
    if kind == 'deploy_form':
        return {'import': 'matches no RepMLP-ResNet model',
                'train': 'holds a deploy checkpoint'}.get(tool, 'does not fit')
    return EXPECTED[kind]


# A deploy checkpoint is no error for deploy_convert, which leaves it alone (the next test).
DEPLOY_FORM_IS_FINE = ('deploy', )


def output_for(tool, root, case):
    """An output path that already holds a previous version (which must survive)."""
    if tool not in OUTPUT_NAMES:
        return None
    folder = root / f'out_{tool}_{case}'
    folder.mkdir(exist_ok=True)
    out = folder / OUTPUT_NAMES[tool]
    out.write_bytes(b'previous output')
    return out


BAD_CHECKPOINTS = ('missing', 'empty', 'truncated', 'random', 'wrong_arch', 'deploy_form',
                   'malicious')


@pytest.mark.parametrize('tool, kind', [(tool, kind) for tool in CHECKPOINT_TOOLS
                                        for kind in BAD_CHECKPOINTS
                                        if not (tool in DEPLOY_FORM_IS_FINE
                                                and kind == 'deploy_form')])
def test_bad_checkpoint(files, tool, kind, tmp_path):
    checkpoint = files['bad'][kind]
    out = output_for(tool, tmp_path, kind)
    args = argv(tool, files['config'], checkpoint, out, tmp_path / 'work')

    assert_refused(tool, args, [files['config'], checkpoint], out, str(checkpoint),
                   expected_for(kind, tool))
    assert not files['marker'].exists()  # the malicious pickle never ran


def test_deploy_convert_leaves_a_deploy_checkpoint_alone(files, tmp_path):
    out = output_for('deploy', tmp_path, 'again')
    before = digest([files['bad']['deploy_form'], out])

    status, _ = run_in_process('deploy', argv('deploy', files['config'],
                                              files['bad']['deploy_form'], out, None))

    assert status == 0 and digest([files['bad']['deploy_form'], out]) == before


@pytest.mark.parametrize('kind', ['missing', 'empty', 'random'])
@pytest.mark.parametrize('tool', ['train', 'test', 'deploy', 'flops', 'benchmark', 'vis'])
def test_bad_config(files, tool, kind, tmp_path):
    config = files['bad_configs'][kind]
    out = output_for(tool, tmp_path, kind)
    args = argv(tool, config, files['good'], out, tmp_path / 'work')
    if tool == 'train':
        args = args[:3]  # no --resume

    fragment = {'missing': 'does not exist', 'empty': 'defines no `model`',
                'random': 'cannot read config'}[kind]
    assert_refused(tool, args, [config, files['good']], out, str(config), fragment)


@pytest.mark.parametrize('tool', ['test', 'deploy', 'vis', 'import', 'export'])
def test_output_that_is_an_input_by_another_spelling(files, tool, tmp_path):
    link = tmp_path / 'link.pth'
    os.symlink(files['good'], link)
    hard = tmp_path / 'hard.pth'
    os.link(files['good'], hard)
    relative = os.path.relpath(files['good'])
    for out in (files['good'], relative, link, hard):
        args = argv(tool, files['config'], files['good'], out, tmp_path / 'work')
        assert_refused(tool, args, [files['config'], files['good']], None, 'over the input')


@pytest.mark.parametrize('tool', ['test', 'deploy', 'vis', 'import', 'export'])
def test_unwritable_output_is_refused_before_any_work(files, tool, tmp_path):
    extension = os.path.splitext(OUTPUT_NAMES[tool])[1]
    for out in ('/proc/mmrepmlp', os.path.join(files['good'], 'x')):
        out += extension
        args = argv(tool, files['config'], files['good'], out, tmp_path / 'work')
        assert_refused(tool, args, [files['config'], files['good']], None, 'output', out)


# The importer writes only official checkpoints, which the tiny model is not; its writes go
# through the same module (tests/tools/test_official_import.py).
@pytest.mark.parametrize('tool', ['test', 'deploy', 'vis', 'export'])
def test_ctrl_c_while_writing_leaves_the_previous_output(files, tool, tmp_path, monkeypatch):
    import mmrepmlp.utils.files as file_module

    def interrupted(path, directory=False):
        raise KeyboardInterrupt  # Ctrl-C while the written bytes are flushed to disk

    monkeypatch.setattr(file_module, '_fsync_path', interrupted)
    out = output_for(tool, tmp_path, 'interrupted')
    before = digest([files['config'], files['good'], out])
    listing = sorted(os.listdir(out.parent))

    status, _ = run_in_process(tool, argv(tool, files['config'], files['good'], out,
                                          tmp_path / 'work'))

    assert status == 130
    assert digest([files['config'], files['good'], out]) == before
    assert sorted(os.listdir(out.parent)) == listing


def test_exit_status_and_stderr_from_the_command_line(files, tmp_path):
    for tool, args in (('test.py', [files['config'], files['bad']['truncated']]),
                       ('deploy_convert.py', [files['config'], files['bad']['malicious']])):
        result = run_tool([tool, *args], tmp_path)
        assert result.returncode == 1, result.stderr[-2000:]
        assert 'Traceback' not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith('error: ')
    assert not files['marker'].exists()


@pytest.mark.parametrize('kind', ['wrong_arch', 'deploy_form'])
def test_train_refuses_to_start_from_a_checkpoint_of_another_model(files, kind, tmp_path):
    checkpoint = files['bad'][kind]
    args = [files['config'], '--work-dir', tmp_path / 'work', '--cfg-options',
            f'load_from={checkpoint}']

    assert_refused('train', args, [files['config'], checkpoint], None,
                   f'checkpoint {checkpoint} does not fit the model of the config',
                   'keys with another shape' if kind == 'wrong_arch' else 'missing keys (',
                   '--non-strict to load what fits')
    assert not list((tmp_path / 'work').glob('*.pth'))  # nothing was trained


def test_resuming_a_deploy_checkpoint_points_at_its_training_checkpoint(files, tmp_path):
    checkpoint = files['bad']['deploy_form']

    message = assert_refused('train', argv('train', files['config'], checkpoint, None,
                                           tmp_path / 'work'),
                             [files['config'], checkpoint], None, 'holds a deploy checkpoint',
                             'resume from the training checkpoint it was converted from')
    assert 'load_from' not in message  # which would train from missing BN weights
