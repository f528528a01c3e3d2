"""Everything ``import mmcal`` changes in mmengine, in one place.

Written against mmengine 0.10 (checked with 0.10.7). Each patch says why it
is needed, and first checks that what it replaces is still what it was
written against: if not (another mmengine version, or another plugin got
there first), it warns naming the attribute and what it found, and is
applied all the same, since the safety it brings must not depend on that.
Applying twice changes nothing.
"""
import os.path as osp
import warnings

import mmengine

TARGET_MMENGINE = '0.10.'


class PatchWarning(UserWarning):
    """What a patch replaces is not what it was written against."""


def _origin(obj) -> str:
    return f'{getattr(obj, "__module__", "?")}.' \
        f'{getattr(obj, "__qualname__", type(obj).__qualname__)}'


def _expect_mmengine(what: str, current, expected_module: str) -> None:
    """Warn unless ``current`` (the thing a patch replaces) comes from
    mmengine's ``expected_module``."""
    if getattr(current, '__module__', None) != expected_module:
        warnings.warn(
            f'mmcal replaces {what}, written for mmengine\'s '
            f'{expected_module}, but found {_origin(current)} (mmengine '
            f'{mmengine.__version__}); replacing it all the same',
            PatchWarning)


def patch_checkpoint_loaders() -> None:
    """Every checkpoint source loads through mmcal's weights-only loader.

    mmengine 0.10 calls ``torch.load`` without allow-listing what its own
    Runner writes (so torch >= 2.6 refuses its checkpoints), and its URL
    sources unpickle downloaded files with ``weights_only=False``.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    from .checkpoint_sources import SCHEMES
    for prefixes, loader in SCHEMES.items():
        for prefix in prefixes:
            current = CheckpointLoader._schemes.get(prefix)
            if current is not loader:
                _expect_mmengine(f'the checkpoint loader of {prefix!r}',
                                 current, 'mmengine.runner.checkpoint')
        CheckpointLoader.register_scheme(list(prefixes), loader, force=True)


def patch_local_backend() -> None:
    """Checkpoints are written to a temporary file and renamed into place.

    mmengine's ``LocalBackend.put`` writes the target in place, so a kill
    while saving leaves a truncated checkpoint where the last good one was.
    """
    from mmengine.fileio import register_backend
    from mmengine.fileio.backends.registry_utils import backends

    from .atomic_save import AtomicLocalBackend
    current = backends.get('local')
    if current is not AtomicLocalBackend:
        _expect_mmengine("the 'local' file backend", current,
                         'mmengine.fileio.backends.local_backend')
        register_backend('local', AtomicLocalBackend, force=True,
                         prefixes='')


def patch_checkpoint_rotation() -> None:
    """Rotated-out checkpoints are deleted after the new one is saved.

    mmengine's ``CheckpointHook`` deletes the oldest kept checkpoint before
    it saves the new one: with ``max_keep_ckpts=1`` a kill or a full disk
    during the save leaves no checkpoint to resume from.
    """
    from mmengine.hooks import CheckpointHook

    from .checkpoint_rotation import save_checkpoint_then_rotate
    current = CheckpointHook._save_checkpoint_with_step
    if current is not save_checkpoint_then_rotate:
        _expect_mmengine('CheckpointHook._save_checkpoint_with_step',
                         current, 'mmengine.hooks.checkpoint_hook')
        CheckpointHook._save_checkpoint_with_step = \
            save_checkpoint_then_rotate


def patch_empty_dataset_error() -> None:
    """An empty dataset fails with its name, not numpy's words.

    mmengine packs the sample list when a dataset is built (the default
    ``serialize_data=True``) and fails on an empty one with numpy's 'need at
    least one array to concatenate', before any hook can check it.
    """
    from mmengine.dataset import BaseDataset

    from mmcal.datasets.dataset_errors import empty_dataset_message
    serialize = BaseDataset._serialize_data
    if getattr(serialize, 'mmcal_patch', False):
        return
    _expect_mmengine('BaseDataset._serialize_data', serialize,
                     'mmengine.dataset.base_dataset')

    def _serialize_nonempty_data(self):
        if not self.data_list:
            raise ValueError(empty_dataset_message(self))
        return serialize(self)

    _serialize_nonempty_data.mmcal_patch = True
    BaseDataset._serialize_data = _serialize_nonempty_data


# Where mmcal's configs are installed, as mmpretrain's are: the wheel copies
# configs/ there, and a source checkout links it.
PACKAGE_CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim', 'configs')


def patch_package_configs() -> None:
    """``_base_ = 'mmcal::cal_r152_birds.py'`` reads mmcal's shipped config.

    mmengine 0.10 resolves ``pkg::path`` only for the OpenMMLab packages of
    a fixed table, only for paths with a folder, and from pkg_resources'
    install location, which is not the package's folder in an editable
    install. The base is read as a local one (no ``_scope_``): mmcal's
    configs already say ``default_scope = 'mmpretrain'``.
    """
    from mmengine.config import Config
    get_cfg_path = Config._get_cfg_path
    if getattr(get_cfg_path, 'mmcal_patch', False):
        return
    _expect_mmengine('Config._get_cfg_path', get_cfg_path,
                     'mmengine.config.config')

    def _get_cfg_path(cfg_path, filename):
        package, scope_sign, name = cfg_path.partition('::')
        if package != 'mmcal' or not scope_sign:
            return get_cfg_path(cfg_path, filename)
        path = osp.join(PACKAGE_CONFIGS, name)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{cfg_path!r} (in {filename}) names no config of mmcal: '
                f'{path} does not exist')
        return path, None

    _get_cfg_path.mmcal_patch = True
    Config._get_cfg_path = staticmethod(_get_cfg_path)


def patch_optimizer_state_check() -> None:
    """Optimizer state is checked against the parameters when resumed.

    torch's ``Optimizer.load_state_dict`` keeps state tensors of any shape
    and stride, and its fused CPU kernels write past a smaller or
    stride-0 one. Every optimizer an ``OptimWrapper`` (and so the Runner)
    holds gets the check as its load_state_dict pre-hook.
    """
    from mmengine.optim import OptimWrapper

    from .optimizer_state import check_optimizer_state
    init = OptimWrapper.__init__
    if getattr(init, 'mmcal_patch', False):
        return
    _expect_mmengine('OptimWrapper.__init__', init,
                     'mmengine.optim.optimizer.optimizer_wrapper')

    def _init_checking_loaded_state(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.optimizer.register_load_state_dict_pre_hook(
            check_optimizer_state)

    _init_checking_loaded_state.mmcal_patch = True
    OptimWrapper.__init__ = _init_checking_loaded_state


def silence_mmcv_lite_warning() -> None:
    """mmcv-lite lacks the compiled ops; mmpretrain's models never use the
    one its import warns about."""
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def apply_mmengine_patches() -> None:
    """Apply every patch of this module (``import mmcal`` does)."""
    if not mmengine.__version__.startswith(TARGET_MMENGINE):
        warnings.warn(
            f'mmcal patches mmengine {TARGET_MMENGINE}x; found '
            f'{mmengine.__version__}: check its checkpoint loading and '
            'saving before trusting it', PatchWarning)
    silence_mmcv_lite_warning()
    patch_checkpoint_loaders()
    patch_local_backend()
    patch_checkpoint_rotation()
    patch_empty_dataset_error()
    patch_package_configs()
    patch_optimizer_state_check()
