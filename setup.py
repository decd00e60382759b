"""rtkd's packaging, in the OpenMMLab layout.

* ``install_requires`` holds version *ranges* (``requirements/runtime.txt``); the exact, tested
  versions live in one place, ``requirements/constraints.txt``, which ``tools/setup_env.sh``
  passes to every ``pip install`` (``pip install -c requirements/constraints.txt ...``).
* Only the ``rtkd`` package is installed (``tests``, ``tools``, ``configs`` and the add-ons in
  ``projects/`` are not Python packages of the distribution).
* ``configs/``, ``tools/`` and ``model-index.yml`` are shipped inside the package as
  ``rtkd/.mim/`` (what mmseg / mmdet do), so ``rtkd::<folder>/<file>.py`` config paths work after
  a plain ``pip install .`` (see ``rtkd/config_paths.py``).
"""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version():
    scope = {}
    with open(osp.join(ROOT, 'rtkd', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(path):
    """Requirement lines of a file, without comments, blank lines and pip options (-r/-c)."""
    out = []
    with open(osp.join(ROOT, path)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                out.append(line)
    return out


def add_mim_extension():
    """Copy ``configs/``, ``tools/`` and ``model-index.yml`` into ``rtkd/.mim`` for a build.

    Done for wheel / sdist builds (``pip install .`` builds a wheel). Editable installs and
    source checkouts need no copy: ``rtkd.config_paths`` reads the repository's ``configs/``.
    The copy is made fresh at each build, so it never holds stale files.
    """
    if not ({'bdist_wheel', 'sdist', 'build', 'build_py', 'install'} & set(sys.argv)):
        return
    mim = osp.join(ROOT, 'rtkd', '.mim')
    if osp.islink(mim):
        os.unlink(mim)
    elif osp.isdir(mim):
        shutil.rmtree(mim)
    os.makedirs(mim)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    for name in MIM_FILES:
        src = osp.join(ROOT, name)
        if osp.isdir(src):
            shutil.copytree(src, osp.join(mim, name), ignore=ignore)
        elif osp.isfile(src):
            shutil.copyfile(src, osp.join(mim, name))


def readme():
    path = osp.join(ROOT, 'README.md')
    return open(path, encoding='utf-8').read() if osp.isfile(path) else ''


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='rtkd',
        version=read_version(),
        description='Real-time segmentation networks and config-driven knowledge distillation '
        'for OpenMMLab 2.x (mmseg, mmdet, mmpretrain)',
        long_description=readme(),
        long_description_content_type='text/markdown',
        packages=find_packages(include=('rtkd', 'rtkd.*')),
        include_package_data=True,
        package_data={'rtkd': ['.mim/model-index.yml', '.mim/configs/**/*', '.mim/tools/**/*']},
        python_requires='>=3.9',
        install_requires=read_requirements('requirements/runtime.txt'),
        extras_require={
            'tests':
            read_requirements('requirements/tests.txt'),
            'mim':
            read_requirements('requirements/mminstall.txt'),
            'all': (read_requirements('requirements/runtime.txt') +
                    read_requirements('requirements/tests.txt')),
        },
        license='Apache-2.0',
        zip_safe=False,
    )
