def check_epoch_length(scheduler: str, epoch_length) -> None:
    """Refuse an ``epoch_length`` that cannot convert epochs to iterations.

    The Runner passes ``len(train_dataloader)``; a scheduler built by hand
    may be given anything.
    """
    if not isinstance(epoch_length, int) or epoch_length <= 0:
        raise ValueError(f'{scheduler} needs a positive integer '
                         f'epoch_length, got {epoch_length!r}')
