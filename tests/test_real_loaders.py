"""The real-data loaders: heterophilous graphs from ../shared/data, and ogbn-arxiv / Peptides
from small files written here in the exact upstream formats (nothing is downloaded)."""

import builtins
import gzip
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dgl_ssm_bench.datasets import dataset_metric, ogb_data
from dgl_ssm_bench.datasets.heterophilous import load_heterophilous
from dgl_ssm_bench.datasets.ogb_data import load_ogbn_arxiv, load_peptides
from dgl_ssm_bench.datasets.staging import stage_files

HAVE_OGB = all(importlib.util.find_spec(m) is not None for m in ("ogb", "rdkit", "pandas"))
needs_ogb = pytest.mark.skipif(
    not HAVE_OGB, reason='ogb/rdkit not installed: pip install "dgl-ssm[ogb]"'
)


# ---------------------------------------------------------------- heterophilous graphs


def check_heterophilous(data, num_nodes, num_edges, num_features):
    graph = data.graph
    assert (graph.num_nodes(), graph.num_edges()) == (num_nodes, num_edges)
    assert data.num_features == num_features == graph.ndata["feat"].shape[1]
    assert graph.ndata["feat"].dtype == torch.float32
    assert graph.ndata["label"].dtype == torch.int64
    assert int(graph.ndata["label"].max()) + 1 == data.num_outputs == 2
    assert (data.level, data.loss, data.metric) == ("node", "cross_entropy", "roc_auc")
    assert data.transductive and data.num_splits == len(data.splits) == 10
    src, dst = graph.edges()  # undirected: every edge is there both ways
    forward = set(zip(src.tolist(), dst.tolist()))
    assert all((d, s) in forward for s, d in forward)
    for split in data.splits:
        parts = [split[k] for k in ("train", "val", "test")]
        assert all(p.dtype == torch.int64 and len(p) > 0 for p in parts)
        joined = torch.cat(parts)
        assert len(torch.unique(joined)) == len(joined)  # disjoint
        assert int(joined.min()) >= 0 and int(joined.max()) < num_nodes
    assert not torch.equal(data.splits[0]["train"], data.splits[1]["train"])


def check_against_the_raw_file(data, path):
    """Features, labels and every split's node sets as the raw .npz file holds them (its
    val and test sets have the same size: a swap shows only here)."""
    raw = np.load(path)
    assert torch.equal(data.graph.ndata["feat"], torch.from_numpy(raw["node_features"]))
    assert torch.equal(data.graph.ndata["label"], torch.from_numpy(raw["node_labels"]))
    for i, split in enumerate(data.splits):
        for part in ("train", "val", "test"):
            nodes = np.flatnonzero(raw[f"{part}_masks"][i])
            assert np.array_equal(np.sort(split[part].numpy()), nodes), (i, part)


def test_minesweeper_from_local_files(data_dir, cache_dir):
    data = load_heterophilous("minesweeper", data_dir, cache_dir)
    assert data.name == "minesweeper"
    check_heterophilous(data, 10000, 78804, 7)
    check_against_the_raw_file(data, data_dir / "heterophilous" / "minesweeper.npz")
    assert [len(data.splits[0][k]) for k in ("train", "val", "test")] == [5000, 2500, 2500]


def test_tolokers_from_local_files(data_dir, cache_dir):
    data = load_heterophilous("tolokers", data_dir, cache_dir)
    assert data.name == "tolokers"
    check_heterophilous(data, 11758, 1_038_000, 10)
    check_against_the_raw_file(data, data_dir / "heterophilous" / "tolokers.npz")


def test_hyphenated_file_name_is_accepted(data_dir, tmp_path):
    # Upstream names the file roman_empire.npz; a hyphenated copy works too. Minesweeper's
    # file stands in (same format), so the result is multi-class-scored Minesweeper.
    shutil.copyfile(data_dir / "heterophilous" / "minesweeper.npz", tmp_path / "roman-empire.npz")
    data = load_heterophilous("roman_empire", tmp_path, tmp_path / "cache")
    assert (data.name, data.metric, data.num_outputs) == ("roman_empire", "accuracy", 2)
    assert dataset_metric("roman_empire") == "accuracy"  # as known before loading
    again = load_heterophilous("Roman-Empire", tmp_path, tmp_path / "cache")  # upstream's spelling
    assert again.name == "roman_empire" and again.graph.num_nodes() == 10000
    assert data.graph.num_nodes() == 10000


def test_a_multi_class_heterophilous_file_keeps_all_its_classes(data_dir, tmp_path):
    # Only the binary sets (Minesweeper, Tolokers, Questions) are limited to classes 0 and 1:
    # Roman-empire has 18 classes, Amazon-ratings 5. Minesweeper's arrays with five classes
    # stand in for Amazon-ratings.
    with np.load(data_dir / "heterophilous" / "minesweeper.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["node_labels"] = np.arange(10000) % 5
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "amazon_ratings.npz", **arrays)
    data = load_heterophilous("amazon_ratings", tmp_path / "data", tmp_path / "cache")
    assert (data.metric, data.num_outputs) == ("accuracy", 5)
    assert dataset_metric("amazon_ratings") == "accuracy"  # as known before loading
    assert data.graph.ndata["label"][:7].tolist() == [0, 1, 2, 3, 4, 0, 1]


def test_features_and_labels_of_other_dtypes_are_loaded_as_float32_and_int64(data_dir, tmp_path):
    # A file re-saved with other dtypes: DGL keeps them, and a float32 model refuses float64
    # features at its first layer, cross-entropy int32 targets.
    with np.load(data_dir / "heterophilous" / "minesweeper.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["node_features"] = arrays["node_features"].astype(np.float64)
    arrays["node_labels"] = arrays["node_labels"].astype(np.int32)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "minesweeper.npz", **arrays)
    data = load_heterophilous("minesweeper", tmp_path / "data", tmp_path / "cache")
    assert data.graph.ndata["feat"].dtype == torch.float32
    assert data.graph.ndata["label"].dtype == torch.int64
    assert np.array_equal(data.graph.ndata["feat"].numpy(), arrays["node_features"])
    assert np.array_equal(data.graph.ndata["label"].numpy(), arrays["node_labels"])


