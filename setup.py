from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open('rtkd/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(path):
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


setup(
    name='rtkd',
    version=read_version(),
    description='Real-time segmentation networks and config-driven knowledge distillation '
    'for OpenMMLab 2.x (mmseg, mmdet, mmpretrain)',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.9',
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={'tests': read_requirements('requirements/tests.txt')},
    license='Apache-2.0',
    zip_safe=False,
)
