"""Every command of the README's ```bash and ```python blocks runs as
written, or is named in RULES with the test that runs it elsewhere or the
reason it cannot run here.

The commands run in README order in one folder laid out as a checkout
(``configs/``, ``tools/``, ``data/``, ``work_dirs/``), as a user following
the README would: later commands use what earlier ones wrote. Only the
placeholders (CONFIG, CKPT, N, ...) are replaced, by files the test made;
the shipped configs in that folder are shrunk by size options only (a
narrow ResNet-18, 32 px, 2 classes of generated birds). One tiny training
run (the README's first train command) is shared by all of them.

A new README command fails ``test_every_readme_command_has_a_rule`` until a
rule in RULES says how it runs.
"""
import glob
import os
import os.path as osp
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmcal_test_utils import ROOT, StopAfterFirstEpoch, as_own_process
from configs.test_entry_points import run_tool, shrink

from mmcal.datasets import write_bird_set, write_synthetic_birds
from mmcal.runtime import load_checkpoint_file
from mmcal.runtime.runner import load_config

README = osp.join(ROOT, 'README.md')


@dataclass(frozen=True)
class Command:
    """One command of a README block: a shell line (continuations joined,
    comment dropped) or a whole python block."""
    line: int
    kind: str  # 'bash' or 'python'
    text: str

    @property
    def head(self) -> str:
        """What rules match: the first line that is not a comment."""
        return next(line for line in self.text.splitlines()
                    if line.strip() and not line.startswith('#'))

    def __str__(self):
        return f'README.md:{self.line}: {self.head}'


def readme_commands(path: str = README) -> List[Command]:
    with open(path) as file:
        text = file.read()
    commands = []
    for block in re.finditer(r'^```(bash|python)\n(.*?)^```', text,
                             re.S | re.M):
        first = text.count('\n', 0, block.start(2)) + 1
        if block.group(1) == 'python':
            commands.append(Command(first, 'python', block.group(2)))
            continue
        pending, start = '', None
        for number, line in enumerate(block.group(2).splitlines(), first):
            start = number if not pending else start
            # The README's comments follow a space; no quoted word has one.
            pending += re.sub(r'(^|\s)#.*$', '', line)
            if pending.endswith('\\'):
                pending = pending[:-1] + ' '
                continue
            pending = ' '.join(pending.split())
            if pending:
                commands.append(Command(start, 'bash', pending))
            pending = ''
    return commands


@dataclass
class Rule:
    """How the commands matching ``pattern`` (a regex matched at the start
    of the command) are covered: ``run`` runs one here; ``elsewhere``
    names the test (file::function) that runs it; ``reason`` says why it
    cannot run in the suite; ``needs_cuda`` skips ``run`` without a GPU."""
    pattern: str
    run: Optional[Callable] = None
    elsewhere: Optional[str] = None
    reason: Optional[str] = None
    needs_cuda: Optional[str] = None


# ---------------------------------------------------------------- layout

BIRDS = 'configs/cal_r152_birds.py'
TRAINVAL = 'configs/cal_r152_birds_trainval.py'
CUB = 'configs/cal_r101_cub_448.py'
# Placeholders of the README and the files the test made for them.
PLACEHOLDERS = {
    'CONFIG': BIRDS,
    'IMAGE': 'img1.jpg',
    'RUN': 'cal_r152_birds',
    'E1': '1',
    'E2': '2',
}
# Files the README names as if a longer run had written them: copies of
# the tiny run's.
MADE_AS = {
    'work_dirs/cal_r152_birds/epoch_10.pth': 'epoch_1.pth',
    'work_dirs/cal_r152_birds/best_accuracy_top1_epoch_42.pth':
    'best_accuracy_top1_epoch_1.pth',
}
# CKPT and CHECKPOINT: a checkpoint of the config the command names (else
# of CONFIG's).
CHECKPOINTS = {
    BIRDS: 'checkpoints/cal_r152_birds_tiny.pth',
    CUB: 'work_dirs/cal_r101_cub_448/epoch_1.pth',
}
FIRST_TRAIN = f'python tools/train.py {BIRDS}'


