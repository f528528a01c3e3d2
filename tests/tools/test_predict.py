"""tools/predict.py: answer.txt, CSV and JSON outputs, views, bad images."""
import codecs
import contextlib
import csv
import json
import os
import os.path as osp
import re
import signal
import stat
import subprocess
import sys

import pytest
import torch
from PIL import Image

from tiny_training import ROOT, LIST_ORDER, load_tool, trained_tiny_run

from mmcal.apis import inference_pipeline, init_classifier
from mmcal.runtime import load_checkpoint_file

predict = load_tool('predict.py')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


@pytest.fixture
def list_file(tiny_run):
    path = osp.join(tiny_run.data_root, 'testing_img_order.txt')
    with open(path, 'w') as file:
        file.write('\n'.join(LIST_ORDER) + '\n')
    return path


def read_json(path):
    with open(path) as file:
        return {record['file']: record['predictions']
                for record in json.load(file)}


def test_answer_txt_follows_list_order_and_matches_json(
        tiny_run, list_file, tmp_path):
    answer = str(tmp_path / 'answer.txt')
    predict.main([tiny_run.config, tiny_run.checkpoint, list_file,
                  '--out', answer, '--batch-size', '2'])
    with open(answer) as file:
        lines = [line.split() for line in file.read().splitlines()]
    assert [name for name, _ in lines] == LIST_ORDER
    assert {label for _, label in lines} <= set(tiny_run.classes)

    # The whole folder, another order and batch size: same class per file.
    folder_json = str(tmp_path / 'folder.json')
    predict.main([tiny_run.config, tiny_run.checkpoint, tiny_run.data_root,
                  '--out', folder_json, '--batch-size', '5'])
    by_file = read_json(folder_json)
    assert len(by_file) == 12
    for name, label in lines:
        assert by_file[name][0]['class'] == label


def test_csv_and_json_parse_back(tiny_run, list_file, tmp_path):
    out_csv, out_json = str(tmp_path / 'p.csv'), str(tmp_path / 'p.json')
    common = [tiny_run.config, tiny_run.checkpoint, list_file, '--topk', '2']
    predict.main(common + ['--out', out_csv])
    predict.main(common + ['--out', out_json])
    with open(out_csv) as file:
        rows = list(csv.DictReader(file))
    records = read_json(out_json)
    assert [row['file'] for row in rows] == LIST_ORDER
    assert list(rows[0]) == ['file', 'class_1', 'score_1', 'class_2',
                             'score_2']
    for row in rows:
        top = records[row['file']]
        assert len(top) == 2
        assert [p['class'] for p in top] == [row['class_1'], row['class_2']]
        assert top[0]['class'] == tiny_run.classes[top[0]['label']]
        assert float(row['score_1']) == pytest.approx(top[0]['score'],
                                                      rel=1e-5)
        assert 1 >= top[0]['score'] >= top[1]['score'] > 0


def test_view_overrides_match_hand_computed_logits(tiny_run, tmp_path):
    image = osp.join(tiny_run.data_root, 'class_1', '2.png')
    out = str(tmp_path / 'flip.json')
    predict.main([tiny_run.config, tiny_run.checkpoint, image, '--out', out,
                  '--topk', '3', '--crops', '--flip'])
    scores = {p['class']: p['score'] for p in read_json(out)['2.png']}

    # Raw view and flipped view only: mean of the two logits, softmax.
    model = init_classifier(tiny_run.config, tiny_run.checkpoint)
    data = model.data_preprocessor(
        dict(inputs=[inference_pipeline(model._config)(dict(img_path=image))
                     ['inputs']]), False)
    with torch.no_grad():
        logits = (model(data['inputs'], mode='tensor') +
                  model(data['inputs'].flip(-1), mode='tensor')) / 2
    expected = logits.softmax(dim=1)[0]
    for label, name in enumerate(tiny_run.classes):
        assert scores[name] == pytest.approx(expected[label].item(),
                                             abs=1e-5)


