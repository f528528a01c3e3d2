"""Every checkpoint source of mmengine's ``CheckpointLoader``, loaded safely.

mmengine resolves ``torchvision://``, ``open-mmlab://``, ``mmcls://`` and
``http(s)://`` names to files that torch's download helper unpickles with
``weights_only=False``, and reads ``pavi://`` and ``s3://`` files with its
own ``torch.load``. :data:`SCHEMES` holds a loader for each of mmengine's
prefixes, local paths included, which :mod:`mmcal.runtime.patches`
registers in their place (mmengine keeps one loader per prefix): the name
is resolved and the file downloaded as mmengine does, into the same cache,
and then read only by
:func:`mmcal.runtime.checkpoint_loading.load_checkpoint_from`.
"""
import io
import logging
import os
import os.path as osp
from tempfile import TemporaryDirectory
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log
from mmengine.runner.checkpoint import (_get_mmengine_home,
                                        _process_mmcls_checkpoint,
                                        get_deprecated_model_names,
                                        get_external_models,
                                        get_mmcls_models,
                                        get_torchvision_models)

from .checkpoint_loading import load_checkpoint_file, load_checkpoint_from

URL_PREFIXES = ('http://', 'https://')


def hub_cache_path(url: str) -> str:
    """Where torch's hub (and so mmengine) caches the file of ``url``."""
    return osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))


def _download_once(url: str, path: str) -> None:
    if not osp.exists(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        # download_url_to_file writes a temporary file and renames it.
        torch.hub.download_url_to_file(url, path, progress=os.isatty(0))


def load_from_local(filename, map_location=None):
    return load_checkpoint_file(filename, map_location)


def load_from_http(url: str, map_location=None):
    """Download ``url`` into the hub cache unless there, then load it.

    As in mmengine, rank 0 downloads first so that the ranks sharing its
    disk do not all download; ranks on other machines fetch their own copy.
    """
    path = hub_cache_path(url)
    rank, world_size = get_dist_info()
    if rank == 0:
        _download_once(url, path)
    if world_size > 1:
        torch.distributed.barrier()
        _download_once(url, path)
    return load_checkpoint_from(path, f'{path} (from {url})', map_location)


def _lookup(urls: dict, filename: str) -> str:
    scheme, name = filename.split('://', 1)
    if name not in urls:
        raise KeyError(f'{filename}: {scheme}:// knows no model {name!r}')
    return urls[name]


def _warn_deprecated(old: str, new: str) -> None:
    print_log(f'{old} is deprecated in favour of {new}', logger='current',
              level=logging.WARNING)


def load_from_torchvision(filename, map_location=None):
    if filename.startswith('modelzoo://'):
        _warn_deprecated('modelzoo://', 'torchvision://')
    return load_from_http(
        _lookup(get_torchvision_models(), filename), map_location)


def load_from_openmmlab(filename, map_location=None):
    scheme, name = filename.split('://', 1)
    if name in get_deprecated_model_names():
        new_name = get_deprecated_model_names()[name]
        _warn_deprecated(filename, f'{scheme}://{new_name}')
        name = new_name
    location = _lookup(get_external_models(), f'{scheme}://{name}')
    if location.startswith(URL_PREFIXES):
        return load_from_http(location, map_location)
    # A path below MMENGINE_HOME, from the user's own open_mmlab.json.
    path = osp.join(_get_mmengine_home(), location)
    if not osp.exists(path):  # one that is not a file is named as what it is
        raise FileNotFoundError(f'{filename}: {path} can not be found')
    return load_checkpoint_from(path, path, map_location)


def load_from_mmcls(filename, map_location=None):
    return _process_mmcls_checkpoint(
        load_from_http(_lookup(get_mmcls_models(), filename), map_location))


def load_from_pavi(filename, map_location=None):
    from pavi import modelcloud  # optional, as in mmengine
    model = modelcloud.get(filename[len('pavi://'):])
    with TemporaryDirectory() as folder:
        path = osp.join(folder, model.name)
        model.download(path)
        return load_checkpoint_from(path, filename, map_location)


def load_from_ceph(filename, map_location=None):
    backend = get_file_backend(filename, backend_args={'backend': 'petrel'})
    with io.BytesIO(backend.get(filename)) as buffer:
        return load_checkpoint_from(buffer, filename, map_location)


# The prefixes exactly as mmengine registers them, so these replace its
# loaders rather than sit beside them. The names follow mmengine's
# ``load_from_<source>``, which its log line shortens to ``<source>``.
SCHEMES = {
    ('', ): load_from_local,
    URL_PREFIXES: load_from_http,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    ('mmcls://', ): load_from_mmcls,
    ('pavi://', ): load_from_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
}