class Layout:
    """The folder the commands run in, and what they left there."""

    def __init__(self, root):
        self.root = str(root)
        self.shell = {}  # variables the README sets in bash
        self.first_run = None  # the train command the fixture ran
        self.installs = set()  # pip install lines resolved

    def path(self, *parts):
        return osp.join(self.root, *parts)

    def timestamp(self):
        """The first training run's log folder."""
        logs = sorted(glob.glob(self.path('work_dirs', 'cal_r152_birds',
                                          '2*', 'vis_data')))
        return osp.basename(osp.dirname(logs[0]))

    def best_epoch(self):
        """N of the one best_accuracy_top1_epoch_N.pth the hook keeps."""
        best, = [path for path in glob.glob(self.path(
            'work_dirs', 'cal_r152_birds', 'best_accuracy_top1_epoch_*.pth'))
            if not path.endswith(tuple(MADE_AS))]
        return re.search(r'epoch_(\d+)\.pth$', best).group(1)

    def words(self, command: Command) -> List[str]:
        """The command's words with the placeholders replaced."""
        words = shlex.split(command.text)
        config, = [word for word in words if word in CHECKPOINTS] or [BIRDS]
        values = dict(PLACEHOLDERS, CKPT=CHECKPOINTS[config],
                      CHECKPOINT=CHECKPOINTS[config])
        # Values read from what earlier commands left, when used.
        later = dict(N=self.best_epoch, TIMESTAMP=self.timestamp)
        names = '|'.join(sorted([*values, *later], key=len, reverse=True))

        def value(match):
            name = match.group(1)
            return values[name] if name in values else later[name]()

        def fill(word):
            if '$MM' in word:
                word = word.replace('$MM', self.shell_value('MM'))
            return re.sub(rf'(?<![A-Za-z0-9])({names})(?![A-Za-z0-9])',
                          value, word)

        return [fill(word) for word in words]

    def shell_value(self, name):
        """A variable the README sets with ``NAME=$(...)``, as its line
        sets it in bash (run once)."""
        if name not in self.shell:
            line, = {c.text for c in readme_commands()
                     if c.text.startswith(f'{name}=')}
            result = subprocess.run(
                ['bash', '-c', f'{line} && echo "${name}"'],
                capture_output=True, text=True, timeout=120, cwd=self.root,
                env=shell_env())
            assert result.returncode == 0, result.stderr[-2000:]
            self.shell[name] = result.stdout.strip()
        return self.shell[name]


def shell_env(**extra):
    """The suite's environment as the user's activated shell has it:
    ``python`` is the suite's."""
    path = osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']
    return dict(os.environ, PATH=path, OMP_NUM_THREADS='1', **extra)


def shrunk_config(name, data_roots, path):
    """A shipped config shrunk by size options, dumped to ``path``."""
    cfg = load_config(osp.join(ROOT, name))
    options = shrink(cfg, data_roots)
    # Two iterations an epoch: log each; a short schedule for the
    # distributed run, which trains to its end.
    options['default_hooks.logger.interval'] = 1
    options['train_cfg.max_epochs'] = 3 if name != CUB else 1
    cfg.merge_from_dict(options)
    os.makedirs(osp.dirname(path), exist_ok=True)
    cfg.dump(path)


