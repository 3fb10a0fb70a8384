"""Point DGL's own dataset classes at local files, so nothing is downloaded.

A DGL dataset looks for raw files in ``raw_dir/<internal name>_<sha1(url)[:8]>/`` and only
downloads when that folder is missing; it also writes its processed cache there. Local raw
files are therefore copied ("staged") into a writable cache folder under exactly that name.
"""

import contextlib
import shutil
from pathlib import Path


def dgl_layout(dataset_class, raw_dir):
    """DGL's internal name and raw folder for ``dataset_class`` under ``raw_dir``.

    The URL (and so the folder's hash suffix) is built inside the class's ``__init__``, so a
    subclass that skips loading is instantiated to read ``name`` and ``raw_path`` exactly as
    DGL computes them.
    """
    probe_class = type("_LayoutProbe", (dataset_class,), {"_load": lambda self: None})
    probe = probe_class(raw_dir=str(raw_dir), verbose=False)
    return probe.name, Path(probe.raw_path)


def stage_files(copies, target):
    """Copy ``{source path: file name}`` into the folder ``target``, all or nothing.

    Files go to ``target.partial`` first, which is renamed at the end, so a killed run never
    leaves a half-staged folder that DGL would take as complete. An existing ``target`` is kept.
    """
    target = Path(target)
    if target.exists():
        return
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for source, name in copies.items():
        shutil.copyfile(source, partial / name)
    partial.rename(target)


@contextlib.contextmanager
def download_errors(dataset, needed, source):
    """Turn a failed download into one clear line that says how to use local files."""
    try:
        yield
    except (OSError, ConnectionError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise RuntimeError(
            f"Could not download {dataset} ({type(error).__name__}). Without internet, put "
            f"{needed} in a folder and pass it with --data-dir (or set DGL_SSM_DATA); the "
            f"files are at {source}."
        ) from None