def test_unreadable_image_is_named_and_leaves_no_output(
        tiny_run, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    Image.new('RGB', (40, 40), (90, 30, 200)).save(folder / 'good.png')
    (folder / 'broken.png').write_bytes(b'not a png at all')
    out = tmp_path / 'out' / 'answer.txt'
    with pytest.raises(RuntimeError, match='broken.png'):
        predict.main([tiny_run.config, tiny_run.checkpoint, str(folder),
                      '--out', str(out)])
    assert not out.exists()
    leftovers = os.listdir(tmp_path / 'out') if (tmp_path / 'out').exists() \
        else []
    assert leftovers == []


def test_missing_list_entry_is_named(tiny_run, tmp_path):
    listing = tmp_path / 'order.txt'
    listing.write_text('class_0/0.png\nno_such_bird.jpg\n')
    with pytest.raises(RuntimeError, match='no_such_bird.jpg'):
        predict.main([tiny_run.config, tiny_run.checkpoint, str(listing),
                      '--img-root', tiny_run.data_root, '--out',
                      str(tmp_path / 'answer.txt')])
    assert not (tmp_path / 'answer.txt').exists()


def test_list_and_class_files_as_editors_save_them(tiny_run, list_file,
                                                   tmp_path):
    # A byte-order mark, CRLF line ends and blank lines, as some editors
    # save the bird set's testing_img_order.txt, read like the plain file.
    plain = tmp_path / 'plain.txt'
    predict.main([tiny_run.config, tiny_run.checkpoint, list_file,
                  '--out', str(plain)])
    listing = tmp_path / 'order.txt'
    listing.write_bytes(codecs.BOM_UTF8 +
                        '\r\n\r\n'.join(LIST_ORDER).encode() + b'\r\n')
    classes = tmp_path / 'classes.txt'
    classes.write_bytes(codecs.BOM_UTF8 +
                        '\r\n'.join(tiny_run.classes).encode())
    edited = tmp_path / 'edited.txt'
    predict.main([tiny_run.config, tiny_run.checkpoint, str(listing),
                  '--img-root', tiny_run.data_root, '--classes',
                  str(classes), '--out', str(edited)])
    assert edited.read_text() == plain.read_text()
    assert len(edited.read_text().splitlines()) == len(LIST_ORDER)
    # A byte that is not UTF-8 is named with its file and line, and
    # nothing is written.
    broken = tmp_path / 'broken.txt'
    broken.write_bytes(b'class_0/3.png\nclass_1/\xff.png\n')
    out = tmp_path / 'none.txt'
    with pytest.raises(ValueError, match='broken.txt:2: not UTF-8'):
        predict.main([tiny_run.config, tiny_run.checkpoint, str(broken),
                      '--img-root', tiny_run.data_root, '--out', str(out)])
    assert not out.exists()


def test_class_names_must_name_every_class(tiny_run, list_file, tmp_path):
    out = tmp_path / 'answer.txt'
    classes = tmp_path / 'classes.txt'
    classes.write_text('\n'.join(tiny_run.classes[:-1]) + '\n')
    count = len(tiny_run.classes)
    with pytest.raises(ValueError, match=f'^{count - 1} class names for a '
                       f'model with {count} classes$'):
        predict.main([tiny_run.config, tiny_run.checkpoint, list_file,
                      '--classes', str(classes), '--out', str(out)])
    classes.write_text('\n\n')
    with pytest.raises(ValueError, match='No class names .* pass --classes '
                       r'FILE \(one name per line, in label order\)'):
        predict.main([tiny_run.config, tiny_run.checkpoint, list_file,
                      '--classes', str(classes), '--out', str(out)])
    assert not out.exists()


def test_bad_crops_argument_is_refused(capsys):
    with pytest.raises(SystemExit):
        predict.parse_args(['c.py', 'k.pth', 'x', '--out', 'a.txt',
                            '--crops', '0.3'])
    assert "'0.3'" in capsys.readouterr().err


@contextlib.contextmanager
def time_limit(seconds):
    """Turn a hang into a failure."""
    def stop(signum, frame):
        raise TimeoutError(f'still running after {seconds} s')

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def looping_folder(root, tiny_run):
    """Two images, two self-links and a link to the parent: walking it
    with followlinks and no cycle check never ends."""
    folder = root / 'loops'
    (folder / 'sub').mkdir(parents=True)
    for name, source in (('a.png', 'class_0/0.png'),
                         ('sub/b.png', 'class_1/0.png')):
        (folder / name).write_bytes(
            open(osp.join(tiny_run.data_root, source), 'rb').read())
    os.symlink('.', folder / 'self_1')
    os.symlink('.', folder / 'self_2')
    os.symlink('..', folder / 'sub' / 'up')
    # One file under a second name: listed once.
    os.symlink('a.png', folder / 'alias.png')
    return folder


@pytest.mark.parametrize('num_self_links', [1, 2])
def test_symlink_loops_predict_each_real_file_once(tiny_run, tmp_path,
                                                   num_self_links):
    folder = looping_folder(tmp_path, tiny_run)
    if num_self_links == 1:
        os.remove(folder / 'self_2')
    out = str(tmp_path / 'loops.json')
    with time_limit(60):
        predict.main([tiny_run.config, tiny_run.checkpoint, str(folder),
                      '--out', out])
    assert sorted(read_json(out)) == ['a.png', 'sub/b.png']


def test_symlink_loops_draw_each_real_file_once(tiny_run, tmp_path):
    folder = looping_folder(tmp_path, tiny_run)
    with time_limit(60):
        written = load_tool('visualize_attention.py').main(
            [tiny_run.config, tiny_run.checkpoint, str(folder),
             '--out-dir', str(tmp_path / 'vis')])
    assert sorted(osp.basename(path) for path in written) == [
        'a.png', 'sub_b.png']


def copy_images(folder, tiny_run, names):
    """The tiny run's first image under each of ``names`` in ``folder``."""
    folder.mkdir(exist_ok=True)
    pixels = open(osp.join(tiny_run.data_root, 'class_0', '0.png'),
                  'rb').read()
    for name in names:
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(pixels)
    return folder


# File names a folder on Linux may hold, each of which would make extra or
# ambiguous "<name> <class>" lines (the second a line "class_0/0.png
# class_2.png <class>" of its own).
FORGING_NAMES = ['a b.png', 'c\nclass_0/0.png class_2.png', 'e\rf.png',
                 'g\th.png', 'i\u2028j.png', 'k,"l".png']


def test_names_that_would_forge_answer_lines_are_refused_for_txt(
        tiny_run, tmp_path):
    folder = copy_images(tmp_path / 'images', tiny_run, FORGING_NAMES)
    # Checked before any image is read: the broken one is never reached.
    (folder / 'broken.png').write_bytes(b'not a png')
    answer = tmp_path / 'answer.txt'
    with pytest.raises(ValueError, match=r"^Image name 'a b\.png' holds ' ':"
                       r' .*txt.*write CSV or JSON instead'):
        predict.main([tiny_run.config, tiny_run.checkpoint, str(folder),
                      '--out', str(answer)])
    assert not answer.exists()

    # CSV and JSON quote and escape them: every name reads back whole.
    os.remove(folder / 'broken.png')
    out_csv, out_json = tmp_path / 'p.csv', tmp_path / 'p.json'
    for out in (out_csv, out_json):
        predict.main([tiny_run.config, tiny_run.checkpoint, str(folder),
                      '--out', str(out)])
    with open(out_csv, newline='') as file:
        rows = list(csv.reader(file))
    assert sorted(row[0] for row in rows[1:]) == sorted(FORGING_NAMES)
    assert sorted(read_json(out_json)) == sorted(FORGING_NAMES)


def checkpoint_with_meta(tiny_run, path, meta):
    state_dict = load_checkpoint_file(tiny_run.checkpoint)['state_dict']
    torch.save(dict(state_dict=state_dict, meta=meta), path)
    return str(path)


@pytest.mark.parametrize('meta,message', [
    (dict(dataset_meta=dict(
        classes=['class_0', 'class_1\nclass_0/0.png class_0', 'class_2'])),
     r"meta\.dataset_meta\.classes\[1\] 'class_1\\nclass_0/0\.png class_0' "
     r"holds the control character '\\n'"),
    (dict(dataset_meta=dict(classes=['\x1b[2J', 'b', 'c'])),
     r"classes\[0\] '\\x1b\[2J' holds the control character '\\x1b'"),
    (dict(dataset_meta=dict(classes=[torch.tensor(0), 'b', 'c'])),
     r'classes\[0\] is a Tensor, not a string'),
    (dict(dataset_meta=dict(classes=['a' * 300, 'b', 'c'])),
     r'classes\[0\] has 300 characters: a class name has 1 to 256'),
    (dict(dataset_meta=dict(classes='abc')),
     'classes is a str, not a list of class names'),
    (dict(dataset_meta=dict(classes=['c'] * 10_001)),
     'holds 10001 names, more than the 10000 class names allowed'),
])
def test_malformed_class_names_in_the_checkpoint_are_named(
        tiny_run, list_file, tmp_path, meta, message):
    checkpoint = checkpoint_with_meta(tiny_run, tmp_path / 'forged.pth',
                                      meta)
    # Refused when loaded, whatever the format: JSON would escape a
    # newline, but a name is not text it carries.
    out = tmp_path / 'p.json'
    with pytest.raises(ValueError, match=re.escape(checkpoint) + '.*' +
                       message):
        predict.main([tiny_run.config, checkpoint, list_file,
                      '--out', str(out)])
    assert not out.exists()


@pytest.mark.parametrize('meta,loader_message,message', [
    (dict(dataset_meta=['classes']), r"\['meta'\]\['dataset_meta'\] is a list",
     'meta.dataset_meta is a list, not a dict'),
    ([('dataset_meta', 'x')], r"\['meta'\] is a list",
     'meta is a list, not a dict'),
])
def test_meta_of_another_type_is_named(tiny_run, list_file, tmp_path,
                                       monkeypatch, meta, loader_message,
                                       message):
    # The safe loader refuses it; with unsafe loading, which skips the
    # loader's checks, reading the class names still names it.
    checkpoint = checkpoint_with_meta(tiny_run, tmp_path / 'forged.pth',
                                      meta)
    out = tmp_path / 'p.json'
    argv = [tiny_run.config, checkpoint, list_file, '--out', str(out)]
    with pytest.raises(RuntimeError, match='Refused to load checkpoint ' +
                       re.escape(checkpoint) + ': ' + loader_message):
        predict.main(argv)
    with pytest.raises(ValueError, match=re.escape(checkpoint) + '.*' +
                       message):
        predict.main(argv + ['--unsafe-load'])
    assert not out.exists()


def test_class_names_with_spaces_go_to_csv_not_txt(
        tiny_run, list_file, tmp_path):
    classes = ['bird 0', 'bird 1', 'bird 2']
    checkpoint = checkpoint_with_meta(tiny_run, tmp_path / 'spaces.pth',
                                      dict(dataset_meta=dict(classes=classes)))
    answer = tmp_path / 'answer.txt'
    with pytest.raises(ValueError, match=r"^Class name 'bird 0' holds ' ': "
                       '.*write CSV or JSON instead'):
        predict.main([tiny_run.config, checkpoint, list_file,
                      '--out', str(answer)])
    assert not answer.exists()
    out = tmp_path / 'p.csv'
    predict.main([tiny_run.config, checkpoint, list_file, '--out', str(out),
                  '--topk', '3'])
    with open(out, newline='') as file:
        rows = list(csv.DictReader(file))
    assert {row[f'class_{rank}'] for row in rows
            for rank in (1, 2, 3)} == set(classes)


def test_billion_laughs_class_names_are_refused_before_any_work(
        tiny_run, tmp_path):
    # Ten levels of [x] * 8: a small file that torch unpickles cheaply (11
    # lists, references shared), but 8**10 = 2**30 leaves and over 6 GB of
    # text once printed or joined into answer.txt.
    laughs = 'ha'
    for _ in range(10):
        laughs = [laughs] * 8
    checkpoint = checkpoint_with_meta(
        tiny_run, tmp_path / 'laughs.pth',
        dict(dataset_meta=dict(classes=[laughs] * 3)))
    folder = copy_images(tmp_path / 'images', tiny_run, ['a.png'])
    (folder / 'broken.png').write_bytes(b'not a png')
    answer = tmp_path / 'answer.txt'
    # The tool as a user runs it, after its imports allowed 1 GiB more
    # address space than they took.
    script = (
        'import resource, runpy, sys\n'
        'import mmpretrain.apis, mmcal.apis  # noqa\n'
        'size = int(open("/proc/self/statm").read().split()[0])\n'
        'limit = size * resource.getpagesize() + (1 << 30)\n'
        'resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n'
        'sys.argv = sys.argv[1:]\n'
        'runpy.run_path(sys.argv[0], run_name="__main__")\n')

    def predict_in_a_bounded_process(expansion):
        return subprocess.run(
            [sys.executable, '-c', script, 'tools/predict.py',
             tiny_run.config, checkpoint, str(folder), '--out', str(answer)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env=dict(os.environ, OMP_NUM_THREADS='1',
                     MMCAL_CHECKPOINT_EXPANSION=expansion))

    # The loader refuses the structure it would unpack to; allowed to
    # unpack it (a user raising the limit), the class names are refused
    # before anything walks them.
    for expansion, refusal in [
            ('', f'Refused to load checkpoint {checkpoint}: '),
            ('1e12', f'ValueError: {checkpoint}: meta.dataset_meta.classes[0]'
             ' is a list, not a string')]:
        result = predict_in_a_bounded_process(expansion)
        assert result.returncode == 1, result.stderr[-2000:]
        assert refusal in result.stderr
        assert 'broken.png' not in result.stderr
        assert not answer.exists()


@pytest.mark.parametrize('out,message', [
    ('{tmp}', '--out {tmp} is a folder: give a file name'),
    ('{tmp}/results/', 'names a folder'),
    ('{tmp}/notes.txt/answer.txt', '{tmp}/notes.txt is a file, not a folder'),
    ('{tmp}/fifo', '--out {tmp}/fifo is not a regular file'),
])
def test_unwritable_out_is_refused_before_any_work(tiny_run, tmp_path,
                                                   capsys, out, message):
    (tmp_path / 'notes.txt').write_text('keep me\n')
    os.mkfifo(tmp_path / 'fifo')
    folder = copy_images(tmp_path / 'images', tiny_run, ['a.png'])
    (folder / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(SystemExit) as stop:
        predict.main([tiny_run.config, tiny_run.checkpoint, str(folder),
                      '--out', out.format(tmp=tmp_path)])
    assert stop.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert (tmp_path / 'notes.txt').read_text() == 'keep me\n'
    assert stat.S_ISFIFO(os.lstat(tmp_path / 'fifo').st_mode)
    assert sorted(os.listdir(tmp_path)) == ['fifo', 'images', 'notes.txt']


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes anywhere')
def test_out_in_a_read_only_folder_is_refused(tiny_run, tmp_path, capsys):
    folder = tmp_path / 'read_only'
    folder.mkdir()
    folder.chmod(0o555)
    with pytest.raises(SystemExit):
        predict.main([tiny_run.config, tiny_run.checkpoint,
                      tiny_run.data_root, '--out',
                      str(folder / 'new' / 'answer.txt')])
    assert f'folder {folder} is not writable' in capsys.readouterr().err


def test_a_file_name_that_is_not_utf8_is_refused_before_any_work(
        tiny_run, tmp_path):
    folder = copy_images(tmp_path / 'images', tiny_run, ['a.png'])
    os.rename(folder / 'a.png', os.fsencode(folder) + b'/\xff.png')
    (folder / 'broken.png').write_bytes(b'not a png')
    out = tmp_path / 'p.csv'
    with pytest.raises(ValueError, match=r"^Image name '\\udcff\.png' is "
                       'not UTF-8 text: rename it'):
        predict.main([tiny_run.config, tiny_run.checkpoint, str(folder),
                      '--out', str(out)])
    assert not out.exists()