@pytest.fixture(scope='module')
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp('readme')
    here = Layout(root)
    os.symlink(osp.join(ROOT, 'tools'), here.path('tools'))
    data_roots = dict(cub=here.path('data', 'CUB_200_2011'),
                      birds=here.path('data', 'birds'))
    write_synthetic_birds(data_roots['cub'], num_classes=2, per_class=3,
                          size=64, test_fraction=0.3)
    write_bird_set(data_roots['birds'], num_classes=2, per_class=5,
                   num_test=2, size=64)
    for name in (BIRDS, TRAINVAL, CUB):
        shrunk_config(name, data_roots, here.path(name))
    images = sorted(glob.glob(here.path('data', 'birds', 'testing_images',
                                        '*')))
    for index, name in enumerate(['img1.jpg', 'img2.jpg',
                                  'some_folder/a.jpg', 'path/to/folder/a.jpg',
                                  'path/to/folder/b.jpg']):
        os.makedirs(osp.dirname(here.path(name)), exist_ok=True)
        shutil.copy(images[index % len(images)], here.path(name))
    cwd = os.getcwd()
    os.chdir(here.root)
    try:
        train = [c for c in readme_commands() if c.text == FIRST_TRAIN]
        assert train, f'the README no longer says {FIRST_TRAIN}'
        run_train(train[0], here)
        check_first_run(here)
        here.first_run = FIRST_TRAIN
        work_dir = here.path('work_dirs', 'cal_r152_birds')
        os.makedirs(here.path('checkpoints'))
        shutil.copy(osp.join(work_dir, 'epoch_1.pth'),
                    here.path(CHECKPOINTS[BIRDS]))
        for made, source in MADE_AS.items():
            shutil.copy(osp.join(work_dir, source), here.path(made))
        yield here
    finally:
        os.chdir(cwd)


# -------------------------------------------------------------- handlers

def run_in_process(words):
    """A mmcal tool's ``main`` on the command's arguments."""
    assert words[0] == 'python' and words[1].startswith('tools/'), words
    return run_tool(words[1][len('tools/'):], *words[2:])


def epochs_in(work_dir):
    """{epoch: modification time} of the epoch_N.pth in ``work_dir``."""
    return {
        int(re.search(r'epoch_(\d+)\.pth$', path).group(1)):
        os.stat(path).st_mtime
        for path in glob.glob(osp.join(work_dir, 'epoch_*.pth'))
    }


def run_train(command, layout):
    """tools/train.py: one epoch past where it starts, unless the command
    sets the number of epochs itself."""
    words = layout.words(command)
    config = words[2]
    work_dir = layout.path('work_dirs', osp.splitext(osp.basename(config))[0])
    before = epochs_in(work_dir) if osp.isdir(work_dir) else {}
    resumed = resumed_epoch(words, work_dir)
    build = Runner.from_cfg

    def one_epoch(cfg):
        runner = build(cfg)
        runner.register_hook(StopAfterFirstEpoch())
        return runner

    patch = pytest.MonkeyPatch()
    if 'train_cfg.max_epochs=' not in command.text:
        patch.setattr(Runner, 'from_cfg', one_epoch)
    try:
        run_in_process(words)
    finally:
        patch.undo()
    after = epochs_in(work_dir)
    new = {epoch for epoch, mtime in after.items()
           if before.get(epoch) != mtime}
    assert new, f'{command}: no checkpoint written in {work_dir}'
    if resumed is not None:
        # The epoch after the one of the checkpoint resumed from.
        assert new == {resumed + 1}, (command, sorted(new))


def resumed_epoch(words, work_dir) -> Optional[int]:
    """The epoch of the checkpoint ``--resume`` names, or without a value
    of the work dir's latest; None without ``--resume``."""
    if '--resume' not in words:
        return None
    named = words[words.index('--resume') + 1:][:1]
    if not named or named[0].startswith('--'):
        with open(osp.join(work_dir, 'last_checkpoint')) as file:
            named = [file.read().strip()]
    return load_checkpoint_file(named[0])['meta']['epoch']


def check_first_run(layout):
    """What the README's first train command wrote: the best checkpoint
    by validation, and a log of CAL's losses."""
    work_dir = layout.path('work_dirs', 'cal_r152_birds')
    assert osp.isfile(osp.join(work_dir, 'best_accuracy_top1_epoch_1.pth'))
    log, = glob.glob(osp.join(work_dir, layout.timestamp(), 'vis_data',
                              '2*.json'))
    with open(log) as file:
        assert 'loss_effect' in file.read()