def test_missing_heterophilous_file_says_what_is_needed(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_heterophilous("roman_empire", tmp_path, tmp_path / "cache")
    message = str(error.value)
    for needed in ("roman_empire.npz", "heterophilous-graphs", "DGL_SSM_DATA", "--data-dir"):
        assert needed in message


# ---------------------------------------------------------------- staged copies and bad files


def truncate(path):
    """Cut ``path`` to half its size, as an interrupted copy or download leaves it; return
    the whole content, to put back."""
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return whole


def one_line_error(load, *names):
    with pytest.raises(RuntimeError) as error:
        load()
    message = str(error.value)
    assert "\n" not in message and "truncated or corrupt" in message
    assert all(name in message for name in names), message
    return message


def test_truncated_npz_is_named_and_the_fixed_file_is_used(data_dir, tmp_path):
    local, cache = tmp_path / "data", tmp_path / "cache"
    local.mkdir()
    source = local / "minesweeper.npz"
    shutil.copyfile(data_dir / "heterophilous" / "minesweeper.npz", source)
    whole = truncate(source)
    message = one_line_error(lambda: load_heterophilous("minesweeper", local, cache), str(source))
    assert "fresh copy" in message and "heterophilous-graphs" in message
    source.write_bytes(whole)  # the fix: no cache to delete by hand
    assert load_heterophilous("minesweeper", local, cache).graph.num_nodes() == 10000


def test_a_file_that_is_no_npz_at_all_is_named(tmp_path):
    local = tmp_path / "data"
    local.mkdir()
    (local / "minesweeper.npz").write_text("not an archive")  # np.load: a ValueError
    one_line_error(lambda: load_heterophilous("minesweeper", local, tmp_path / "cache"),
                   str(local / "minesweeper.npz"))  # fmt: skip


def test_a_download_that_leaves_no_file_says_how_to_use_local_files(
    tmp_path, monkeypatch, data_dir
):
    # Offline, DGL's download reports its failure, returns, and DGL then reads a file that is
    # not there: a bare ENOENT on a staged path the user never named.
    import dgl.data.dgl_dataset

    monkeypatch.delenv("DGL_SSM_DATA", raising=False)
    monkeypatch.setattr(dgl.data.dgl_dataset.DGLDataset, "download", lambda self: None)
    with pytest.raises(RuntimeError) as error:
        load_heterophilous("minesweeper", None, tmp_path / "cache")
    message = str(error.value)
    assert "Could not load minesweeper" in message and "minesweeper.npz is missing" in message
    assert "--data-dir" in message and "\n" not in message
    # DGL's download makes the dataset's folder before fetching, and DGL downloads only when
    # that folder is missing: left empty, it stopped every later run from downloading.
    assert "the empty folder it left" in message
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]

    def download(self):  # the network is back (DGL's download makes the folder first)
        Path(self.raw_path).mkdir(parents=True)
        shutil.copyfile(data_dir / "heterophilous" / "minesweeper.npz",
                        Path(self.raw_path) / f"{self.name}.npz")  # fmt: skip

    monkeypatch.setattr(dgl.data.MinesweeperDataset, "download", download)
    assert load_heterophilous("minesweeper", None, tmp_path / "cache").graph.num_nodes() == 10000


def test_staged_copy_follows_its_source(data_dir, tmp_path):
    """Staged before a bad source arrived, or damaged itself: either way re-staged."""
    local, cache = tmp_path / "data", tmp_path / "cache"
    local.mkdir()
    source = local / "minesweeper.npz"
    shutil.copyfile(data_dir / "heterophilous" / "minesweeper.npz", source)
    assert load_heterophilous("minesweeper", local, cache).graph.num_nodes() == 10000
    (staged,) = cache.glob("minesweeper_*/minesweeper.npz")
    truncate(staged)  # the cached copy goes bad (a full disk, a killed copy)
    assert load_heterophilous("minesweeper", local, cache).graph.num_nodes() == 10000
    assert staged.stat().st_size == source.stat().st_size
    # a different file of the same name: the new content is staged, not the old copy kept
    shutil.copyfile(data_dir / "heterophilous" / "tolokers.npz", source)
    assert load_heterophilous("minesweeper", local, cache).graph.num_nodes() == 11758


@pytest.mark.parametrize("suffix", ["graph", "allx"])
def test_truncated_planetoid_file_is_named_and_the_fixed_file_is_used(data_dir, tmp_path, suffix):
    from dgl_ssm_bench.datasets.planetoid import load_planetoid

    local, cache = local_planetoid(data_dir, tmp_path), tmp_path / "cache"
    bad = local / f"ind.cora.{suffix}"
    whole = truncate(bad)
    one_line_error(lambda: load_planetoid("cora", local, cache), str(bad), "planetoid")
    bad.write_bytes(whole)
    assert load_planetoid("cora", local, cache).num_nodes() == 2708


def test_truncated_processed_cache_is_rebuilt(data_dir, tmp_path):
    from dgl_ssm_bench.datasets.planetoid import load_planetoid

    cache = tmp_path / "cache"
    assert load_planetoid("cora", data_dir, cache).num_nodes() == 2708
    for processed in cache.glob("cora_v2_*/cora_v2_dgl_graph.*"):
        truncate(processed)  # DGL's own processed copy, beside the staged raw files
    # DGL's binary reader crashes the process on a cut .bin: the file is dropped before
    # DGL sees it (its size no longer matches the one recorded after the load that wrote it)
    assert load_planetoid("cora", data_dir, cache).num_nodes() == 2708
    (staged,) = [p for p in cache.glob("cora_v2_*") if p.is_dir()]  # not its .lock
    sizes = json.loads((staged / "processed_sizes.json").read_text())
    assert sizes["cora_v2_dgl_graph.bin"] == (staged / "cora_v2_dgl_graph.bin").stat().st_size


@pytest.mark.parametrize("name", ["cora", "minesweeper"])
def test_runs_side_by_side_take_the_cache_folder_in_turn(data_dir, tmp_path, name):
    """While one run holds a dataset's cache folder (staging into it, or DGL processing into
    it), another waits instead of replacing the folder under it (two reproduce queues once
    failed so: "Directory not empty" on renaming their staged copies)."""
    from dgl_ssm_bench.datasets import heterophilous, planetoid
    from dgl_ssm_bench.datasets.staging import dgl_layout, exclusive

    cache = tmp_path / "cache"
    if name == "cora":
        classes, load = planetoid.DATASETS, lambda: planetoid.load_planetoid(name, data_dir, cache)
    else:
        classes = heterophilous.DATASETS
        load = lambda: heterophilous.load_heterophilous(name, data_dir, cache).graph  # noqa: E731
    _, folder = dgl_layout(classes[name], cache)
    loaded = []
    with exclusive(folder):  # "the other run"
        other = threading.Thread(target=lambda: loaded.append(load()))
        other.start()
        other.join(timeout=1.5)  # staging alone takes milliseconds
        assert other.is_alive() and not folder.exists()  # it waits, having staged nothing
    other.join(timeout=120)
    assert loaded and loaded[0].num_nodes() == {"cora": 2708, "minesweeper": 10000}[name]
    assert (folder / "processed_sizes.json").is_file()  # staged, processed and sealed after


# ---------------------------------------------------------------- ogbn-arxiv (OGB raw format)

