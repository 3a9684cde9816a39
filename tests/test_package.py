"""The package installs, imports with the OpenMMLab stack (and without MMSegmentation), and
registers its models and model index."""
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import zipfile

import torch

import mmrepmlp
from mmrepmlp.utils import REPO_ROOT, find_repo_file, register_model_index


def test_imports_with_mmseg_and_mmpretrain():
    code = 'import mmrepmlp, mmseg.models, mmpretrain.models; print(mmrepmlp.__version__)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == mmrepmlp.__version__


def test_imports_without_mmseg_and_segmentation_says_what_to_install(tmp_path):
    config = tmp_path / 'seg.py'
    config.write_text("default_scope = 'mmseg'\nmodel = dict(type='EncoderDecoder')\n")
    code = ('import sys; sys.modules["mmseg"] = None\n'  # as if MMSegmentation were missing
            'import mmrepmlp\n'
            'from mmrepmlp.apis import build_model, load_config\n'
            'from mmrepmlp.utils.errors import InputError\n'
            'try:\n'
            f'    build_model(load_config({str(config)!r}))\n'
            'except InputError as error:\n'
            '    print(error)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'this is a segmentation config' in out.stdout
    assert 'pip install "mmsegmentation==1.2.2"' in out.stdout


def test_models_are_registered_in_mmpretrain_and_build_across_scopes():
    from mmengine.registry import MODELS as ROOT_MODELS
    from mmpretrain.registry import MODELS

    assert MODELS.get('RepMLPBlock') is mmrepmlp.models.RepMLPBlock
    # MMSeg configs refer to it across scopes
    block = ROOT_MODELS.build(dict(type='mmpretrain.RepMLPBlock', in_channels=4,
                                   out_channels=4, in_size=8, partition_size=4,
                                   local_kernels=(1, 3))).eval()
    assert tuple(block(torch.rand(2, 4, 8, 8)).shape) == (2, 4, 8, 8)


def test_model_index_registers_once_and_resolves_every_name():
    import mmpretrain

    names = mmpretrain.list_models('repmlp-res50*')
    register_model_index()  # a second call must neither raise nor register twice
    assert mmpretrain.list_models('repmlp-res50*') == names
    assert len(names) == len(set(names)) > 0
    config = mmpretrain.get_model(names[0], device='meta')._config
    assert config.model.backbone.type == 'RepMLPResNet'


def test_repo_files_found_in_checkout():
    assert find_repo_file('model-index.yml') == osp.join(REPO_ROOT, 'model-index.yml')
    assert osp.isdir(find_repo_file('configs'))


def test_wheel_packs_configs_and_model_index(tmp_path):
    # Build from a copy: setuptools leaves build/ in the source tree it builds.
    tracked = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                             cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.splitlines()
    source = tmp_path / 'source'
    for name in tracked:
        if osp.isfile(osp.join(REPO_ROOT, name)):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(osp.join(REPO_ROOT, name), source / name)
    out = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
         '-w', str(tmp_path), str(source)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (wheel, ) = tmp_path.glob('mmrepmlp-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    assert 'mmrepmlp/.mim/model-index.yml' in names
    assert any(n.startswith('mmrepmlp/.mim/configs/') for n in names)
    assert any(n.startswith('mmrepmlp/.mim/tools/') for n in names)
    assert 'mmrepmlp/reparam/functional.py' in names
    assert not osp.exists(osp.join(REPO_ROOT, 'build'))
    # the import hook, at the top of site-packages: with it, mmseg imports without mmrepmlp
    site_dir = tmp_path / 'site'
    for name in ('mmrepmlp-import-hook.pth', 'mmrepmlp_import_hook.py'):
        zipfile.ZipFile(wheel).extract(name, site_dir)
    # -S: site-packages are added by hand, after the wheel's hook, so that it is the hook used
    code = (f'import site; site.addsitedir({str(site_dir)!r})\n'
            f'for path in {site.getsitepackages()!r}: site.addsitedir(path)\n'
            'from mmseg.apis import init_model\n'
            'import sys; print(sys.modules["mmrepmlp_import_hook"].__file__)')
    out = subprocess.run([sys.executable, '-S', '-c', code], capture_output=True, text=True,
                         cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().startswith(str(site_dir))
