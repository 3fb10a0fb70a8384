"""Cora, CiteSeer and PubMed through DGL's own dataset classes, offline when files are local."""

import pickle
from pathlib import Path

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
        check=lambda files: None if any(raw_path.glob("*.bin")) else _check_raw(files),
        verbose=verbose,
    )  # (a processed graph there: DGL reads that, not the raw files)
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


def _check_raw(files):
    """Refuse raw files that read but that DGL's loader would turn into another graph without
    a word (a short label file trains fewer nodes; a negative test index wraps around)."""
    paths = dict(zip(RAW_SUFFIXES, files))
    arrays = {}
    for suffix in ("x", "y", "tx", "ty", "allx", "ally", "graph"):
        with open(paths[suffix], "rb") as handle:
            arrays[suffix] = pickle.load(handle, encoding="latin1")
    test = [int(line) for line in Path(paths["test.index"]).read_text().split()]
    faults = []
    for features, labels in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        rows, count = arrays[features].shape[0], len(arrays[labels])
        if rows != count:
            faults.append(f"{features} has {rows} rows but {labels} {count}")
    if len({arrays[key].shape[1] for key in ("x", "tx", "allx")}) != 1:
        faults.append("x, tx and allx differ in width")
    if len({arrays[key].shape[1] for key in ("y", "ty", "ally")}) != 1:
        faults.append("y, ty and ally differ in width")
    first = arrays["allx"].shape[0]  # the test nodes come after allx's
    nodes = max(len(arrays["graph"]), first + len(test))  # (a graph dict may skip a node)
    if len(test) != arrays["tx"].shape[0] or len(set(test)) != len(test):
        faults.append(f"test.index lists {len(test)} indices ({len(set(test))} distinct) for "
                      f"{arrays['tx'].shape[0]} test rows")  # fmt: skip
    elif test and (min(test) < first or max(test) >= nodes):
        faults.append(f"test.index runs {min(test)} … {max(test)}, outside the test nodes "
                      f"{first} … {nodes - 1}")  # fmt: skip
    ends = [n for key, ns in arrays["graph"].items() for n in (key, *ns)]
    if ends and (min(ends) < 0 or max(ends) >= nodes):
        faults.append(f"graph has node ids {min(ends)} … {max(ends)}, outside 0 … {nodes - 1}")
    if faults:
        raise ValueError(
            f"{', '.join(str(f) for f in files[:1])} and the other ind.* files disagree: "
            f"{'; '.join(faults)}. Replace them with fresh copies from {SOURCE}."
        )
