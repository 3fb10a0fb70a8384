"""The heterophilous benchmark graphs of Platonov et al. (2023) through DGL's own classes.

Minesweeper, Tolokers, Roman-empire, Amazon-ratings and Questions, each with its ten fixed
train/val/test splits. DGL reads ``raw_dir/<name>_<sha1(url)[:8]>/<name>.npz`` (``<name>``
with underscores, e.g. ``roman_empire``) and downloads only when that folder is missing, so a
local ``.npz`` is staged into a writable cache folder under exactly that name.

DGL makes the graph undirected with ``dgl.to_bidirected`` (the ``.npz`` files list each edge
once), so e.g. Minesweeper has 39,402 listed edges and 78,804 directed edges once loaded.
"""

import numpy as np
import torch
from dgl.data import (
    AmazonRatingsDataset,
    MinesweeperDataset,
    QuestionsDataset,
    RomanEmpireDataset,
    TolokersDataset,
)

from .base import BenchmarkData
from .paths import cache_dir, data_dir
from .staging import dgl_layout, load_dgl_dataset, stage_files

DATASETS = {
    "minesweeper": MinesweeperDataset,
    "tolokers": TolokersDataset,
    "roman_empire": RomanEmpireDataset,
    "amazon_ratings": AmazonRatingsDataset,
    "questions": QuestionsDataset,
}
BINARY = ("minesweeper", "tolokers", "questions")
NUM_SPLITS = 10
SOURCE = "https://github.com/yandex-research/heterophilous-graphs/tree/main/data"


def load_heterophilous(name, data_dir_path=None, cache_path=None, verbose=False):
    """Load one heterophilous graph with its ten fixed splits.

    Parameters
    ----------
    name : {"minesweeper", "tolokers", "roman_empire", "amazon_ratings", "questions"}
    data_dir_path : str or Path, optional
        Folder holding ``<name>.npz`` (directly or in a ``heterophilous/`` subfolder; a hyphen
        in place of the underscore, e.g. ``roman-empire.npz``, is accepted too). Default
        ``$DGL_SSM_DATA``; with neither, DGL downloads the file.
    cache_path : str or Path, optional
        Writable folder for DGL's staged copy. Default ``$DGL_SSM_CACHE``.

    Returns
    -------
    BenchmarkData
        Transductive: ``graph.ndata["feat"]`` (float32) and ``["label"]`` (int64), with
        ``splits`` a list of ten ``{"train", "val", "test"}`` → int64 node indices. The binary
        sets (Minesweeper, Tolokers, Questions) are scored by ROC-AUC, the others by accuracy.
    """
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown heterophilous dataset {name!r}; choose from {list(DATASETS)}")
    dataset_class = DATASETS[key]
    cache = cache_dir(cache_path)
    local = data_dir(data_dir_path)
    internal, raw_path = dgl_layout(dataset_class, cache)
    stage = None if local is None else lambda: [_stage(key, internal, local, raw_path)]
    dataset = load_dgl_dataset(dataset_class, cache, raw_path, [raw_path / f"{internal}.npz"],
                               stage, name=key, needed=f"{key}.npz", source=SOURCE,
                               check=lambda files: _check_arrays(files, binary=key in BINARY),
                               verbose=verbose)  # fmt: skip
    graph = dataset[0]

    masks = {split: graph.ndata.pop(f"{split}_mask") for split in ("train", "val", "test")}
    num_splits = masks["train"].shape[1] if masks["train"].dim() == 2 else 1
    splits = []
    for i in range(num_splits):
        splits.append(
            {
                split: torch.nonzero(mask[:, i] if mask.dim() == 2 else mask).flatten().long()
                for split, mask in masks.items()
            }
        )
    graph.ndata["feat"] = graph.ndata["feat"].float()
    graph.ndata["label"] = graph.ndata["label"].long()
    binary = key in BINARY
    return BenchmarkData(
        name=key,
        level="node",
        loss="cross_entropy",
        metric="roc_auc" if binary else "accuracy",
        num_features=graph.ndata["feat"].shape[1],
        num_outputs=2 if binary else int(graph.ndata["label"].max()) + 1,
        graph=graph,
        splits=splits,
    )


