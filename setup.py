"""Install mmrepmlp.

Configs, tools and the model index are packed under ``mmrepmlp/.mim`` when a wheel (or a
regular, non-editable install) is built, the way MMPretrain does it, so that an installed
package finds them. An editable install does not run this step; there the package finds them
in the source tree instead (see ``mmrepmlp.utils.find_repo_file``).
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


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


setup(
    name='mmrepmlp',
    version=read_version(),
    description='RepMLP (re-parameterized MLP blocks) for MMPretrain and MMSegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.9',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=False,
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'seg': read_requirements('segmentation.txt'),
        'deploy': read_requirements('deploy.txt'),
        'tests': read_requirements('tests.txt'),
    },
    cmdclass={'build_py': BuildPyWithMim},
    zip_safe=False,
)
