"""The package installs, imports with the OpenMMLab stack, and registers itself once."""
import os.path as osp
import subprocess
import sys
import zipfile

import mmrepmlp
from mmrepmlp.utils import REPO_ROOT, find_repo_file, register_model_index


def test_imports_with_mmseg_and_mmpretrain():
    code = 'import mmrepmlp, mmseg.models, mmpretrain.models; print(mmrepmlp.__version__)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == mmrepmlp.__version__


def test_models_registered_in_mmpretrain():
    from mmpretrain.registry import MODELS

    assert MODELS.get('RepMLPBlock') is mmrepmlp.models.RepMLPBlock
    # MMSeg configs refer to it across scopes.
    assert MODELS.build(dict(type='mmpretrain.RepMLPBlock', in_channels=4, out_channels=4,
                             in_size=8, partition_size=4,
                             local_kernels=(1, 3))) is not None


def test_model_index_registered_once():
    from mmpretrain.apis import ModelHub

    register_model_index()  # a second call must neither raise nor register twice
    assert ModelHub._mmrepmlp_registered


def test_repo_files_found_in_checkout():
    assert find_repo_file('model-index.yml') == osp.join(REPO_ROOT, 'model-index.yml')
    assert osp.isdir(find_repo_file('configs'))


def test_wheel_packs_configs_and_model_index(tmp_path):
    out = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
         '-w', str(tmp_path), REPO_ROOT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (wheel, ) = tmp_path.glob('mmrepmlp-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    assert 'mmrepmlp/.mim/model-index.yml' in names
    assert any(n.startswith('mmrepmlp/.mim/configs/') for n in names)
    assert any(n.startswith('mmrepmlp/.mim/tools/') for n in names)
    assert 'mmrepmlp/reparam/functional.py' in names
