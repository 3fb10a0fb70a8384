"""Where raw data is read from and where processed copies are cached."""

import os
from pathlib import Path

DATA_ENV = "DGL_SSM_DATA"
CACHE_ENV = "DGL_SSM_CACHE"


def data_dir(path=None):
    """The local raw-data directory: ``path``, else ``$DGL_SSM_DATA``, else ``None``.

    ``None`` means "no local copy": loaders then download as DGL/OGB usually do.
    """
    chosen = path if path is not None else os.environ.get(DATA_ENV)
    if not chosen:
        return None
    chosen = Path(chosen).expanduser()
    if chosen.is_file():  # a data file named itself: its loader looks for it in a folder
        where = "--data-dir (or data_dir: in a config)" if path is not None else f"${DATA_ENV}"
        raise ValueError(
            f"The data folder {chosen} is a file: {where} names the folder that holds the "
            f"data files, here {chosen.resolve().parent}."
        )
    return chosen


def cache_dir(path=None):
    """A writable directory for staged and processed data (``$DGL_SSM_CACHE`` or ~/.cache)."""
    chosen = path or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dgl_ssm"
    chosen = Path(chosen).expanduser()
    try:
        chosen.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a bad option's value: every command reports ValueError
        raise ValueError(
            f"Cannot use {chosen} as the data cache ({error.strerror or error}). Pass a "
            f"writable folder with --cache-dir, or set {CACHE_ENV}."
        ) from None
    return chosen
