# NABirds with the CAL paper's CUB-200-2011 pipelines, normalisation and
# loaders (cub_bs4_448.py): only the reader, its root and the class count
# differ.
# mmcal's NABirds: the official layout, its annotation files checked; the
# classes are the 555 taxonomy nodes that label images.
_base_ = './cub_bs4_448.py'

dataset_type = 'NABirds'
data_root = 'data/nabirds'

data_preprocessor = dict(num_classes=555)

train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