ARXIV_EDGES = [(0, 1), (1, 0), (1, 2), (2, 3), (3, 4), (4, 5)]  # 5 distinct undirected pairs


def write_csv_gz(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        for row in rows:
            handle.write(",".join(str(v) for v in np.atleast_1d(row)) + "\n")


def write_tiny_arxiv(root):
    """Six papers in OGB's raw layout (what read_csv_graph_raw and get_idx_split read)."""
    folder = root / "ogbn_arxiv"
    rng = np.random.default_rng(0)
    write_csv_gz(folder / "raw" / "edge.csv.gz", ARXIV_EDGES)
    write_csv_gz(folder / "raw" / "num-node-list.csv.gz", [6])
    write_csv_gz(folder / "raw" / "num-edge-list.csv.gz", [len(ARXIV_EDGES)])
    write_csv_gz(folder / "raw" / "node-feat.csv.gz", rng.normal(size=(6, 128)).round(6))
    write_csv_gz(folder / "raw" / "node-label.csv.gz", [3, 0, 39, 3, 7, 12])
    write_csv_gz(folder / "raw" / "node_year.csv.gz", [2015, 2016, 2017, 2018, 2019, 2020])
    for name, index in (("train", [0, 1, 2]), ("valid", [3, 4]), ("test", [5])):
        write_csv_gz(folder / "split" / "time" / f"{name}.csv.gz", index)
    return folder


@pytest.fixture
def never_prompt(monkeypatch):
    """Fail (never hang) if anything reaches the real input() on stdin."""

    class Prompted(Exception):
        pass

    def fail(prompt=""):
        raise Prompted(f"input() reached: {prompt!r}")

    monkeypatch.setattr(builtins, "input", fail)
    return fail


@needs_ogb
def test_ogbn_arxiv_from_local_raw_files(tmp_path, never_prompt, capsys):
    write_tiny_arxiv(tmp_path / "data")  # no RELEASE_v1.txt: the loader must add it
    data = load_ogbn_arxiv(tmp_path / "data", tmp_path / "cache")
    assert capsys.readouterr().out == ""  # OGB's progress lines only with verbose=True
    graph = data.graph
    assert graph.num_nodes() == 6 and graph.num_edges() == 10  # bidirected, duplicates merged
    src, dst = graph.edges()
    assert sorted(zip(src.tolist(), dst.tolist())) == sorted(
        {(a, b) for a, b in ARXIV_EDGES} | {(b, a) for a, b in ARXIV_EDGES}
    )
    assert graph.ndata["feat"].shape == (6, 128) and graph.ndata["feat"].dtype == torch.float32
    assert graph.ndata["label"].tolist() == [3, 0, 39, 3, 7, 12]
    assert graph.ndata["label"].dtype == torch.int64
    assert (data.metric, data.num_outputs, data.num_features) == ("accuracy", 40, 128)
    assert [data.splits[0][k].tolist() for k in ("train", "val", "test")] == [
        [0, 1, 2],
        [3, 4],
        [5],
    ]
    staged = tmp_path / "cache" / "ogb" / "ogbn_arxiv"
    assert (staged / "RELEASE_v1.txt").exists() and (staged / "processed").is_dir()
    assert builtins.input is never_prompt  # the guard put input() back
    again = load_ogbn_arxiv(tmp_path / "data", tmp_path / "cache")  # from OGB's processed cache
    assert again.graph.num_edges() == 10


@needs_ogb
def test_an_ogbn_arxiv_source_fixed_since_it_was_staged_is_read_afresh(tmp_path, never_prompt):
    """The staged copy (and OGB's processed graph made from it) follows its source, as every
    local dataset's does: a label file fixed since the first load is what the second reads."""
    folder = write_tiny_arxiv(tmp_path / "data")
    first = load_ogbn_arxiv(tmp_path / "data", tmp_path / "cache")
    assert first.graph.ndata["label"].tolist() == [3, 0, 39, 3, 7, 12]
    write_csv_gz(folder / "raw" / "node-label.csv.gz", [1, 2, 3, 4, 5, 6])
    again = load_ogbn_arxiv(tmp_path / "data", tmp_path / "cache")
    assert again.graph.ndata["label"].tolist() == [1, 2, 3, 4, 5, 6]
    assert again.num_outputs == 40  # OGB's 40 subject areas, not the 7 these labels reach
    staged = tmp_path / "cache" / "ogb" / "ogbn_arxiv"
    assert (staged / "RELEASE_v1.txt").exists()  # or OGB would ask on stdin


@needs_ogb
def test_an_ogbn_arxiv_folder_of_splits_and_processed_graph_only_is_staged(tmp_path, never_prompt):
    # A copy of OGB's processed graph (no raw files): staged and read as it is.
    write_tiny_arxiv(tmp_path / "data")
    load_ogbn_arxiv(tmp_path / "data", tmp_path / "cache")
    made = tmp_path / "cache" / "ogb" / "ogbn_arxiv"
    only = tmp_path / "processed_only" / "ogbn_arxiv"
    for name in ("processed/dgl_data_processed", "split/time/train.csv.gz",
                 "split/time/valid.csv.gz", "split/time/test.csv.gz"):  # fmt: skip
        (only / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made / name, only / name)
    data = load_ogbn_arxiv(tmp_path / "processed_only", tmp_path / "cache2")
    assert data.graph.ndata["label"].tolist() == [3, 0, 39, 3, 7, 12]
    assert data.splits[0]["test"].tolist() == [5]


@needs_ogb
def test_ogb_update_prompt_fails_fast_instead_of_hanging(tmp_path, never_prompt, monkeypatch):
    # A cached folder without its release file makes OGB ask "Will you update...? (y/N)".
    monkeypatch.delenv("DGL_SSM_DATA", raising=False)  # no local folder: OGB's own download
    stale = tmp_path / "cache" / "ogb" / "ogbn_arxiv"
    stale.mkdir(parents=True)
    with pytest.raises(RuntimeError, match="stopped to ask on stdin") as error:
        load_ogbn_arxiv(None, tmp_path / "cache")
    assert str(stale) in str(error.value)
    assert builtins.input is never_prompt


@needs_ogb
def test_missing_ogbn_arxiv_files_say_what_is_needed(tmp_path):
    folder = write_tiny_arxiv(tmp_path)
    (folder / "raw" / "node-feat.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match="raw/node-feat.csv.gz") as error:
        load_ogbn_arxiv(tmp_path, tmp_path / "cache")
    assert "arxiv.zip" in str(error.value) and "DGL_SSM_DATA" in str(error.value)
    # every raw file but a split's: as incomplete (not a bare "No such file" while staging)
    folder = write_tiny_arxiv(tmp_path / "no_valid")
    (folder / "split" / "time" / "valid.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match="split/time/valid.csv.gz") as error:
        load_ogbn_arxiv(tmp_path / "no_valid", tmp_path / "cache")
    assert "arxiv.zip" in str(error.value)


@needs_ogb
def test_ogbn_arxiv_unzipped_as_arxiv_in_an_ogb_folder_is_found(tmp_path, never_prompt):
    # arxiv.zip unpacks to arxiv/; OGB's own root keeps it in ogb/: both as the docs say.
    write_tiny_arxiv(tmp_path / "data").rename(tmp_path / "arxiv")
    (tmp_path / "data" / "ogb").mkdir()
    (tmp_path / "arxiv").rename(tmp_path / "data" / "ogb" / "arxiv")
    data = load_ogbn_arxiv(tmp_path / "data", tmp_path / "cache")
    assert data.graph.ndata["label"].tolist() == [3, 0, 39, 3, 7, 12]


# ---------------------------------------------------------------- Peptides (LRGB raw format)

SMILES = ["CC(=O)O", "c1ccccc1", "CCN", "C", "CC(N)C(=O)O", "O=C=O"]
SPLIT = {"train": np.array([0, 1, 2]), "val": np.array([3, 4]), "test": np.array([5])}
FUNC_LABELS = np.random.default_rng(1).integers(0, 2, size=(6, 10))
STRUCT_LABELS = np.random.default_rng(2).normal(size=(6, 11)).round(6)


def write_peptides(folder, task, struct_file="peptide_structure_normalized_dataset.csv.gz"):
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    if task == "func":
        frame = pd.DataFrame({"smiles": SMILES, "labels": [str(r) for r in FUNC_LABELS.tolist()]})
        frame.to_csv(folder / "peptide_multi_class_dataset.csv.gz", index=False)
        split_name = "splits_random_stratified_peptide.pickle"
    else:
        frame = pd.DataFrame(STRUCT_LABELS, columns=ogb_data.STRUCT_TARGETS)
        frame.insert(0, "smiles", SMILES)
        frame.to_csv(folder / struct_file, index=False)
        split_name = "splits_random_stratified_peptide_structure.pickle"
    with open(folder / split_name, "wb") as handle:
        pickle.dump(SPLIT, handle)


def rdkit_counts(smiles):
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    return mol.GetNumAtoms(), mol.GetNumBonds()


def check_peptide_graphs(data):
    assert data.level == "graph" and not data.transductive and data.num_features == 9
    for split, index in SPLIT.items():
        graphs = data.graphs[split]
        assert len(graphs) == len(index)
        for graph, i in zip(graphs, index):
            atoms, bonds = rdkit_counts(SMILES[i])
            assert (graph.num_nodes(), graph.num_edges()) == (atoms, 2 * bonds)
            assert graph.ndata["feat"].shape == (atoms, 9)
            assert graph.edata["feat"].shape == (2 * bonds, 3)
            assert graph.ndata["feat"].dtype == graph.edata["feat"].dtype == torch.int64
    acetic = data.graphs["train"][0]
    assert (acetic.num_nodes(), acetic.num_edges()) == (4, 6)  # 4 heavy atoms, 3 bonds


@needs_ogb
def test_peptides_func_and_cache_round_trip(tmp_path, monkeypatch):
    write_peptides(tmp_path / "data", "func")
    data = load_peptides("func", tmp_path / "data", tmp_path / "cache")
    assert (data.name, data.loss, data.metric, data.num_outputs) == (
        "peptides_func",
        "bce",
        "ap",
        10,
    )
    check_peptide_graphs(data)
    for split, index in SPLIT.items():
        labels = data.graph_labels[split]
        assert labels.dtype == torch.float32 and labels.shape == (len(index), 10)
        assert torch.equal(labels, torch.as_tensor(FUNC_LABELS[index], dtype=torch.float32))

    cached = list((tmp_path / "cache" / "peptides_func").glob("processed_*.bin"))
    assert len(cached) == 1 and not list(cached[0].parent.glob("*.tmp"))

    def no_processing(*args):
        raise AssertionError("the cached graphs should have been used")

    monkeypatch.setattr(ogb_data, "_process_peptides", no_processing)
    again = load_peptides("func", tmp_path / "data", tmp_path / "cache")
    for split in SPLIT:
        assert torch.equal(again.graph_labels[split], data.graph_labels[split])
        for old, new in zip(data.graphs[split], again.graphs[split]):
            assert torch.equal(old.edges()[0], new.edges()[0])
            assert torch.equal(old.ndata["feat"], new.ndata["feat"])
            assert torch.equal(old.edata["feat"], new.edata["feat"])


@needs_ogb
def test_peptides_struct(tmp_path):
    write_peptides(tmp_path / "data" / "peptides-structural" / "raw", "struct")  # LRGB layout
    data = load_peptides("struct", tmp_path / "data", tmp_path / "cache")
    assert (data.name, data.loss, data.metric, data.num_outputs) == (
        "peptides_struct",
        "l1",
        "mae",
        11,
    )
    check_peptide_graphs(data)
    for split, index in SPLIT.items():
        expected = torch.as_tensor(STRUCT_LABELS[index], dtype=torch.float32)
        assert data.graph_labels[split].shape == (len(index), 11)
        assert torch.allclose(data.graph_labels[split], expected)


@needs_ogb
def test_unnormalized_peptides_struct_file_is_standardised(tmp_path):
    write_peptides(tmp_path / "data", "struct", struct_file="peptide_structure_dataset.csv.gz")
    data = load_peptides("struct", tmp_path / "data", tmp_path / "cache")
    labels = torch.cat([data.graph_labels[s] for s in SPLIT])  # splits cover all 6 rows
    assert torch.allclose(labels.mean(0), torch.zeros(11), atol=1e-5)
    assert torch.allclose(labels.std(0), torch.ones(11), atol=1e-5)


@needs_ogb
def test_a_changed_peptides_split_file_is_read_not_the_graphs_cached_from_the_old_one(tmp_path):
    write_peptides(tmp_path / "data", "func")
    load_peptides("func", tmp_path / "data", tmp_path / "cache")  # cached with SPLIT
    reversed_split = {"train": np.array([5, 4, 3]), "val": np.array([2, 1]), "test": np.array([0])}
    with open(tmp_path / "data" / "splits_random_stratified_peptide.pickle", "wb") as handle:
        pickle.dump(reversed_split, handle)
    data = load_peptides("func", tmp_path / "data", tmp_path / "cache")
    for split, index in reversed_split.items():
        expected = torch.as_tensor(FUNC_LABELS[index], dtype=torch.float32)
        assert torch.equal(data.graph_labels[split], expected), split
        assert [g.num_nodes() for g in data.graphs[split]] == [
            rdkit_counts(SMILES[i])[0] for i in index
        ]


@needs_ogb
def test_a_split_file_naming_its_validation_set_valid_is_read(tmp_path):
    # OGB's name for the validation split; LRGB's pickle says "val".
    write_peptides(tmp_path / "data", "struct")
    with open(tmp_path / "data" / "splits_random_stratified_peptide_structure.pickle", "wb") as h:
        pickle.dump({"train": SPLIT["train"], "valid": SPLIT["val"], "test": SPLIT["test"]}, h)
    data = load_peptides("struct", tmp_path / "data", tmp_path / "cache")
    check_peptide_graphs(data)
    expected = torch.as_tensor(STRUCT_LABELS[SPLIT["val"]], dtype=torch.float32)
    assert torch.allclose(data.graph_labels["val"], expected)


@needs_ogb
def test_the_same_struct_bytes_under_the_standardised_files_name_are_not_standardised(tmp_path):
    # The file's name says whether its targets are standardised: graphs cached from the older
    # unstandardised file are not served for the same bytes under the newer file's name.
    old, new = "peptide_structure_dataset.csv.gz", "peptide_structure_normalized_dataset.csv.gz"
    write_peptides(tmp_path / "data", "struct", struct_file=old)
    load_peptides("struct", tmp_path / "data", tmp_path / "cache")  # standardised, cached
    (tmp_path / "data" / old).rename(tmp_path / "data" / new)
    data = load_peptides("struct", tmp_path / "data", tmp_path / "cache")
    for split, index in SPLIT.items():
        expected = torch.as_tensor(STRUCT_LABELS[index], dtype=torch.float32)
        assert torch.allclose(data.graph_labels[split], expected), split


@needs_ogb
@pytest.mark.parametrize("where", ["peptides", "peptides_func", "lrgb/peptides-functional"])
def test_peptides_files_are_found_in_each_folder_the_loader_names(tmp_path, where):
    write_peptides(tmp_path / "data" / where, "func")
    data = load_peptides("func", tmp_path / "data", tmp_path / "cache")
    expected = torch.as_tensor(FUNC_LABELS[SPLIT["val"]], dtype=torch.float32)
    assert torch.equal(data.graph_labels["val"], expected)


@needs_ogb
def test_peptides_files_downloaded_once_are_read_again_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("DGL_SSM_DATA", raising=False)
    write_peptides(tmp_path / "cache" / "peptides_func" / "raw", "func")  # as a download left them
    monkeypatch.setattr(ogb_data.urllib.request, "urlopen",
                        lambda url, timeout: pytest.fail(f"{url} downloaded again"))  # fmt: skip
    check_peptide_graphs(load_peptides("func", None, tmp_path / "cache"))


@needs_ogb
def test_a_downloaded_peptides_file_with_the_wrong_md5_is_refused_and_not_kept(
    tmp_path, monkeypatch
):
    import hashlib
    import io

    monkeypatch.delenv("DGL_SSM_DATA", raising=False)
    # a captive portal's page, or a file LRGB replaced: it reads, but it is not the data
    monkeypatch.setattr(ogb_data.urllib.request, "urlopen",
                        lambda url, timeout: io.BytesIO(b"<html>sign in</html>"))  # fmt: skip
    found = hashlib.md5(b"<html>sign in</html>").hexdigest()
    with pytest.raises(
        RuntimeError, match=f"MD5 {found}, expected 701eb743e899f4d793f0e13c8fa5a1b4"
    ):
        load_peptides("func", None, tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


@needs_ogb
def test_missing_peptides_files_say_what_is_needed(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_peptides("func", tmp_path, tmp_path / "cache")
    message = str(error.value)
    for needed in (
        "peptide_multi_class_dataset.csv.gz",
        "splits_random_stratified_peptide.pickle",
        "DGL_SSM_DATA",
    ):
        assert needed in message
    with pytest.raises(ValueError):
        load_peptides("nope", tmp_path, tmp_path / "cache")


@needs_ogb
def test_a_peptides_model_has_lrgbs_encoders_and_its_parameter_count(tmp_path):
    from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
    from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims

    from dgl_ssm_bench.config import RunConfig
    from dgl_ssm_bench.models import build_for, parameter_count

    write_peptides(tmp_path / "data", "func")
    data = load_peptides("func", tmp_path / "data", tmp_path / "cache")
    config = RunConfig.from_yaml("benchmarks/configs/peptides_func.yaml")
    model = build_for(config.model, data)
    assert isinstance(model.encoder, AtomEncoder) and not hasattr(model, "edge_encoder")
    # Counted by hand: one embedding table per atom feature; per layer GraphConv (W, bias) and
    # BatchNorm (γ, β); the graph head's two linear layers.
    hidden, layers = 96, 42
    count = sum(get_atom_feature_dims()) * hidden + layers * (hidden * hidden + 3 * hidden)
    count += hidden * hidden + hidden + hidden * 10 + 10
    assert parameter_count(model) == count == 426_154 <= 500_000

    config.model.name, config.model.max_hop, config.model.past_max_hop = "gatedgcn_ssm", None, None
    config.model.hidden, config.model.num_layers = 32, 2
    gated = build_for(config.model, data)
    assert isinstance(gated.encoder, AtomEncoder) and isinstance(gated.edge_encoder, BondEncoder)
    assert gated.edge_encoder.bond_embedding_list[0].num_embeddings == get_bond_feature_dims()[0]


@needs_ogb
def test_the_trainer_gives_bond_features_to_gatedgcn_and_no_self_loops(tmp_path, monkeypatch):
    from dgl_ssm_bench import train as train_module
    from dgl_ssm_bench.config import RunConfig

    write_peptides(tmp_path / "data", "struct")  # MAE: finite on 2 validation graphs
    data = load_peptides("struct", tmp_path / "data", tmp_path / "cache")
    calls = []
    build = train_module.build_for

    def recording_build(model_config, dataset):
        model = build(model_config, dataset)
        model.register_forward_pre_hook(lambda module, args: calls.append(args))
        return model

    monkeypatch.setattr(train_module, "build_for", recording_build)
    config = RunConfig()
    config.model.name, config.model.hidden, config.model.num_layers = "gatedgcn_ssm", 16, 2
    config.data.name, config.optim.epochs = "peptides_struct", 1
    result = train_module.train(config, data=data)
    assert result.status == "ok" and calls
    for graph, feat, edge_feat in calls:  # every call: (graph, atom codes, bond codes)
        assert feat.dtype == edge_feat.dtype == torch.int64
        assert edge_feat.shape == (graph.num_edges(), 3)
        assert not bool((graph.edges()[0] == graph.edges()[1]).any())  # no self loops added
    # Bond features change the output (they are not loaded and dropped).
    model = build(config.model, data).eval()
    graph = data.graphs["train"][0]  # acetic acid: single and double bonds
    out = model(graph, graph.ndata["feat"], graph.edata["feat"])
    other = model(graph, graph.ndata["feat"], torch.zeros_like(graph.edata["feat"]))
    assert not torch.allclose(out, other)


@pytest.mark.parametrize("sealed", [True, False], ids=["cut-short-later", "never-sealed"])
def test_a_downloaded_dataset_whose_processed_file_is_cut_short_is_processed_again(
    tmp_path, monkeypatch, data_dir, sealed
):
    """Without --data-dir, DGL's own download folder: a processed file cut short (a killed
    save, a full disk) is made afresh, whether a load worked since (the folder is sealed) or
    the first load was killed while saving (no seal yet). DGL's binary reader crashed the
    process on it (a segfault) on every run."""
    import dgl.data

    from dgl_ssm_bench.datasets.planetoid import load_planetoid
    from dgl_ssm_bench.datasets.staging import SEALED

    def download(self):  # as DGL's: the folder, then the raw files (here from the local copy)
        Path(self.raw_path).mkdir(parents=True)
        for path in (data_dir / "planetoid").glob("ind.cora.*"):
            shutil.copyfile(path, Path(self.raw_path) / path.name.replace("cora", "cora_v2"))

    monkeypatch.delenv("DGL_SSM_DATA", raising=False)
    monkeypatch.setattr(dgl.data.CoraGraphDataset, "download", download)
    cache = tmp_path / "cache"
    assert load_planetoid("cora", None, cache).num_nodes() == 2708
    (folder,) = [path for path in cache.glob("cora_v2_*") if path.is_dir()]  # (3.10: no "*/")
    if not sealed:
        (folder / SEALED).unlink()
    (processed,) = folder.glob("*.bin")
    truncate(processed)
    code = ("from dgl_ssm_bench.datasets.planetoid import load_planetoid; "
            f"print(load_planetoid('cora', None, {str(cache)!r}).num_nodes())")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "DGL_SSM_DATA"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-500:]  # (a crash: -11)
    assert result.stdout.split()[-1] == "2708"
    assert sorted(p.name for p in folder.glob("ind.cora_v2.*")) == sorted(  # raw files kept
        f"ind.cora_v2.{s}" for s in ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
    )


# ---------------------------------------------------------------- downloads that stall


@pytest.fixture
def stalled_server():
    """A local address that takes connections and never answers, as a network whose firewall
    drops packets: without a timeout a download waits on it for ever."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # connections complete in the backlog; nothing is ever sent back
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    server.close()


def test_dgl_download_that_gets_no_answer_gives_up(tmp_path, monkeypatch, stalled_server):
    import requests

    from dgl_ssm_bench.datasets import staging
    from dgl_ssm_bench.datasets.planetoid import load_planetoid

    monkeypatch.delenv("DGL_SSM_DATA", raising=False)
    monkeypatch.setenv("DGL_REPO", stalled_server)  # where DGL fetches cora_v2.zip from
    monkeypatch.setattr(staging, "DOWNLOAD_TIMEOUT_S", 0.2)
    get = requests.get
    outcome = {}

    def load():
        try:
            load_planetoid("cora", None, tmp_path / "cache")
        except RuntimeError as error:
            outcome["error"] = str(error)

    worker = threading.Thread(target=load, daemon=True)  # (a hang fails, not blocks, the test)
    worker.start()
    worker.join(timeout=60)  # DGL tries 6 times
    assert not worker.is_alive(), "the download still waits on a server that never answers"
    message = outcome["error"]
    assert "Could not download cora" in message and "no answer in 0.2 s" in message
    assert "--data-dir" in message and "\n" not in message
    assert requests.get is get  # put back


def test_a_download_that_stalls_mid_file_says_it_got_no_answer(monkeypatch, tmp_path):
    # Headers and a first kilobyte, then silence: requests reports the stalled read as a
    # ConnectionError wrapping urllib3's ReadTimeoutError.
    import socket

    from dgl.data.utils import download

    from dgl_ssm_bench.datasets import staging

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def answer_then_stall():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1024)
            held.append(connection)  # open, silent

    threading.Thread(target=answer_then_stall, daemon=True).start()
    monkeypatch.setattr(staging, "DOWNLOAD_TIMEOUT_S", 0.2)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/cora_v2.zip"
    try:
        with pytest.raises(
            RuntimeError, match=r"Could not download cora \(\w+, no answer in 0.2 s"
        ):
            with staging.download_errors("cora", "the files", "their source"):
                download(url, path=str(tmp_path / "cora_v2.zip"), retries=1, log=False)
    finally:
        server.close()
        for connection in held:
            connection.close()


def test_a_refused_download_is_not_called_unanswered(monkeypatch):
    # urllib3 derives the error of a refused connection (or of a host name that does not
    # resolve, as offline) from its ConnectTimeoutError: the message said "no answer in 60 s"
    # of a failure that took milliseconds.
    import socket

    import requests

    from dgl_ssm_bench.datasets import staging

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the connection is refused at once
    with pytest.raises(RuntimeError) as info:
        with staging.download_errors("cora", "the files", "their source"):
            requests.get(f"http://127.0.0.1:{port}/cora_v2.zip", timeout=30)
    assert str(info.value).startswith("Could not download cora (ConnectionError). ")


def test_ogb_style_download_that_gets_no_answer_gives_up(monkeypatch, stalled_server):
    # OGB's download is urllib's urlopen with no timeout: it takes the socket default.
    import socket
    import urllib.request

    from dgl_ssm_bench.datasets import staging

    monkeypatch.setattr(staging, "DOWNLOAD_TIMEOUT_S", 0.2)
    outcome = {}

    def fetch():
        try:
            with staging.download_errors("ogbn-arxiv", "the folder", "its source"):
                urllib.request.urlopen(stalled_server).read()
        except RuntimeError as error:
            outcome["error"] = str(error)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "urlopen still waits on a server that never answers"
    assert "Could not download ogbn-arxiv" in outcome["error"]
    assert "no answer in 0.2 s" in outcome["error"]
    assert socket.getdefaulttimeout() is None  # put back


def test_a_timeout_the_downloader_wrapped_twice_is_still_no_answer():
    # A read that timed out, re-raised "from" it, then wrapped by two layers of the download
    # code (as urllib3's ProtocolError in requests' ConnectionError): still no answer.
    from dgl_ssm_bench.datasets import staging

    with pytest.raises(RuntimeError, match=r"Could not download cora \(OSError, no answer in"):
        with staging.download_errors("cora", "the files", "their source"):
            try:
                raise TimeoutError("timed out")
            except TimeoutError as timeout:
                try:
                    raise OSError("read failed") from timeout
                except OSError as read:
                    raise OSError(ConnectionError(read)) from None


@needs_ogb
@pytest.mark.parametrize("sealed", [True, False], ids=["cut-short-later", "never-sealed"])
def test_an_ogbn_arxiv_processed_file_cut_short_is_made_afresh(tmp_path, never_prompt, sealed):
    from dgl_ssm_bench.datasets.staging import SEALED

    write_tiny_arxiv(tmp_path / "data")
    assert load_ogbn_arxiv(tmp_path / "data", tmp_path / "cache").graph.num_edges() == 10
    processed = tmp_path / "cache" / "ogb" / "ogbn_arxiv" / "processed"
    if not sealed:  # a first processing killed after its save, before the seal
        (processed / SEALED).unlink()
    truncate(processed / "dgl_data_processed")
    data, cache = str(tmp_path / "data"), str(tmp_path / "cache")
    code = ("from dgl_ssm_bench.datasets.ogb_data import load_ogbn_arxiv; "
            f"print(load_ogbn_arxiv({data!r}, {cache!r}).graph.num_edges())")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.split()[-1] == "10"


def _changed(arrays, key, change):
    arrays = dict(arrays)
    arrays[key] = change(arrays[key].copy())
    return arrays


def _set(index, value):
    def change(array):
        array[index] = value
        return array

    return change


BAD_ARRAYS = {  # what is changed → what the message says
    "edge id -1": ("edges", _set((0, 0), -1), "edges has node ids -1 … 9999, outside 0 … 9999"),
    "edge id N": ("edges", _set((5, 1), 10000), "node ids 0 … 10000, outside 0 … 9999"),
    "1-D features": ("node_features", lambda a: a[:, 0], "node_features has shape (10000,)"),
    "class 7": ("node_labels", _set(3, 7), "node_labels runs 0 … 7, outside the classes 0 and 1"),
    "class -1": ("node_labels", _set(3, -1), "node_labels runs -1 … 1, outside the classes 0"),
    "one class": ("node_labels", lambda a: a * 0, "node_labels holds one class only"),
    "empty train split": ("train_masks", _set(3, False), "train_masks selects no node in split 3"),
    "one split": ("val_masks", lambda a: a[:1], "val_masks is bool of shape (1, 10000)"),
    "float edges": ("edges", lambda a: a.astype(float), "edges is float64 of shape (39402, 2)"),
    "no edges": ("edges", lambda a: a[:0], "edges is empty: the graph has no edges"),
    # Each trial of a sweep failed on them, and a one-trial sweep ended "successfully".
    "NaN features": (
        "node_features",
        _set((slice(4, 7), 2), np.nan),
        "node_features holds NaN or Inf in 3 of 10000 rows",
    ),
    "text features": ("node_features", lambda a: a.astype(str), "node_features is <U"),
    "complex features": (
        "node_features",
        lambda a: a.astype(np.complex128),
        "node_features is complex128, not real numbers",
    ),
    # An infinite feature fails a trial as a NaN does (isnan alone lets it through).
    "Inf features": (
        "node_features",
        _set((slice(0, 2), 1), np.inf),
        "node_features holds NaN or Inf in 2 of 10000 rows",
    ),
    # A list of triples is no edge list of (E, 2) pairs, whatever DGL makes of it.
    "3-column edges": (
        "edges",
        lambda a: np.hstack([a, a[:, :1]]),
        "edges is int64 of shape (39402, 3), not integers (E, 2)",
    ),
    # Arrays of one node fewer than the labels: another dataset's rows, or a cut copy.
    "features of N - 1 nodes": (
        "node_features",
        lambda a: a[:-1],
        "node_features has shape (9999, 7), not (10000, features)",
    ),
    "masks of N - 1 nodes": (
        "test_masks",
        lambda a: a[:, :-1],
        "test_masks is bool of shape (10, 9999)",
    ),
}


@pytest.mark.parametrize("fault", list(BAD_ARRAYS))
def test_a_heterophilous_file_dgl_would_misread_is_refused_with_its_fault(
    fault, data_dir, tmp_path
):
    """Arrays that read but make no such graph: DGL crashed the process on an edge id -1
    (heap corruption), took a file of one split for split 0, or trained on an empty split
    and called the outcome a divergence."""
    key, change, expected = BAD_ARRAYS[fault]
    with np.load(data_dir / "heterophilous" / "minesweeper.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "minesweeper.npz", **_changed(arrays, key, change))
    with pytest.raises(ValueError) as error:
        load_heterophilous("minesweeper", tmp_path / "data", tmp_path / "cache")
    message = str(error.value)
    assert expected in message and str(tmp_path / "data" / "minesweeper.npz") in message
    assert "fresh copy" in message and "\n" not in message


def local_planetoid(data_dir, tmp_path):
    """A writable copy of the shared Planetoid files, for a test to damage."""
    local = tmp_path / "data"
    shutil.copytree(data_dir / "planetoid", local)
    for path in local.iterdir():
        path.chmod(0o644)
    return local


def _edit_pickle(folder, suffix, edit):
    """Replace the object pickled in ``ind.cora.<suffix>`` by ``edit(object)``."""
    with open(folder / f"ind.cora.{suffix}", "rb") as handle:
        edited = edit(pickle.load(handle, encoding="latin1"))
    with open(folder / f"ind.cora.{suffix}", "wb") as handle:
        pickle.dump(edited, handle)


def _short_labels(folder):
    _edit_pickle(folder, "y", lambda labels: labels[:50])


def _short_test_labels(folder):
    _edit_pickle(folder, "ty", lambda labels: labels[:-1])


def _negative_test_index(folder):
    lines = (folder / "ind.cora.test.index").read_text().split()
    (folder / "ind.cora.test.index").write_text("\n".join(["-1", *lines[1:]]) + "\n")


def _test_index_past_the_last_node(folder):  # 2708 for the first index (2692): no such node
    lines = (folder / "ind.cora.test.index").read_text().split()
    (folder / "ind.cora.test.index").write_text("\n".join(["2708", *lines[1:]]) + "\n")


def _repeated_test_index(folder):  # the second index (2532) becomes the first (2692) again
    lines = (folder / "ind.cora.test.index").read_text().split()
    (folder / "ind.cora.test.index").write_text("\n".join([lines[0], lines[0], *lines[2:]]) + "\n")


def _test_index_one_short(folder):  # 999 indices for the 1000 rows of tx
    lines = (folder / "ind.cora.test.index").read_text().split()
    (folder / "ind.cora.test.index").write_text("\n".join(lines[:-1]) + "\n")


def _edge_to(node):
    def edit(graph):
        graph[0].append(node)
        return graph

    return edit


def _edge_past_the_last_node(folder):
    _edit_pickle(folder, "graph", _edge_to(2708))  # Cora's nodes are 0 … 2707


def _wider_test_labels(folder):  # an eighth class column in ty only
    _edit_pickle(folder, "ty", lambda labels: np.hstack([labels, np.zeros((len(labels), 1))]))


def _edge_to_node_minus_one(folder):  # DGL's loader would take -1 as one more node
    _edit_pickle(folder, "graph", _edge_to(-1))


def _wider_test_features(folder):  # a 1434th feature column in tx only
    import scipy.sparse

    def wider(features):
        extra = scipy.sparse.csr_matrix((features.shape[0], 1))
        return scipy.sparse.hstack([features, extra]).tocsr()

    _edit_pickle(folder, "tx", wider)


@pytest.mark.parametrize(
    ("damage", "fault"),
    [(_short_labels, "x has 140 rows but y 50"),
     (_short_test_labels, "tx has 1000 rows but ty 999"),
     (_negative_test_index, "test.index runs -1 … 2707, outside the test nodes 1708 … 2707"),
     (_test_index_past_the_last_node,
      "test.index runs 1708 … 2708, outside the test nodes 1708 … 2707"),
     (_repeated_test_index, "test.index lists 1000 indices (999 distinct) for 1000 test rows"),
     (_test_index_one_short, "test.index lists 999 indices (999 distinct) for 1000 test rows"),
     (_edge_past_the_last_node, "graph has node ids 0 … 2708, outside 0 … 2707"),
     (_wider_test_labels, "y, ty and ally differ in width"),
     (_edge_to_node_minus_one, "graph has node ids -1 … 2707, outside 0 … 2707"),
     (_wider_test_features, "x, tx and allx differ in width")],
)  # fmt: skip
def test_planetoid_files_that_disagree_are_refused(data_dir, tmp_path, damage, fault):
    """DGL's loader trained 50 of the 140 labelled nodes on a short y, and wrapped a negative
    test index round to the last node, without a word."""
    from dgl_ssm_bench.datasets.planetoid import load_planetoid

    local = local_planetoid(data_dir, tmp_path)
    damage(local)
    with pytest.raises(ValueError) as error:
        load_planetoid("cora", local, tmp_path / "cache")
    message = str(error.value)
    assert fault in message and "fresh copies" in message and "\n" not in message


def test_a_graph_file_without_a_key_for_the_last_node_still_has_it(data_dir, tmp_path):
    # Its edges are listed under its neighbours too: the node is there (DGL makes it from
    # them), with its test index, so the files agree and all 2708 nodes load.
    from dgl_ssm_bench.datasets.planetoid import load_planetoid

    local = local_planetoid(data_dir, tmp_path)

    def without_2707(graph):
        del graph[2707]  # its neighbours 598, 165, 1473 and 2706 still list it
        return graph

    _edit_pickle(local, "graph", without_2707)
    loaded = load_planetoid("cora", local, tmp_path / "cache")
    assert (loaded.num_nodes(), loaded.num_edges()) == (2708, 10556)


def test_questions_is_a_registered_binary_heterophilous_dataset(data_dir, tmp_path):
    # It had a loader but no name in the registry: `--dataset questions` was unknown.
    from dgl_ssm_bench.datasets import get_dataset, num_splits

    (tmp_path / "data").mkdir()  # minesweeper's arrays under Questions' name (same layout)
    shutil.copyfile(data_dir / "heterophilous" / "minesweeper.npz",
                    tmp_path / "data" / "questions.npz")  # fmt: skip
    data = get_dataset("questions", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert (data.name, data.metric, data.num_outputs, data.num_splits) == (
        "questions", "roc_auc", 2, 10)  # fmt: skip
    assert num_splits("questions") == 10
    assert dataset_metric("questions") == "roc_auc"  # known before loading, for a sweep's direction


def test_a_source_replaced_by_another_of_the_same_size_is_staged_afresh(tmp_path):
    # A fixed file of the same size (a re-download, a bit flip repaired) must replace the
    # staged copy: the manifest records each source's SHA-256, not only its size.
    source, target = tmp_path / "data.npz", tmp_path / "cache" / "raw"
    source.write_bytes(b"AAAA")
    stage_files({source: "data.npz"}, target)
    assert (target / "data.npz").read_bytes() == b"AAAA"
    source.write_bytes(b"BBBB")
    stage_files({source: "data.npz"}, target)
    assert (target / "data.npz").read_bytes() == b"BBBB"


def test_a_partial_copy_a_killed_run_left_is_replaced(tmp_path):
    # A run killed while staging leaves <target>.partial: the next one stages afresh.
    source, target = tmp_path / "data.npz", tmp_path / "cache" / "raw"
    source.write_bytes(b"AAAA")
    (tmp_path / "cache" / "raw.partial").mkdir(parents=True)
    (tmp_path / "cache" / "raw.partial" / "data.npz").write_bytes(b"AA")  # cut mid-copy
    stage_files({source: "data.npz"}, target)
    assert (target / "data.npz").read_bytes() == b"AAAA"
    assert not (tmp_path / "cache" / "raw.partial").exists()


def test_a_current_staged_copy_keeps_the_processed_files_sealed_beside_it(tmp_path):
    # Staging the same sources again copies nothing: what DGL processed there (sealed at its
    # size) is kept, and only a processed file cut short since is dropped for DGL to remake.
    from dgl_ssm_bench.datasets.staging import seal

    source, target = tmp_path / "data.npz", tmp_path / "cache" / "raw"
    source.write_bytes(b"AAAA")
    stage_files({source: "data.npz"}, target)
    (target / "graph.bin").write_bytes(b"0123")  # as DGL's processing saves it
    seal(target)
    stage_files({source: "data.npz"}, target)
    assert (target / "graph.bin").read_bytes() == b"0123"
    (target / "graph.bin").write_bytes(b"01")
    stage_files({source: "data.npz"}, target)
    assert not (target / "graph.bin").exists() and (target / "data.npz").read_bytes() == b"AAAA"


def test_a_corrupt_download_is_removed_so_the_next_run_downloads_again(
    tmp_path, monkeypatch, data_dir
):
    # DGL downloads only while the dataset's folder is missing: a cut download kept there
    # would fail every later run, however good the network.
    import dgl.data

    whole = (data_dir / "heterophilous" / "minesweeper.npz").read_bytes()

    def download(content):
        def fetch(self):  # as DGL's: the folder first, then the file
            Path(self.raw_path).mkdir(parents=True)
            (Path(self.raw_path) / f"{self.name}.npz").write_bytes(content)

        return fetch

    monkeypatch.delenv("DGL_SSM_DATA", raising=False)
    monkeypatch.setattr(dgl.data.MinesweeperDataset, "download", download(whole[:1000]))
    one_line_error(lambda: load_heterophilous("minesweeper", None, tmp_path / "cache"),
                   "minesweeper.npz")  # fmt: skip
    monkeypatch.setattr(dgl.data.MinesweeperDataset, "download", download(whole))
    assert load_heterophilous("minesweeper", None, tmp_path / "cache").graph.num_nodes() == 10000
