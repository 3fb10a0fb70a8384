"""The heterophilous benchmark graphs of Platonov et al. (2023) through DGL's own classes.

Minesweeper, Tolokers, Roman-empire, Amazon-ratings and Questions, each with its ten fixed
train/val/test splits. DGL reads ``raw_dir/<name>_<sha1(url)[:8]>/<name>.npz`` (``<name>``
with underscores, e.g. ``roman_empire``) and downloads only when that folder is missing, so a
local ``.npz`` is staged into a writable cache folder under exactly that name.

DGL makes the graph undirected with ``dgl.to_bidirected`` (the ``.npz`` files list each edge
once), so e.g. Minesweeper has 39,402 listed edges and 78,804 directed edges once loaded.
"""

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
