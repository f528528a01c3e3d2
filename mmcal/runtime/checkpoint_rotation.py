"""Checkpoint rotation that always leaves a checkpoint to resume from.

mmengine 0.10's ``CheckpointHook`` with ``max_keep_ckpts`` deletes the
oldest kept checkpoint *before* it saves the new one (so that the kept ids
stored in the new checkpoint are final): a kill or a full disk during that
save leaves one checkpoint fewer, with ``max_keep_ckpts=1`` none at all.

:func:`save_checkpoint_then_rotate` (which :mod:`mmcal.runtime.patches`
puts in its place) saves first, then points ``last_checkpoint`` at the new
file, and only then deletes what it rotates out. The kept ids stored in
the new checkpoint still list the checkpoints to delete, since they exist
while it is written: a run killed before deleting them and resumed from it
has mmengine's ``CheckpointHook.before_train`` delete them, as it trims the
kept ids to ``max_keep_ckpts``.
"""
import os.path as osp
from typing import List

from mmengine.dist import is_main_process

from .atomic_save import write_atomically

# The message hub's keys for the kept checkpoint ids and the last
# checkpoint, as mmengine's CheckpointHook names them.
KEPT_IDS = 'keep_ckpt_ids'
LAST_CHECKPOINT = 'last_ckpt'


def rotates(hook, step: int) -> bool:
    """Whether saving ``step`` adds it to the kept ids: ``max_keep_ckpts``
    is set, and ``step`` is not saved again (mmengine saves a step a
    second time when it is also the best)."""
    return hook.max_keep_ckpts > 0 and not (
        hook.keep_ckpt_ids and hook.keep_ckpt_ids[-1] == step)


def outdated_ids(hook, step: int) -> List[int]:
    """The ids of the kept checkpoints that saving ``step`` rotates out."""
    if not rotates(hook, step):
        return []
    kept = list(hook.keep_ckpt_ids)
    surplus = len(kept) + 1 - hook.max_keep_ckpts
    return [old for old in kept[:max(surplus, 0)] if old != step]


def remove_checkpoint(hook, step: int) -> None:
    """Delete the checkpoint of ``step`` (a folder for DeepSpeed's)."""
    path = hook.file_backend.join_path(hook.out_dir,
                                       hook.filename_tmpl.format(step))
    if hook.file_backend.isfile(path):
        hook.file_backend.remove(path)
    elif hook.file_backend.isdir(path):
        hook.file_backend.rmtree(path)


def save_checkpoint_then_rotate(self, runner, step: int, meta: dict) -> None:
    """``CheckpointHook._save_checkpoint_with_step``, deleting rotated-out
    checkpoints only once the new one is saved and named.

    A failing save (e.g. ``OSError`` of a full disk) propagates with the
    hook's kept ids and the message hub as they were before it.
    """
    hub = runner.message_hub
    before = {
        key: hub.runtime_info[key]
        for key in (KEPT_IDS, LAST_CHECKPOINT) if key in hub.runtime_info
    }
    before_last = self.last_ckpt
    rotating, outdated = rotates(self, step), outdated_ids(self, step)
    if rotating:
        hub.update_info(KEPT_IDS, [*self.keep_ckpt_ids, step])
    filename = self.filename_tmpl.format(step)
    self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
    hub.update_info(LAST_CHECKPOINT, self.last_ckpt)
    try:
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
    except BaseException:
        self.last_ckpt = before_last
        for key in (KEPT_IDS, LAST_CHECKPOINT):
            if key in before:
                hub.update_info(key, before[key])
            else:
                hub.pop_info(key)
        raise
    if rotating:
        # The deque holds max_keep_ckpts ids: the oldest falls out.
        self.keep_ckpt_ids.append(step)
        hub.update_info(KEPT_IDS, list(self.keep_ckpt_ids))
    if not is_main_process():
        return
    write_atomically(self.last_ckpt,
                     osp.join(runner.work_dir, 'last_checkpoint'))
    for old in outdated:
        remove_checkpoint(self, old)
