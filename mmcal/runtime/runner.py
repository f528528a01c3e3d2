"""Config handling shared by mmcal's command-line tools."""
import atexit
import gc
import os.path as osp
import warnings
from typing import Optional

from mmengine.config import Config

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def load_config(path: str) -> Config:
    """Read a config file, naming it in the error when that fails.

    mmcal is imported before the config, so a config without
    ``custom_imports`` still finds mmcal's components.
    """
    import mmcal  # noqa: F401
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except Exception as error:
        raise RuntimeError(f'Cannot read config {path}: {error}') from error
    return cfg


def hook_class(cfg: Config, hook: dict) -> Optional[type]:
    """The class a ``custom_hooks`` entry builds, found as the Runner
    finds it (in the config's default scope); None if unregistered."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import HOOKS
    kind = hook.get('type')
    if not isinstance(kind, str):
        return kind if isinstance(kind, type) else None
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return HOOKS.get(kind)


def add_launcher_arguments(parser) -> None:
    """``--launcher`` and ``--local-rank``, as mmpretrain's tools take
    them (torch.distributed.launch passes ``--local-rank``)."""
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_work_dir(cfg: Config, config_path: str,
                 work_dir: Optional[str] = None) -> None:
    """``work_dir`` from the command line, else the config's, else
    ``./work_dirs/<config name>``, as mmpretrain's tools choose it."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config):
    """The Runner of a config, CPU-only distributed launches included."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def set_dataloader_defaults(cfg: Config,
                            pin_memory: bool = True,
                            persistent_workers: bool = True) -> None:
    """Fill the loader options that mmpretrain's tools fill.

    Persistent workers are only turned on for loaders that have workers:
    PyTorch refuses them with ``num_workers=0``.
    """
    for field in DATALOADERS:
        loader = cfg.get(field)
        if loader is None:
            continue
        loader.setdefault('pin_memory', pin_memory)
        loader.setdefault('collate_fn', dict(type='default_collate'))
        has_workers = loader.get('num_workers', 0) > 0
        loader.setdefault('persistent_workers',
                          persistent_workers and has_workers)
        if not has_workers:
            loader['persistent_workers'] = False


def prepare_cpu_distributed(cfg: Config) -> None:
    """Let ``--launcher pytorch`` run on machines without CUDA.

    mmengine 0.10 sets a CUDA device when it starts a ``pytorch`` launch and
    wraps the model with ``device_ids=[LOCAL_RANK]``; both fail without a
    GPU. Starting the gloo process group here makes the Runner skip its own
    start, and ``device_ids=None`` is what DDP takes for CPU modules.
    """
    import torch
    import torch.distributed as dist
    if (cfg.get('launcher') != 'pytorch' or torch.cuda.is_available()
            or dist.is_initialized()):
        return
    if cfg.get('sync_bn'):
        # torch's SyncBatchNorm refuses CPU modules in its first forward.
        warnings.warn(
            f"sync_bn={cfg.sync_bn!r} is ignored: torch's SyncBatchNorm "
            'needs CUDA, so each of these CPU processes keeps its own '
            'batch-norm statistics')
        cfg.sync_bn = None
    dist.init_process_group(backend='gloo')
    # The group was opened here, so it is closed here, before the
    # interpreter tears down the modules it depends on.
    atexit.register(close_process_group)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False)
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def close_process_group() -> None:
    """Close the default process group and stop its gloo threads.

    ``destroy_process_group`` alone leaves the group, and the gloo threads
    it runs, alive while anything holds it: the Runner's DDP wrapper does,
    from reference cycles that only the interpreter's finalisation frees,
    and gloo threads running into finalisation can abort the process
    ("terminate called without an active exception"). Collecting those
    cycles first makes the group's last reference go with
    ``destroy_process_group``, which joins its threads.
    """
    import torch.distributed as dist
    if not dist.is_initialized():
        return
    gc.collect()
    dist.destroy_process_group()
