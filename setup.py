"""Install mmrepmlp.

Configs, tools and the model index are packed under ``mmrepmlp/.mim`` when a wheel (or a
regular, non-editable install) is built, the way MMPretrain does it, so that an installed
package finds them. An editable install does not run this step; there the package finds them
in the source tree instead (see ``mmrepmlp.utils.find_repo_file``).

Both kinds of install put ``mmrepmlp-import-hook.pth`` into site-packages: with mmcv-lite it
makes the first import of mmseg import mmrepmlp first (``mmrepmlp_import_hook.py``), so that
MMSegmentation's own entry points work without ``import mmrepmlp``.
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')
IMPORT_HOOK_PTH = 'mmrepmlp-import-hook.pth'
# The versions mmrepmlp supports, lower ends tested (docs/get_started.md). requirements/*.txt pin
# the development lock that `make` installs. mmcv (full mmcv, or mmcv-lite where full mmcv does
# not build) is not required by name, since both install the package `mmcv` and one would
# overwrite the other: `import mmrepmlp` checks its version (mmrepmlp.version.check_mmcv).
INSTALL_REQUIRES = [
    'torch>=2.13',
    'torchvision>=0.28',
    'mmengine>=0.10.5,<1.0',
    'mmpretrain>=1.1.1,<2.0',
    'numpy',
    'scikit-learn',
    'matplotlib',
]
EXTRAS_REQUIRE = {
    'seg': ['mmsegmentation>=1.2.2,<1.3', 'ftfy', 'regex'],
    'deploy': ['onnx>=1.23', 'onnxruntime>=1.32', 'onnxscript>=0.7', 'torchao>=0.18'],
}


def read_requirements(name):
    path = osp.join(HERE, 'requirements', name)
    with open(path) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'mmrepmlp', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


class BuildPyWithMim(build_py):
    """Copy configs, tools and model-index.yml into ``mmrepmlp/.mim`` of the build."""

    def run(self):
        super().run()
        mim_dir = osp.join(self.build_lib, 'mmrepmlp', '.mim')
        os.makedirs(mim_dir, exist_ok=True)
        for name in MIM_FILES:
            src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
            if osp.isdir(dst):
                shutil.rmtree(dst)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__'))
            elif osp.isfile(src):
                shutil.copyfile(src, dst)
        shutil.copyfile(osp.join(HERE, IMPORT_HOOK_PTH), osp.join(self.build_lib, IMPORT_HOOK_PTH))


class _WithImportHook:
    """An editable install's strategy (setuptools' ``EditableStrategy`` protocol) that also
    writes the import hook's ``.pth`` into the editable wheel."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.strategy.__exit__(*exc_info)

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        with open(osp.join(HERE, IMPORT_HOOK_PTH), 'rb') as f:
            wheel.writestr(IMPORT_HOOK_PTH, f.read())


class EditableWheelWithImportHook(editable_wheel):
    """``pip install -e .`` with the import hook's ``.pth`` as a regular install has it."""

    def _select_strategy(self, *args, **kwargs):
        return _WithImportHook(super()._select_strategy(*args, **kwargs))


setup(
    name='mmrepmlp',
    version=read_version(),
    description='RepMLP (re-parameterized MLP blocks) for MMPretrain and MMSegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.9',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    py_modules=['mmrepmlp_import_hook'],
    include_package_data=False,
    install_requires=INSTALL_REQUIRES,
    extras_require=dict(EXTRAS_REQUIRE, tests=read_requirements('tests.txt')),
    cmdclass={'build_py': BuildPyWithMim, 'editable_wheel': EditableWheelWithImportHook},
    zip_safe=False,
)
