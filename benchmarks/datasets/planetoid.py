"""Cora, CiteSeer and PubMed through DGL's own dataset classes, offline when files are local.

DGL looks for raw files in ``raw_dir/<internal name>_<first 8 hex of sha1(url)>/`` and only
downloads when that folder is missing; it also writes its processed cache there. So a local
copy of the raw Planetoid files (``ind.<name>.x`` …) is staged into a writable cache folder
under exactly that name, and DGL is pointed at it.
"""

import hashlib
import shutil

from dgl.data import CiteseerGraphDataset, CoraGraphDataset, PubmedGraphDataset
from dgl.data.citation_graph import CitationGraphDataset
from dgl.data.utils import _get_dgl_url

from .paths import cache_dir, data_dir

DATASETS = {
    "cora": (CoraGraphDataset, "cora_v2"),  # DGL's internal name for Cora
    "citeseer": (CiteseerGraphDataset, "citeseer"),
    "pubmed": (PubmedGraphDataset, "pubmed"),
}
RAW_SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
SOURCE = "https://github.com/kimiyoung/planetoid/tree/master/data"


def raw_folder_name(internal_name):
    """The folder DGL expects: ``<name>_<sha1(url)[:8]>``, as ``DGLDataset.raw_path`` builds it."""
    url = _get_dgl_url(CitationGraphDataset._urls[internal_name])
    return f"{internal_name}_{hashlib.sha1(url.encode('utf-8')).hexdigest()[:8]}"


def load_planetoid(name, data_dir_path=None, cache_path=None, verbose=False):
    """Load one Planetoid graph (public split masks in ``ndata``) with DGL's loader.

    Parameters
    ----------
    name : {"cora", "citeseer", "pubmed"}
    data_dir_path : str or Path, optional
        Folder holding ``ind.<name>.*`` (directly or in a ``planetoid/`` subfolder). Default
        ``$DGL_SSM_DATA``; with neither, DGL downloads the data.
    cache_path : str or Path, optional
        Writable folder for DGL's staged and processed copy. Default ``$DGL_SSM_CACHE``.
    """
    dataset_class, internal = DATASETS[name]
    cache = cache_dir(cache_path)
    local = data_dir(data_dir_path)
    if local is not None:
        _stage(name, internal, local, cache / raw_folder_name(internal))
    return dataset_class(raw_dir=str(cache), verbose=verbose)[0]


def _stage(name, internal, local, target):
    candidates = [local, local / "planetoid"]
    source = next((d for d in candidates if (d / f"ind.{name}.x").exists()), None)
    needed = [f"ind.{name}.{suffix}" for suffix in RAW_SUFFIXES]
    if source is None or any(not (source / f).exists() for f in needed):
        raise FileNotFoundError(
            f"No raw {name} files in {local} (or {local / 'planetoid'}). Needed: "
            f"{', '.join(needed)}. Get them from {SOURCE}, or unset DGL_SSM_DATA / drop "
            "--data-dir to let DGL download them."
        )
    if target.exists():
        return
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for suffix in RAW_SUFFIXES:  # DGL reads ind.<internal name>.*, e.g. ind.cora_v2.x
        shutil.copyfile(source / f"ind.{name}.{suffix}", partial / f"ind.{internal}.{suffix}")
    partial.rename(target)  # a killed run never leaves a half-staged folder behind