def checked_by_fixture(command, layout):
    """The shared run (the ``layout`` fixture) ran this command."""
    assert layout.first_run == command.text


def run_test(command, layout):
    words = layout.words(command)
    metrics = run_in_process(words)
    assert 0 <= metrics['accuracy/top1'] <= 100, (command, metrics)
    if '--out' in words:
        assert osp.getsize(words[words.index('--out') + 1]) > 0


def run_writing(command, layout):
    """A tool that writes ``--out`` (a file) or ``--out-dir``."""
    words = layout.words(command)
    run_in_process(words)
    if '--out' in words:
        out = words[words.index('--out') + 1]
        assert osp.getsize(out) > 0, command
        if out.endswith('.txt'):
            # One line per listed image, in the list's order.
            listed, = [word for word in words[2:]
                       if word.endswith('.txt') and word != out]
            with open(listed) as file, open(out) as answers:
                names = [line.split()[0] for line in file if line.strip()]
                assert [line.split()[0] for line in answers] == names
    if '--out-dir' in words:
        pictures = glob.glob(osp.join(words[words.index('--out-dir') + 1],
                                      '*.png'))
        # img1.jpg, img2.jpg and some_folder/'s image.
        assert len(pictures) == 3, command


def run_predict_on_this_device(command, layout):
    """tools/predict.py; on a machine without CUDA ``--device cuda:0`` is
    replaced by ``--device cpu``, everything else as written."""
    words = layout.words(command)
    if not torch.cuda.is_available() and '--device' in words:
        words[words.index('--device') + 1] = 'cpu'
    run_in_process(words)
    assert osp.getsize(words[words.index('--out') + 1]) > 0


def run_generator(command, layout):
    """The generator, with a smaller set appended (800 images take
    seconds)."""
    words = layout.words(command)
    run_in_process(words + ['--num-classes', '2', '--per-class', '2',
                            '--size', '32'])
    out = words[words.index('--out') + 1]
    assert len(glob.glob(osp.join(out, 'images', '*', '*.jpg'))) == 4


def run_mmpretrain_tool(command, layout):
    """mmpretrain's tool from the installed package (``$MM``), in this
    process after ``import mmcal`` (the configs import it too)."""
    import runpy

    import mmcal  # noqa: F401
    words = layout.words(command)
    assert words[0] == 'python' and osp.isfile(words[1]), words
    patch = pytest.MonkeyPatch()
    patch.setattr(sys, 'argv', words[1:])
    patch.setenv('MPLBACKEND', 'Agg')
    try:
        with as_own_process():
            runpy.run_path(words[1], run_name='__main__')
    finally:
        patch.undo()
    for option in ('--show-path', '--save-path', '--out'):
        if option in words:
            assert osp.getsize(words[words.index(option) + 1]) > 0, command
    for option in ('--out-dir', '--output-dir'):
        if option in words:
            assert os.listdir(words[words.index(option) + 1]), command


def check_mm_variable(command, layout):
    value = layout.shell_value('MM')
    assert osp.isfile(osp.join(value, 'analysis_tools', 'get_flops.py'))


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def run_distributed_on_two_cpus(command, layout):
    """The launch scripts with 2 CPU processes (gloo) for the README's 4
    GPUs (the tools drop the recipe's SyncBN on CPUs, with a warning)."""
    words = layout.words(command)
    assert words[-1] == '4', words
    words[-1] = '2'
    result = subprocess.run(
        words, capture_output=True, text=True, cwd=layout.root,
        timeout=300, env=shell_env(PORT=str(free_port())))
    # The ranks' own errors come before torchrun's summary.
    errors = [line for line in result.stderr.splitlines()
              if re.search(r'Error|terminate|Abort', line)]
    assert result.returncode == 0, '\n'.join(
        errors[:20] + [result.stderr[-3000:]])
    if 'dist_train.sh' in words[1]:
        if not torch.cuda.is_available():
            assert "sync_bn='torch' is ignored" in result.stderr
        assert osp.isfile(layout.path('work_dirs', 'cal_r101_cub_448',
                                      'epoch_1.pth'))
    else:
        assert 'accuracy/top1' in result.stdout + result.stderr


