"""The documented paths, walked as a new user walks them: the command blocks of each task's
page (those marked ``<!-- walk -->``), in the order the page gives them, exactly as written,
in a fresh shell in a checkout-like folder holding small generated data in the layout the page
describes. Each walk starts with the activation block of docs/get_started.md, on a PATH
without the test's own interpreter, so a page that forgets it fails as a user would."""
import os
import os.path as osp
import re
import subprocess
import sys

from helpers_data import make_cityscapes, make_face_folders, make_imagenet
from helpers_tools import REPO_ROOT, tool_env

WALK_MARK = '<!-- walk -->'
BLOCK = re.compile(r'^```(\w+)[^\n]*\n(.*?)^```', re.MULTILINE | re.DOTALL)


def walked_blocks(page):
    """``[(language, code)]`` of the fenced blocks of ``docs/<page>`` right after a walk mark."""
    text = open(osp.join(REPO_ROOT, 'docs', page)).read()
    blocks = []
    for part in text.split(WALK_MARK)[1:]:
        match = BLOCK.match(part.lstrip('\n'))
        assert match, f'{page}: {WALK_MARK} is not followed by a fenced block'
        blocks.append((match[1], match[2]))
    return blocks


def walk_script(pages):
    """One bash script: the walked blocks of get_started.md, then of ``pages``, in order;
    python blocks through the activated interpreter."""
    lines = ['set -eo pipefail']
    for page in ('get_started.md', *pages):
        for language, code in walked_blocks(page):
            assert language in ('shell', 'python'), (page, language)
            lines.append(code if language == 'shell' else f"python - <<'PYTHON'\n{code}PYTHON")
    return '\n'.join(lines) + '\n'


def checkout(root):
    """A folder that looks like the checkout to the documented commands: the repository's
    configs and tools, and .venv (the environment running these tests)."""
    root.mkdir()
    for name in ('configs', 'tools'):
        os.symlink(osp.join(REPO_ROOT, name), root / name)
    os.symlink(sys.prefix, root / '.venv')
    return root


def fresh_shell_env():
    """A user's shell: this checkout's code importable, but no interpreter of the test's
    environment on PATH until the documented activation."""
    env = tool_env()
    hidden = {osp.dirname(sys.executable), osp.join(sys.prefix, 'bin')}
    env['PATH'] = os.pathsep.join(p for p in env['PATH'].split(os.pathsep) if p not in hidden)
    env.pop('VIRTUAL_ENV', None)
    return env


def walk(root, pages):
    result = subprocess.run(['bash', '-c', walk_script(pages)], cwd=root, env=fresh_shell_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def test_the_tools_need_the_documented_activation(tmp_path):
    root = checkout(tmp_path / 'checkout')
    command = 'python tools/train.py --help > /dev/null'
    without = subprocess.run(['bash', '-c', command], cwd=root, env=fresh_shell_env(),
                             capture_output=True, text=True)
    with_docs = subprocess.run(['bash', '-c', walk_script(()) + command], cwd=root,
                               env=fresh_shell_env(), capture_output=True, text=True)
    assert without.returncode != 0  # `python` is not the environment's, or there is none
    assert with_docs.returncode == 0, with_docs.stderr[-3000:]


def test_classification_and_deployment(tmp_path):
    root = checkout(tmp_path / 'checkout')
    make_imagenet(root / 'data' / 'imagenet')

    log = walk(root, ['classification.md', 'deploy.md'])

    work = root / 'work_dirs' / 'light_g8_check'
    assert len(re.findall(r'accuracy/top1: ([0-9.]+)', log)) == 3  # val, test, test deploy
    assert (work / 'epoch_1_deploy.pth').is_file() and (work / 'epoch_1_deploy.onnx').is_file()
    assert "input 'input': float32 (1, 3, 224, 224)" in log
    assert re.search(r'^\(1, 1000\) \d+$', log, re.MULTILINE)  # onnxruntime on one image


def test_face_recognition(tmp_path):
    root = checkout(tmp_path / 'checkout')
    make_face_folders(root / 'data' / 'my_faces')

    log = walk(root, ['face.md'])

    assert 'packed 4 identities, 12 images' in log and 'packed 12 pairs' in log
    assert len(re.findall(r'lfw/accuracy: [0-9.]+', log)) == 2  # validation and test
    assert (root / 'work_dirs' / 'my_faces' / 'embeddings.npz').is_file()
    assert re.search(r'rank-1: [0-9.]+% \(\d+ of 8 same-identity probe pairs\)', log)


def test_segmentation(tmp_path):
    root = checkout(tmp_path / 'checkout')
    make_cityscapes(root / 'data' / 'cityscapes')

    log = walk(root, ['segmentation.md'])

    assert len(re.findall(r'mIoU: [0-9.]+', log)) == 2  # sliding window, whole image
    work = root / 'work_dirs' / 'pspnet_small'
    assert (work / 'iter_1_deploy.pth').is_file()
    assert re.search(r'max relative difference [0-9.e+-]+', log)
