"""tools/predict.py on a folder where an image name is a FIFO: refused by
name, in a child process that cannot hang the suite (devices and links to
them: tests/robustness/test_special_image_files.py)."""
import os
import os.path as osp
import shutil
import subprocess
import sys

from tiny_training import ROOT, trained_tiny_run


def test_predict_refuses_a_fifo_in_the_folder_by_name(tmp_path_factory,
                                                      tmp_path):
    run = trained_tiny_run(tmp_path_factory)
    folder = tmp_path / 'images'
    folder.mkdir()
    shutil.copy(osp.join(run.data_root, 'class_0', '0.png'), folder / 'a.png')
    os.mkfifo(folder / 'b.jpg')
    out = tmp_path / 'answer.txt'
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'predict.py'), run.config,
         run.checkpoint, str(folder), '--out', str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 1, result.stderr[-3000:]
    assert (f'Cannot read image b.jpg ({folder / "b.jpg"}): ' in
            result.stderr), result.stderr[-3000:]
    assert 'it is a FIFO, not a regular file' in result.stderr
    assert not out.exists()
