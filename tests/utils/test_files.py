"""mmrepmlp.utils.files: the one way outputs are written."""
import os

import pytest

import mmrepmlp.utils.files as files
from mmrepmlp.utils.errors import InputError


def umask_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_outputs_get_the_umask_mode_not_the_temporary_files(tmp_path, umask):
    previous = os.umask(umask)
    try:
        files.write_text(tmp_path / 'a.py', 'x = 1\n')
        files.torch_save({'w': 1}, tmp_path / 'b.pth')
        mode = umask_mode()
    finally:
        os.umask(previous)
    for name in ('a.py', 'b.pth'):
        assert os.stat(tmp_path / name).st_mode & 0o777 == mode
    assert sorted(os.listdir(tmp_path)) == ['a.py', 'b.pth']


@pytest.mark.parametrize('failure', [ValueError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing(tmp_path, failure):
    target = tmp_path / 'out.txt'
    target.write_text('previous')

    def write(tmp):
        with open(tmp, 'w') as f:
            f.write('half')
        raise failure

    with pytest.raises(failure):
        files.atomic_write(target, write)

    assert target.read_text() == 'previous'
    assert os.listdir(tmp_path) == ['out.txt']


def test_staged_files_commit_together_or_not_at_all(tmp_path, monkeypatch):
    first, second = tmp_path / 'model.pth', tmp_path / 'model.py'
    first.write_text('old model')
    real_replace = os.replace

    def failing_second(src, dst):
        if str(dst) == str(second):
            raise OSError('disk full')
        real_replace(src, dst)

    monkeypatch.setattr(files.os, 'replace', failing_second)
    with pytest.raises(OSError, match='disk full'):
        with files.staged_files([first, second]) as (tmp_first, tmp_second):
            for tmp, text in ((tmp_first, 'new model'), (tmp_second, 'new config')):
                with open(tmp, 'w') as f:
                    f.write(text)
    # the first rename happened and was rolled back; the second file never appeared
    assert first.read_text() == 'old model' and not second.exists()
    assert os.listdir(tmp_path) == ['model.pth']

    monkeypatch.setattr(files.os, 'replace', real_replace)
    with files.staged_files([first, second]) as temporaries:
        for tmp in temporaries:
            with open(tmp, 'w') as f:
                f.write('new')
    assert first.read_text() == second.read_text() == 'new'


def test_check_not_overwriting_sees_every_spelling(tmp_path, monkeypatch):
    source = tmp_path / 'data' / 'ckpt.pth'
    source.parent.mkdir()
    source.write_text('weights')
    os.symlink(source, tmp_path / 'link.pth')
    os.link(source, tmp_path / 'hard.pth')
    monkeypatch.chdir(tmp_path)
    for output in (source, 'data/ckpt.pth', 'data/../data/ckpt.pth', tmp_path / 'link.pth',
                   tmp_path / 'hard.pth', tmp_path / 'data', tmp_path):
        with pytest.raises(InputError, match='over the input'):
            files.check_not_overwriting([output], [source])
    files.check_not_overwriting([tmp_path / 'other.pth', None], [source, None])


def test_check_writable(tmp_path):
    (tmp_path / 'file').write_text('x')
    files.check_writable(tmp_path / 'new' / 'deeper' / 'out.pth')  # folders get created
    for path, message in ((tmp_path, 'is a directory'),
                          (tmp_path / 'file' / 'out.pth', 'is a file'),
                          ('/proc/mmrepmlp-test.pth', 'cannot write')):
        with pytest.raises(InputError, match=message):
            files.check_writable(path)
    assert not (tmp_path / 'new').exists()


def test_dump_picks_the_format_from_the_extension(tmp_path):
    files.dump({'a': 1}, tmp_path / 'm.json')
    assert (tmp_path / 'm.json').read_text().strip() == '{"a": 1}'
    with pytest.raises(InputError, match='.json, .yaml or .pkl'):
        files.dump({'a': 1}, tmp_path / 'm.txt')
