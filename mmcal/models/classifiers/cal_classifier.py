from typing import List, Optional, Sequence, Tuple

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..data_preprocessors.attention_crop_drop import AttentionCropDrop
from ..necks.bap_neck import BAPNeck
from ..utils.attention_ops import sample_crop_drop_maps
from ..utils.memory_format import keep_contiguous_format

# The reference's validation: raw image plus one crop of the mean map.
DEFAULT_VIEWS = dict(crops=[(0.1, 0.05)], flip=False)
# ViT-like backbones' out_type values that return a vector per image.
POOLED_OUT_TYPES = ('cls_token', 'avg_featmap')


def parse_views(views: Optional[dict], name: str = 'test_cfg') -> dict:
    """Check and complete a ``dict(crops=[(theta, padding)], flip=bool)``."""
    views = {**DEFAULT_VIEWS, **(views or {})}
    unknown = set(views) - set(DEFAULT_VIEWS)
    if unknown:
        raise ValueError(f'Unknown CALClassifier {name} keys '
                         f'{sorted(unknown)}; valid keys are '
                         f'{sorted(DEFAULT_VIEWS)}')
    crops = []
    for view in views['crops']:
        if len(view) != 2 or not 0 <= view[0] <= 1 or view[1] < 0:
            raise ValueError(
                f'{name}.crops must hold (theta, padding_ratio) pairs with '
                f'0 <= theta <= 1 and padding_ratio >= 0, got {view!r}')
        crops.append((float(view[0]), float(view[1])))
    return dict(crops=crops, flip=bool(views['flip']))


def head_with_pooled_channels(head: dict, neck: dict) -> dict:
    """``head`` with ``in_channels``, the length ``num_attentions *
    in_channels`` of the neck's pooled features, filled in or checked.

    Stating the number once in the neck keeps a config from disagreeing
    with itself, which would otherwise only fail at the first forward.
    """
    if not (isinstance(head, dict) and isinstance(neck, dict)
            and 'in_channels' in neck):
        return head
    pooled = neck['in_channels'] * neck.get(
        'num_attentions', BAPNeck.DEFAULT_NUM_ATTENTIONS)
    stated = head.get('in_channels', pooled)
    if stated != pooled:
        raise ValueError(
            f'model.head.in_channels={stated} does not match the neck\'s '
            f'pooled features: model.neck.num_attentions x '
            f'model.neck.in_channels = {pooled}. Leave head.in_channels out: '
            'CALClassifier derives it from the neck.')
    return {**head, 'in_channels': pooled}


def without_stray_delete(part: Optional[dict]) -> Optional[dict]:
    """A model part's config without a ``_delete_`` key.

    mmengine only consumes ``_delete_`` where the base config has the key:
    ``neck=dict(_delete_=True, ...)`` over a base without a neck (ConvNeXt,
    EdgeNeXt, ...) arrives with it. There was nothing to delete, so the
    part is meant as written.
    """
    if not isinstance(part, dict):
        return part
    return {key: value for key, value in part.items() if key != '_delete_'}


def refuse_batch_augments(train_cfg: Optional[dict]) -> None:
    """Raise if ``model.train_cfg`` asks for Mixup, CutMix, ...

    mmpretrain's ImageNet configs set them; the error says the line that
    removes them whatever the base.
    """
    if isinstance(train_cfg, dict) and train_cfg.get('augments'):
        raise ValueError(
            'CAL does not support batch augments (Mixup, CutMix, ...): '
            f'model.train_cfg={train_cfg!r}. They write soft labels to '
            'gt_score, but CALHead reads the hard gt_label. Set '
            'train_cfg=None in the config\'s model=dict(...) (or '
            '--cfg-options model.train_cfg=None).')


def feature_map_option(backbone) -> Optional[str]:
    """The backbone option that makes ``backbone`` return its (B, C, H, W)
    feature map, when it is set to pool instead; None otherwise.

    ConvNeXt, EdgeNeXt, HorNet and TinyViT pool before their last norm by
    default; ViT-like backbones (ViT, DeiT, XCiT, ...) return the class
    token or the mean token.
    """
    if getattr(backbone, 'gap_before_final_norm', False):
        return 'gap_before_final_norm=False'
    if getattr(backbone, 'out_type', None) in POOLED_OUT_TYPES:
        return "out_type='featmap'"
    return None


