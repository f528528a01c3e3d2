"""Class names read from files a user may not have written (checkpoint
meta, ONNX metadata, class lists), checked before anything uses them."""
import unicodedata
from typing import List, Optional, Sequence

# iNaturalist 2021, the largest fine-grained set in use, has 10,000.
MAX_CLASSES = 10_000
MAX_NAME_LENGTH = 256
# Control characters (newline, tab, escape sequences' ESC...), line and
# paragraph separators, and lone surrogates (not encodable as UTF-8).
FORBIDDEN_CATEGORIES = ('Cc', 'Cs', 'Zl', 'Zp')


def show_name(name: str, limit: int = 60) -> str:
    """``name`` for an error message: quoted, control characters and
    non-ASCII escaped (a name cannot drive the terminal), cut at
    ``limit`` characters."""
    return ascii(name[:limit]) + ('...' if len(name) > limit else '')


def unprintable_character(name: str) -> Optional[str]:
    """The first character of ``name`` of a :data:`FORBIDDEN_CATEGORIES`
    category, or None."""
    for character in name:
        if unicodedata.category(character) in FORBIDDEN_CATEGORIES:
            return character
    return None


def validate_class_names(classes, source: str) -> List[str]:
    """``classes`` as a list, if it is a list or tuple of at most
    :data:`MAX_CLASSES` non-empty strings of at most
    :data:`MAX_NAME_LENGTH` characters without control characters.

    The type and the length are checked before any element is looked at,
    and no element is turned into text: a list of shared references
    (billions of elements when printed or joined, from a small file) is
    refused at once.

    Args:
        classes: the value read.
        source: where it was read, e.g. ``'x.pth: meta.dataset_meta.
            classes'``; starts the error message.

    Raises:
        ValueError: naming ``source``, the index and the reason.
    """
    if not isinstance(classes, (list, tuple)):
        raise ValueError(f'{source} is a {type(classes).__name__}, not a '
                         'list of class names')
    if len(classes) > MAX_CLASSES:
        raise ValueError(f'{source} holds {len(classes)} names, more than '
                         f'the {MAX_CLASSES} class names allowed')
    for index, name in enumerate(classes):
        if not isinstance(name, str):
            raise ValueError(f'{source}[{index}] is a {type(name).__name__}, '
                             'not a string')
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValueError(
                f'{source}[{index}] has {len(name)} characters: a class '
                f'name has 1 to {MAX_NAME_LENGTH}')
        character = unprintable_character(name)
        if character is not None:
            raise ValueError(
                f'{source}[{index}] {show_name(name)} holds the control '
                f'character {ascii(character)}')
    return list(classes)


def check_class_names(classes: Optional[Sequence[str]], num_classes: int,
                      how_to_name: str) -> List[str]:
    """``classes`` when they name each of a model's ``num_classes``
    classes.

    Raises:
        ValueError: there are no names (the message ends with
            ``how_to_name``, how the tool takes them), or another number.
    """
    if not classes:
        raise ValueError('No class names in the checkpoint or the config; '
                         f'{how_to_name} (one name per line, in label order)')
    if len(classes) != num_classes:
        raise ValueError(f'{len(classes)} class names for a model with '
                         f'{num_classes} classes')
    return list(classes)
