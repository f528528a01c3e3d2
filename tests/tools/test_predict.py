"""tools/predict.py: answer.txt, CSV and JSON outputs, views, bad images."""
import codecs
import contextlib
import csv
import json
import os
import os.path as osp
import signal

import pytest
import torch
from PIL import Image

from tiny_training import LIST_ORDER, load_tool, trained_tiny_run

from mmcal.apis import inference_pipeline, init_classifier

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