def make_dry_run(command, layout):
    """``make test`` / ``make demo`` cannot run inside the suite: ``make
    -n`` shows they install mmcal and run what the README says."""
    target = command.text.split()[1]
    env = {key: value for key, value in os.environ.items()
           if key not in ('VIRTUAL_ENV', 'PYTHON')}
    result = subprocess.run(['make', '-n', target], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'pip install -q --no-deps -e .' in result.stdout
    expected = dict(test='.venv/bin/python -m pytest -q tests',
                    demo='.venv/bin/python tools/demo.py --data-root '
                    'data/synthetic_birds --work-dir work_dirs/demo')[target]
    assert expected in result.stdout.splitlines()


def activate_venv(command, layout):
    """Sourced in a shell without the suite's python on PATH, the
    activation makes ``python`` one that has mmengine and mmcal (the
    suite's environment, linked as .venv)."""
    os.symlink(osp.dirname(osp.dirname(sys.executable)),
               layout.path('.venv'))
    env = {key: value for key, value in os.environ.items()
           if key not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env['PATH'] = '/usr/bin:/bin'
    found = ("import importlib.util as u; "
             "assert u.find_spec('mmengine') and u.find_spec('mmcal')")
    result = subprocess.run(
        ['bash', '-c', f'{command.text} && python -c "{found}"'],
        capture_output=True, text=True, cwd=layout.root, env=env,
        timeout=120)
    assert result.returncode == 0, result.stderr


def pip_dry_run(command, layout):
    """pip resolves the install as written, without downloading or
    installing: what it asks for is declared and present."""
    words = shlex.split(command.text)
    assert words[:3] == ['pip', 'install', '-e'], words
    if command.text in layout.installs:
        return  # the same install, resolved for an earlier line
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index',
         '--no-build-isolation', '-q', *words[2:]],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    layout.installs.add(command.text)


def run_config_block(command, layout):
    """A python block that is a piece of config: read and built."""
    from mmpretrain.registry import HOOKS, MODELS
    cfg = Config.fromstring(command.text, '.py')
    if 'model' in cfg:
        cfg.model.data_preprocessor = cfg.data_preprocessor
        model = MODELS.build(cfg.model)
        assert type(model).__name__ == 'CALClassifier'
        assert model.head.in_channels == (model.neck.num_attentions *
                                          model.neck.in_channels)
    for hook in cfg.get('custom_hooks', []):
        built = HOOKS.build(dict(hook))
        for key, value in hook.items():
            if key != 'type':
                assert getattr(built, key) == value, (key, command)


ENTRY_POINTS = 'tests/configs/test_entry_points.py'
RULES = [
    Rule(r'git clone ', reason='the checkout the suite runs in; .ci/run '
         'runs make test on a clean clone'),
    Rule(r'make (test|demo)$', run=make_dry_run),
    Rule(r'source \.venv/bin/activate$', run=activate_venv),
    Rule(r'pip install -e ', run=pip_dry_run),
    Rule(r'python tools/dataset_converters/generate_synthetic_birds\.py ',
         run=run_generator),
    Rule(re.escape(FIRST_TRAIN) + '$', run=checked_by_fixture),
    Rule(r'python tools/train\.py \S+ --amp', run=run_train,
         needs_cuda="mmengine 0.10's AmpOptimWrapper asserts a GPU"),
    Rule(r'python tools/train\.py ', run=run_train),
    Rule(r'python tools/test\.py configs/cal_r101_cub_448\.py '
         r'cal_r101_cub_mmcal\.pth$',
         elsewhere='tests/tools/test_cal_to_mmcal.py::'
         'test_converted_resnet101_loads_with_the_paper_config',
         reason='a converted ResNet-101 with M = 32, K = 200, loaded '
         'strictly into this config (as test.py loads it)'),
    Rule(r'python tools/test\.py ', run=run_test),
    Rule(r'bash tools/dist_(train|test)\.sh ',
         run=run_distributed_on_two_cpus),
    Rule(r'GPUS=\d+ bash tools/slurm_train\.sh ',
         reason='needs a slurm cluster (srun)'),
    Rule(r'python tools/predict\.py .* --device cuda',
         run=run_predict_on_this_device),
    Rule(r'python tools/(predict|visualize_attention)\.py ',
         run=run_writing),
    Rule(r'python tools/deployment/(pytorch2onnx|onnx_predict)\.py ',
         run=run_writing),
    Rule(r'python tools/model_converters/cal_to_mmcal\.py ',
         elsewhere='tests/tools/test_cal_to_mmcal.py::'
         'test_converted_resnet101_loads_with_the_paper_config',
         reason='needs a checkpoint of the reference code: crafted there'),
    Rule(r'_base_ = |custom_hooks = ', run=run_config_block),
    Rule(r'import mmcal\b',
         elsewhere='tests/test_readme_inference.py::'
         'test_readme_inference_example_runs_as_written'),
    Rule(r'MM=\$\(', run=check_mm_variable),
    Rule(r'python \$MM/visualization/vis_cam\.py .* --vit-like',
         elsewhere=ENTRY_POINTS + '::test_mmpretrain_visualization_tools',
         reason='needs a Swin model: run there on the shrunk Swin config'),
    Rule(r'python \$MM/', run=run_mmpretrain_tool),
    Rule(r'OMP_NUM_THREADS=\d python tools/analysis_tools/'
         r'compare_methods\.py ',
         elsewhere='tests/tools/test_compare_methods.py::test_smoke_run',
         reason='the same two commands on 20 images, 2 epochs a stage: '
         'the README run trains for minutes'),
    Rule(r'python tools/analysis_tools/benchmark\.py ',
         elsewhere='tests/tools/test_benchmark.py::'
         'test_readme_commands_run_as_written_at_a_tiny_size'),
]


def rule_of(command: Command) -> Optional[Rule]:
    for rule in RULES:
        if re.match(rule.pattern, command.head):
            return rule
    return None


def test_every_readme_command_has_a_rule():
    uncovered = [str(command) for command in readme_commands()
                 if rule_of(command) is None]
    assert not uncovered, (
        'README commands no test runs; add a rule to RULES in '
        'tests/test_readme_commands.py:\n' + '\n'.join(uncovered))


def test_every_rule_is_used_and_names_a_real_test():
    commands = readme_commands()
    for rule in RULES:
        assert any(rule_of(command) is rule for command in commands), (
            f'no README command matches the rule {rule.pattern!r}')
        # Run here, run elsewhere (maybe with a reason), or a reason alone.
        kinds = (rule.run is not None, rule.elsewhere is not None,
                 rule.reason is not None and rule.elsewhere is None)
        assert sum(kinds) == 1, rule.pattern
        if rule.elsewhere:
            path, name = rule.elsewhere.split('::')
            with open(osp.join(ROOT, path)) as file:
                assert f'def {name}(' in file.read(), rule.elsewhere


def runnable_commands():
    return [
        pytest.param(command, id=f'line{command.line}')
        for command in readme_commands()
        if rule_of(command) is not None and rule_of(command).run
    ]


@pytest.mark.parametrize('command', runnable_commands())
def test_readme_command_runs_as_written(command, layout):
    rule = rule_of(command)
    if rule.needs_cuda and not torch.cuda.is_available():
        pytest.skip(f'{command}: {rule.needs_cuda}')
    rule.run(command, layout)
