"""Cora, CiteSeer and PubMed through DGL's own dataset classes, offline when files are local."""

from dgl.data import CiteseerGraphDataset, CoraGraphDataset, PubmedGraphDataset

from .base import BenchmarkData
from .paths import cache_dir, data_dir
from .staging import dgl_layout, load_dgl_dataset, stage_files

DATASETS = {
    "cora": CoraGraphDataset,
    "citeseer": CiteseerGraphDataset,
    "pubmed": PubmedGraphDataset,
}
RAW_SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
SOURCE = "https://github.com/kimiyoung/planetoid/tree/master/data"


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
    dataset_class = DATASETS[name]
    cache = cache_dir(cache_path)
    local = data_dir(data_dir_path)
    needed = [f"ind.{name}.{suffix}" for suffix in RAW_SUFFIXES]
    internal, raw_path = dgl_layout(dataset_class, cache)  # Cora's internal name: cora_v2
    files, stage = [raw_path / f.replace(name, internal, 1) for f in needed], None
    if local is not None:
        source = _find_source(name, local, needed)

        def stage():  # DGL reads ind.<internal name>.*, e.g. ind.cora_v2.x
            stage_files({source / f: f.replace(name, internal, 1) for f in needed}, raw_path)
            return [source / f for f in needed]

    dataset = load_dgl_dataset(
        dataset_class,
        cache,
        raw_path,
        files,
        stage,
        name=name,
        needed=", ".join(needed),
        source=SOURCE,
        verbose=verbose,
    )
    return dataset[0]


def planetoid_data(name, data_dir_path=None, cache_path=None):
    """The public-split node classification task as :class:`BenchmarkData`."""
    graph = load_planetoid(name, data_dir_path, cache_path)
    split = {
        part: graph.ndata[f"{part}_mask"].nonzero().view(-1) for part in ("train", "val", "test")
    }
    return BenchmarkData(
        name=name,
        level="node",
        loss="cross_entropy",
        metric="accuracy",
        num_features=graph.ndata["feat"].shape[1],
        num_outputs=int(graph.ndata["label"].max()) + 1,
        graph=graph,
        splits=[split],
    )


def _find_source(name, local, needed):
    for folder in (local, local / "planetoid"):
        if all((folder / f).exists() for f in needed):
            return folder
    raise FileNotFoundError(
        f"No raw {name} files in {local} (or {local / 'planetoid'}). Needed: "
        f"{', '.join(needed)}. Get them from {SOURCE}, or unset DGL_SSM_DATA / drop "
        "--data-dir to let DGL download them."
    )
