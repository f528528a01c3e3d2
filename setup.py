import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    with open(osp.join(HERE, 'requirements', name)) as file:
        lines = (line.split('#')[0].strip() for line in file)
        return [line for line in lines if line]


def read_version():
    scope = {}
    with open(osp.join(HERE, 'mmcal', 'version.py')) as file:
        exec(file.read(), scope)
    return scope['__version__']


setup(
    name='mmcal',
    version=read_version(),
    description='Counterfactual Attention Learning (CAL) with WS-DAN '
    'attention cropping for fine-grained classification in MMPretrain',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['mmcal', 'mmcal.*']),
    # configs/ and tools/ ship inside the package as mmpretrain's do, so
    # that ``_base_ = 'mmcal::...'`` and the tools work from any install:
    # mmcal/.mim/ links to them in the source tree, and the wheel holds
    # copies.
    package_data=dict(mmcal=[
        '.mim/configs/**/*.py', '.mim/tools/**/*.py', '.mim/tools/*.sh'
    ]),
    # mmcv is not required here: users with full mmcv keep it, others
    # install the [lite] extra.
    install_requires=read_requirements('runtime.txt'),
    extras_require=dict(
        lite=read_requirements('lite.txt'),
        deploy=read_requirements('deploy.txt'),
        cars=read_requirements('cars.txt'),
        tests=read_requirements('tests.txt')),
    zip_safe=False)