def _listed(keys, limit: int = 10) -> str:
    """Sorted keys, at most ``limit`` of them, for an error message."""
    keys = sorted(keys)
    more = f' and {len(keys) - limit} more' if len(keys) > limit else ''
    return (', '.join(keys[:limit]) or 'none') + more


@MODELS.register_module()
class CALClassifier(ImageClassifier):
    """Image classifier running CAL's two-pass training step.

    ``loss`` makes a raw pass, draws two guide maps per sample from the
    attention maps, crops and drops the images through the data
    preprocessor (an :class:`AttentionCropDrop`) and makes one second pass
    over the 2B augmented images. ``predict`` averages the raw logits of
    the raw image and of crops of its mean attention map, optionally for
    the flipped image too, before the softmax.

    Args:
        val_cfg: views of validation: ``crops``, a list of ``(theta,
            padding_ratio)`` (default one crop at (0.1, 0.05), the
            reference's validation), and ``flip`` (default False).
        test_cfg: views of testing and of ``predict``, same keys and
            defaults; the paper tests with ``crops=[(0.3, 0.1), (0.2, 0.1),
            (0.1, 0.05)], flip=True``.
        contiguous_modules: with ``AttentionCropDrop(channels_last=True)``,
            names of submodules (e.g. ``'backbone.layer4'``) that still run
            in the default memory format; see
            :func:`mmcal.models.utils.keep_contiguous_format`. On a CPU,
            ResNet-50's last stage at 7 x 7 trains faster so.
        Other arguments as ``ImageClassifier``; the neck must be a
        :class:`BAPNeck` and the head a :class:`CALHead` (or modules with
        the same outputs: the neck's a
        :class:`mmcal.models.necks.BAPOutput`). The head's ``in_channels``
        follows from the neck's (``num_attentions * in_channels``) and may
        be left out.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 val_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 contiguous_modules: Sequence[str] = (),
                 data_preprocessor: Optional[dict] = None,
                 **kwargs):
        data_preprocessor = data_preprocessor or {}
        if isinstance(data_preprocessor, dict):
            data_preprocessor.setdefault('type', 'AttentionCropDrop')
        refuse_batch_augments(kwargs.get('train_cfg'))
        neck, head = without_stray_delete(neck), without_stray_delete(head)
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head_with_pooled_channels(head, neck),
            data_preprocessor=data_preprocessor,
            **kwargs)
        option = feature_map_option(self.backbone)
        if option:
            raise ValueError(
                f'model.backbone ({type(self.backbone).__name__}) pools its '
                'output, and BAPNeck needs its (B, C, H, W) feature map: '
                f'set model.backbone.{option}')
        if not isinstance(self.data_preprocessor, AttentionCropDrop):
            raise TypeError(
                'CALClassifier needs an AttentionCropDrop data preprocessor, '
                f'got {type(self.data_preprocessor).__name__}. Set '
                "data_preprocessor=dict(type='AttentionCropDrop', ...) at the "
                'top level of the config (tools/test.py --tta rebuilds the '
                'model from the top-level one).')
        if contiguous_modules and not self.data_preprocessor.channels_last:
            raise ValueError(
                f'contiguous_modules={contiguous_modules!r} only '
                'applies to a channels_last model: set channels_last=True '
                'in the AttentionCropDrop data preprocessor, or leave '
                'contiguous_modules out.')
        if self.data_preprocessor.channels_last:
            # Once, before weights are initialised or loaded: both write
            # into the parameters in place and keep their layout.
            self.to(memory_format=torch.channels_last)
            keep_contiguous_format(self, contiguous_modules)
        self.val_cfg = parse_views(val_cfg, 'val_cfg')
        self.test_cfg = parse_views(test_cfg, 'test_cfg')
        self.register_load_state_dict_pre_hook(self._check_checkpoint_shapes)

    def _check_checkpoint_shapes(self, module, state_dict, prefix, *args):
        """Refuse a checkpoint whose tensors have other shapes.

        mmengine's non-strict loading (``load_from``, ``--resume``) only
        warns about a shape mismatch and leaves those tensors at their
        initial values; a checkpoint of another class count or attention
        count would then train or test a half-loaded model. The error lists
        the mismatched keys with both shapes, and the missing and unexpected
        keys.
        """
        own = self.state_dict()
        shapes = {
            key: (tuple(state_dict[prefix + key].shape), tuple(tensor.shape))
            for key, tensor in own.items()
            if hasattr(state_dict.get(prefix + key), 'shape')
        }
        mismatched = [
            f'{key}: checkpoint {theirs}, model {ours}'
            for key, (theirs, ours) in shapes.items() if theirs != ours
        ]
        if not mismatched:
            return
        theirs = {
            key[len(prefix):]
            for key in state_dict if key.startswith(prefix)
        }
        raise ValueError(
            'The checkpoint does not fit the model built from the config '
            '(another num_classes or num_attentions?): '
            + '; '.join(mismatched)
            + f'. Missing from the checkpoint: {_listed(own.keys() - theirs)}'
            f'; not in the model: {_listed(theirs - own.keys())}. To '
            'fine-tune from it with a different head, load only its '
            "backbone: model.backbone.init_cfg=dict(type='Pretrained', "
            "checkpoint=<file>, prefix='backbone.') and no load_from.")

    def get_attention_maps(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised batch -> (B, M, h, w) attention maps."""
        return self.extract_feat(inputs).attention_maps

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        feats = self.extract_feat(inputs)
        crop_maps, drop_maps = sample_crop_drop_maps(feats.attention_maps)
        aug_inputs = self.data_preprocessor.augment(inputs, crop_maps,
                                                    drop_maps)
        aug_feats = self.extract_feat(aug_inputs)
        return self.head.loss(feats, data_samples, aug_feats=aug_feats)

    def view_logits(
        self,
        inputs: torch.Tensor,
        crops: Sequence[Tuple[float, float]],
    ) -> torch.Tensor:
        """Raw logits of the image and of each crop of its mean attention.

        Args:
            inputs: (B, 3, H, W) normalised batch.
            crops: ``(theta, padding_ratio)`` of each crop view.

        Returns:
            (1 + len(crops), B, K) logits, the raw view first.
        """
        feats = self.extract_feat(inputs)
        logits = [self.head(feats)]
        if crops:
            mean_map = feats.attention_maps.mean(dim=1, keepdim=True)
            crop_inputs = torch.cat([
                self.data_preprocessor.crop(inputs, mean_map, theta, padding)
                for theta, padding in crops
            ])
            # Eval-mode BatchNorm makes one pass over all crops equal to
            # one pass per crop.
            logits.extend(
                self.head(self.extract_feat(crop_inputs)).chunk(len(crops)))
        return torch.stack(logits)

    def val_step(self, data: dict) -> List[DataSample]:
        data = self.data_preprocessor(data, False)
        return self.predict(**data, views=self.val_cfg)

    def predict_logits(self,
                       inputs: torch.Tensor,
                       views: Optional[dict] = None) -> torch.Tensor:
        """(B, 3, H, W) normalised batch -> (B, K) logits averaged over
        ``views`` (default: ``test_cfg``)."""
        views = self.test_cfg if views is None else parse_views(views, 'views')
        crops, flip = views['crops'], views['flip']
        logits = self.view_logits(inputs, crops).mean(dim=0)
        if flip:
            flipped = self.view_logits(inputs.flip(-1), crops).mean(dim=0)
            logits = (logits + flipped) / 2
        return logits

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                views: Optional[dict] = None) -> List[DataSample]:
        """Scores averaged over ``views`` (default: ``test_cfg``)."""
        return self.head.predict_from_logits(
            self.predict_logits(inputs, views), data_samples)
