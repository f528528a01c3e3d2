"""How errors about a dataset name it: its type and source files."""


def describe_dataset(dataset) -> str:
    """Type and source files of a dataset, for error messages."""
    sources = [
        f'{name}={value!r}'
        for name in ('data_root', 'ann_file', 'data_prefix')
        if (value := getattr(dataset, name, None))
    ]
    return f'{type(dataset).__name__}({", ".join(sources)})'


def empty_dataset_message(dataset, split: str = '') -> str:
    split = f'{split} ' if split else ''
    return (f'The {split}dataset {describe_dataset(dataset)} is empty: check '
            'its annotation file, folder and split')