def _stage(key, internal, local, target):
    names = [f"{key}.npz", f"{key.replace('_', '-')}.npz"]
    candidates = [folder / file for folder in (local, local / "heterophilous") for file in names]
    source = next((path for path in candidates if path.is_file()), None)
    if source is None:
        raise FileNotFoundError(
            f"No {key} file in {local} (or {local / 'heterophilous'}). Needed: "
            f"{' or '.join(dict.fromkeys(names))}. Get it from {SOURCE}, or unset DGL_SSM_DATA "
            "/ drop --data-dir to let DGL download it."
        )
    stage_files({source: f"{internal}.npz"}, target)  # DGL reads <internal name>.npz
    return source


MASKS = ("train_masks", "val_masks", "test_masks")


def _check_arrays(files, binary):
    """Refuse a ``.npz`` whose arrays DGL would read into a wrong graph without a word, or
    crash the process on (an edge id outside the nodes corrupts memory), naming each fault."""
    (path,) = files
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in ("node_features", "node_labels", "edges", *MASKS) if k not in arrays]
        if missing:
            raise ValueError(
                f"{path} holds no {', '.join(missing)}: not a heterophilous-graphs file. "
                f"Replace it with a fresh copy from {SOURCE}."
            )
        faults = _faults({key: arrays[key] for key in arrays.files}, binary)
    if faults:
        raise ValueError(
            f"{path} cannot be read as a graph: {'; '.join(faults)}. Replace it with a fresh "
            f"copy from {SOURCE}."
        )


def _faults(arrays, binary):
    features, labels, edges = arrays["node_features"], arrays["node_labels"], arrays["edges"]
    n, faults = len(labels), []
    if labels.ndim != 1 or not _integer(labels):
        faults.append(f"node_labels is {labels.dtype} of shape {labels.shape}, not integers (N,)")
    elif n and (labels.min() < 0 or (binary and labels.max() > 1)):
        faults.append(f"node_labels runs {labels.min()} … {labels.max()}, outside the classes "
                      f"{'0 and 1' if binary else '0, 1, …'}")  # fmt: skip
    elif len(np.unique(labels)) < 2:
        faults.append("node_labels holds one class only")
    if features.ndim != 2 or len(features) != n:
        faults.append(f"node_features has shape {features.shape}, not ({n}, features)")
    elif not np.issubdtype(features.dtype, np.number) or np.iscomplexobj(features):
        faults.append(f"node_features is {features.dtype}, not real numbers")
    elif not np.isfinite(features).all():  # a trial would fail on them, after the loading
        rows = int((~np.isfinite(features)).any(axis=1).sum())
        faults.append(f"node_features holds NaN or Inf in {rows} of {n} rows")
    if edges.ndim != 2 or edges.shape[1:] != (2,) or not _integer(edges):
        faults.append(f"edges is {edges.dtype} of shape {edges.shape}, not integers (E, 2)")
    elif not edges.size:  # a GNN on it would be an MLP that reports as a GNN
        faults.append("edges is empty: the graph has no edges")
    elif edges.min() < 0 or edges.max() >= n:
        faults.append(f"edges has node ids {edges.min()} … {edges.max()}, outside 0 … {n - 1}")
    for key in MASKS:
        masks = arrays[key]
        if masks.shape != (NUM_SPLITS, n) or masks.dtype != bool:
            faults.append(f"{key} is {masks.dtype} of shape {masks.shape}, not bool "
                          f"({NUM_SPLITS} splits, {n})")  # fmt: skip
        elif not masks.any(axis=1).all():
            empty = [int(i) for i in np.flatnonzero(~masks.any(axis=1))]
            faults.append(f"{key} selects no node in split {', '.join(map(str, empty))}")
    return faults


def _integer(array):
    return np.issubdtype(array.dtype, np.integer)
