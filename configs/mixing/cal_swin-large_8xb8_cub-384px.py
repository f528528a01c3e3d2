# mmpretrain's Swin-L CUB fine-tuning config switched to CAL: the attention
# maps and bilinear pooling act on Swin's last (B, 1536, 12, 12) feature map.
_base_ = 'mmpretrain::swin_transformer/swin-large_8xb8_cub-384px.py'

custom_imports = dict(imports=['mmcal'], allow_failed_imports=False)
model = dict(
    type='CALClassifier',
    neck=dict(
        _delete_=True, type='BAPNeck', in_channels=1536, num_attentions=32),
    head=dict(_delete_=True, type='CALHead', num_classes=200),
    train_cfg=None)  # no Mixup/CutMix: CAL's losses read hard labels
data_preprocessor = dict(type='AttentionCropDrop')
# mmcal's CUB reader: mmpretrain's CUB with its annotation files checked.
train_dataloader = dict(dataset=dict(type='CheckedCUB'))
val_dataloader = dict(dataset=dict(type='CheckedCUB'))
test_dataloader = dict(dataset=dict(type='CheckedCUB'))
# mmengine tags the dicts of an mmpretrain:: base with _scope_, and
# mmpretrain's browse_dataset.py passes the visualizer's keys to its
# constructor, which refuses that one: the base's visualizer, untagged.
visualizer = dict(
    _delete_=True,
    type='UniversalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')])
