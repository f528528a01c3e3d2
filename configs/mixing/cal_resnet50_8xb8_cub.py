# mmpretrain's ResNet-50 CUB fine-tuning config switched to CAL: everything
# else (data, schedule, pretrained weights, runtime) is mmpretrain's.
_base_ = 'mmpretrain::resnet/resnet50_8xb8_cub.py'

# The lines any mmpretrain classification config needs for CAL:
custom_imports = dict(imports=['mmcal'], allow_failed_imports=False)
model = dict(
    type='CALClassifier',
    neck=dict(
        _delete_=True, type='BAPNeck', in_channels=2048, num_attentions=32),
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
