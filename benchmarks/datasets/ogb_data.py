"""ogbn-arxiv (through OGB's DGL loader) and the LRGB Peptides sets (from their raw CSV files).

Both need the optional ``ogb`` and ``rdkit`` packages (``pip install "dgl-ssm[ogb]"``), which
are imported only when a loader runs.

ogbn-arxiv: OGB keeps a dataset in ``root/ogbn_arxiv/`` (``raw/``, ``split/``, ``mapping/``,
``RELEASE_v1.txt``) and writes its processed graph to ``processed/`` there. The files OGB reads
from a local copy of that folder (``split/time/``, and ``raw/`` or else the processed graph)
are staged into the writable cache (``<cache>/ogb/ogbn_arxiv``), afresh whenever they change,
with the release file added, so OGB processes them without downloading. OGB asks a yes/no
question on stdin when a folder looks outdated or a download is over 1 GB; here any such
question fails at once with an explanation instead of waiting for an answer that never comes.

Peptides-func / Peptides-struct (Dwivedi et al. 2022, LRGB): the raw CSV of SMILES strings and
targets plus the stratified split pickle, as the LRGB/GraphGPS loaders read them; each SMILES
becomes a graph through OGB's ``smiles2graph``. The processed graphs are cached under
``<cache>/peptides_<task>/``, keyed by the content of the raw files.
"""

import ast
import builtins
import contextlib
import hashlib
import io
import pickle
import shutil
import urllib.request
from pathlib import Path

import dgl
import numpy as np
import torch

from ..files import atomic_write
from .base import BenchmarkData
from .paths import cache_dir, data_dir
from .staging import (
    DOWNLOAD_TIMEOUT_S,
    download_errors,
    drop_changed,
    exclusive,
    seal,
    stage_files,
)

INSTALL_HINT = 'pip install "dgl-ssm[ogb]"'

ARXIV = "ogbn-arxiv"
ARXIV_FOLDER = "ogbn_arxiv"  # OGB's folder name: the dataset name with "_" for "-"
ARXIV_URL = "http://snap.stanford.edu/ogb/data/nodeproppred/arxiv.zip"
ARXIV_RAW = (
    "edge.csv.gz",
    "num-node-list.csv.gz",
    "num-edge-list.csv.gz",
    "node-feat.csv.gz",
    "node-label.csv.gz",
    "node_year.csv.gz",
)
ARXIV_SPLIT = ("train.csv.gz", "valid.csv.gz", "test.csv.gz")

# Part of the cache key: caches of another format (v1 stored float32 codes) are not read.
PEPTIDES_FORMAT = "int64-codes-v2"

STRUCT_TARGETS = [
    "Inertia_mass_a",
    "Inertia_mass_b",
    "Inertia_mass_c",
    "Inertia_valence_a",
    "Inertia_valence_b",
    "Inertia_valence_c",
    "length_a",
    "length_b",
    "length_c",
    "Spherocity",
    "Plane_best_fit",
]
# File names, URLs and MD5 sums as in the LRGB / GraphGPS loaders.
PEPTIDES = {
    "func": {
        "folder": "peptides-functional",
        "csv": "peptide_multi_class_dataset.csv.gz",
        "csv_url": "https://www.dropbox.com/s/ol2v01usvaxbsr8/peptide_multi_class_dataset.csv.gz?dl=1",
        "csv_md5": "701eb743e899f4d793f0e13c8fa5a1b4",
        "split": "splits_random_stratified_peptide.pickle",
        "split_url": "https://www.dropbox.com/s/j4zcnx2eipuo0xz/splits_random_stratified_peptide.pickle?dl=1",
        "split_md5": "5a0114bdadc80b94fc7ae974f13ef061",
        "loss": "bce",
        "metric": "ap",
        "num_outputs": 10,
    },
    "struct": {
        "folder": "peptides-structural",
        "csv": "peptide_structure_normalized_dataset.csv.gz",
        # LRGB's first release: the same targets before standardisation (standardised here).
        "csv_unnormalized": "peptide_structure_dataset.csv.gz",
        "csv_url": "https://www.dropbox.com/s/0d4aalmq4b4e2nh/peptide_structure_normalized_dataset.csv.gz?dl=1",
        "csv_md5": "c240c1c15466b5c907c63e180fa8aa89",
        "split": "splits_random_stratified_peptide_structure.pickle",
        "split_url": "https://www.dropbox.com/s/9dfifzft1hqgow6/splits_random_stratified_peptide_structure.pickle?dl=1",
        "split_md5": "5a0114bdadc80b94fc7ae974f13ef061",
        "loss": "l1",
        "metric": "mae",
        "num_outputs": 11,
    },
}
LRGB_SOURCE = "https://github.com/vijaydwivedi75/lrgb"
SPLITS = ("train", "val", "test")


def _require_ogb():
    """Import the optional dependencies, or say how to install them."""
    try:
        import ogb  # noqa: F401
        import rdkit  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"this dataset needs the optional packages ogb and rdkit ({error}); "
            f"install them with: {INSTALL_HINT}"
        ) from error


@contextlib.contextmanager
def _no_stdin_prompt(folder):
    """Make any ``input()`` OGB calls fail at once with an explanation instead of hanging."""
    original = builtins.input

    def refuse(prompt=""):
        raise RuntimeError(
            f"OGB stopped to ask on stdin: {str(prompt).strip()!r}. It does so when {folder} "
            "exists without its RELEASE_v*.txt file (it thinks the copy is outdated) or when "
            "a download is over 1 GB. Delete that folder (it is a cache: it is staged again "
            "from --data-dir / DGL_SSM_DATA, or downloaded) and run again."
        )

    builtins.input = refuse
    try:
        yield
    finally:
        builtins.input = original


def _quiet(verbose):
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def _ogb_meta(name):
    """OGB's own metadata row for ``name`` (release version, download URL...)."""
    import ogb.nodeproppred
    import pandas as pd

    master = Path(ogb.nodeproppred.__file__).parent / "master.csv"
    return pd.read_csv(master, index_col=0, keep_default_na=False)[name]


def load_ogbn_arxiv(data_dir_path=None, cache_path=None, verbose=False):
    """Load ogbn-arxiv with OGB's DGL loader and its official (time-based) split.

    The citation graph is made bidirected (``dgl.to_bidirected``: each citation becomes an
    edge both ways, duplicates merged), as is usual practice for this dataset; OGB stores it
    directed. Features are float32 (128-d), labels a flat int64 vector (40 classes), and
    ``ndata["year"]`` is kept. Scored by accuracy.

    Parameters
    ----------
    data_dir_path : str or Path, optional
        Folder holding OGB's ``ogbn_arxiv/`` folder (or ``arxiv/``, as the zip unpacks, or
        either inside an ``ogb/`` subfolder), with ``raw/`` and ``split/time/``. Default
        ``$DGL_SSM_DATA``; with neither, OGB downloads the data.
    cache_path : str or Path, optional
        Writable folder for the staged copy and OGB's processed graph. Default
        ``$DGL_SSM_CACHE``.
    """
    _require_ogb()
    from ogb.nodeproppred import DglNodePropPredDataset

    meta = _ogb_meta(ARXIV)
    release = f"RELEASE_v{meta['version']}.txt"
    root = cache_dir(cache_path) / "ogb"
    root.mkdir(parents=True, exist_ok=True)
    local = data_dir(data_dir_path)
    folder = root / ARXIV_FOLDER
    with exclusive(folder):  # runs side by side stage and process it in turn
        if local is not None:
            _stage_arxiv(local, folder, release)
        if _has_raw_arxiv(folder):  # its processed graph can be remade
            drop_changed(folder / "processed")
        with (download_errors(ARXIV, f"OGB's {ARXIV_FOLDER}/ folder (or arxiv.zip unpacked)",
                              ARXIV_URL),
              _no_stdin_prompt(folder), _quiet(verbose)):  # fmt: skip
            dataset = DglNodePropPredDataset(name=ARXIV, root=str(root))
            split = dataset.get_idx_split()
        seal(folder / "processed")
    graph, labels = dataset[0]
    graph = dgl.to_bidirected(graph, copy_ndata=True)
    graph.ndata["feat"] = graph.ndata["feat"].float()
    graph.ndata["label"] = labels.reshape(-1).long()
    names = {"train": "train", "val": "valid", "test": "test"}
    splits = [{key: split[name].long() for key, name in names.items()}]
    return BenchmarkData(
        name="ogbn_arxiv",
        level="node",
        loss="cross_entropy",
        metric="accuracy",
        num_features=graph.ndata["feat"].shape[1],
        num_outputs=int(meta["num classes"]),
        graph=graph,
        splits=splits,
    )


def _stage_arxiv(local, target, release):
    names = (ARXIV_FOLDER, "arxiv", "ogbn-arxiv")
    candidates = [base / name for base in (local, local / "ogb") for name in names]
    needed = [f"raw/{f}" for f in ARXIV_RAW] + [f"split/time/{f}" for f in ARXIV_SPLIT]
    processed = Path("processed") / "dgl_data_processed"

    def complete(folder):
        split_ok = all((folder / "split" / "time" / f).is_file() for f in ARXIV_SPLIT)
        return split_ok and (_has_raw_arxiv(folder) or (folder / processed).is_file())

    source = next((folder for folder in candidates if complete(folder)), None)
    if source is None:
        raise FileNotFoundError(
            f"No complete ogbn-arxiv folder in {local} (looked for "
            f"{', '.join(str(c.relative_to(local)) for c in candidates)}). Needed inside it: "
            f"{', '.join(needed)}. Get it from {ARXIV_URL} (unzip it there), or unset "
            "DGL_SSM_DATA / drop --data-dir to let OGB download it."
        )
    # The files OGB reads, staged afresh whenever the source changes (as every local dataset
    # is): the raw files it processes, else the processed graph they were made into.
    files = [f"split/time/{f}" for f in ARXIV_SPLIT]
    files += [f"raw/{f}" for f in ARXIV_RAW] if _has_raw_arxiv(source) else [str(processed)]
    stage_files({source / name: name for name in files}, target)
    (target / release).touch()  # without it OGB thinks the copy is outdated and asks on stdin


def _has_raw_arxiv(folder):
    """Whether ``folder`` holds every raw file OGB processes ogbn-arxiv from."""
    return all((folder / "raw" / name).is_file() for name in ARXIV_RAW)


def load_peptides(task, data_dir_path=None, cache_path=None, verbose=False):
    """Load Peptides-func (``task="func"``) or Peptides-struct (``task="struct"``) from LRGB.

    Each peptide's SMILES string becomes a graph through OGB's ``smiles2graph``: one node per
    heavy atom with the 9 integer OGB atom features in ``ndata["feat"]``, each bond as two
    directed edges with the 3 OGB bond features in ``edata["feat"]`` (both int64 codes, for
    OGB's ``AtomEncoder`` / ``BondEncoder``, as LRGB embeds them).

    func: 10 binary labels per graph (``loss="bce"``, scored by average precision). struct: 11
    standardised regression targets (``loss="l1"``, scored by MAE). The splits are LRGB's
    stratified ones.

    Parameters
    ----------
    task : {"func", "struct"}
    data_dir_path : str or Path, optional
        Folder holding the raw CSV (func: ``peptide_multi_class_dataset.csv.gz``; struct:
        ``peptide_structure_normalized_dataset.csv.gz``, or the older unstandardised
        ``peptide_structure_dataset.csv.gz``) and the split pickle
        (``splits_random_stratified_peptide.pickle`` /
        ``splits_random_stratified_peptide_structure.pickle``), directly or in ``peptides/``,
        in LRGB's ``peptides-functional/`` / ``peptides-structural/`` or its ``raw/``.
        Default ``$DGL_SSM_DATA``; with neither, the files are downloaded from LRGB's URLs.
    cache_path : str or Path, optional
        Writable folder; processed graphs go to ``<cache>/peptides_<task>/``. Default
        ``$DGL_SSM_CACHE``.
    """
    if task not in PEPTIDES:
        raise ValueError(f"unknown Peptides task {task!r}; choose 'func' or 'struct'")
    _require_ogb()
    spec = PEPTIDES[task]
    cache = cache_dir(cache_path) / f"peptides_{task}"
    cache.mkdir(parents=True, exist_ok=True)
    local = data_dir(data_dir_path)
    if local is not None:
        csv_path, split_path = _find_peptides_files(task, local)
    else:
        csv_path, split_path = _download_peptides(task, cache / "raw", verbose)

    digest = hashlib.sha1(PEPTIDES_FORMAT.encode())
    for path in (csv_path, split_path):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    processed = cache / f"processed_{digest.hexdigest()[:16]}.bin"
    if processed.is_file():
        graphs, tensors = dgl.load_graphs(str(processed))
    else:
        graphs, tensors = _process_peptides(task, csv_path, split_path)
        with atomic_write(processed) as temporary:
            dgl.save_graphs(str(temporary), graphs, tensors)

    labels = tensors["labels"]
    graph_splits, label_splits = {}, {}
    for split in SPLITS:
        index = tensors[f"split_{split}"].long()
        graph_splits[split] = [graphs[i] for i in index.tolist()]
        label_splits[split] = labels[index]
    return BenchmarkData(
        name=f"peptides_{task}",
        level="graph",
        loss=spec["loss"],
        metric=spec["metric"],
        num_features=graphs[0].ndata["feat"].shape[1] if graphs else 9,
        num_outputs=spec["num_outputs"],
        graphs=graph_splits,
        graph_labels=label_splits,
        num_edge_features=3,
        node_encoder="ogb_atom",
        edge_encoder="ogb_bond",
    )


def _peptides_folders(task, local):
    folder = PEPTIDES[task]["folder"]
    return [
        local,
        local / "peptides",
        local / f"peptides_{task}",
        local / folder,
        local / folder / "raw",
        local / "lrgb" / folder,
        local / "lrgb" / folder / "raw",
    ]


def _find_peptides_files(task, local):
    spec = PEPTIDES[task]
    folders = _peptides_folders(task, local)
    csv_names = [spec["csv"]] + ([spec["csv_unnormalized"]] if "csv_unnormalized" in spec else [])

    def find(names):
        return next((f / n for n in names for f in folders if (f / n).is_file()), None)

    csv_path, split_path = find(csv_names), find([spec["split"]])
    if csv_path is None or split_path is None:
        missing = [spec["csv"]] if csv_path is None else []
        missing += [spec["split"]] if split_path is None else []
        raise FileNotFoundError(
            f"Peptides-{task}: missing {', '.join(missing)} in {local} (also looked in "
            f"peptides/, peptides_{task}/, {spec['folder']}/ and {spec['folder']}/raw/). Get "
            f"them from LRGB ({LRGB_SOURCE}): {spec['csv_url']} and {spec['split_url']}; then "
            "point --data-dir / DGL_SSM_DATA at the folder, or unset both to download them."
        )
    return csv_path, split_path


def _download_peptides(task, folder, verbose):
    spec = PEPTIDES[task]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, url, md5 in (
        (spec["csv"], spec["csv_url"], spec["csv_md5"]),
        (spec["split"], spec["split_url"], spec["split_md5"]),
    ):
        path = folder / name
        if not path.is_file():
            _download(url, path, md5, verbose)
        paths.append(path)
    return tuple(paths)


def _download(url, path, md5, verbose):
    if verbose:
        print(f"Downloading {url}")
    with atomic_write(path) as temporary:  # a failed check or download leaves no file behind
        try:
            with (
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
                open(temporary, "wb") as out,
            ):
                shutil.copyfileobj(response, out)
        except OSError as error:
            raise RuntimeError(
                f"could not download {path.name} from {url} ({error}). Download it by hand "
                f"(see {LRGB_SOURCE}) and point --data-dir / DGL_SSM_DATA at its folder."
            ) from error
        found = hashlib.md5(temporary.read_bytes()).hexdigest()
        if found != md5:
            raise RuntimeError(f"{url} gave a file with MD5 {found}, expected {md5}")


def _process_peptides(task, csv_path, split_path):
    import pandas as pd
    from ogb.utils import smiles2graph

    frame = pd.read_csv(csv_path)
    if task == "func":
        labels = np.array([ast.literal_eval(row) for row in frame["labels"]], dtype=np.float32)
    else:
        targets = frame[STRUCT_TARGETS].astype(np.float64)
        if csv_path.name == PEPTIDES["struct"].get("csv_unnormalized"):
            targets = (targets - targets.mean()) / targets.std()  # as LRGB's first loader did
        labels = targets.to_numpy(dtype=np.float32)
    labels = torch.from_numpy(labels).reshape(len(frame), PEPTIDES[task]["num_outputs"])

    graphs = []
    for smiles in frame["smiles"]:
        mol = smiles2graph(smiles)
        src, dst = torch.from_numpy(mol["edge_index"])
        graph = dgl.graph((src, dst), num_nodes=int(mol["num_nodes"]))
        graph.ndata["feat"] = torch.from_numpy(mol["node_feat"]).long()
        graph.edata["feat"] = torch.from_numpy(mol["edge_feat"]).long()
        graphs.append(graph)

    with open(split_path, "rb") as handle:
        raw_split = pickle.load(handle)
    tensors = {"labels": labels}
    for split in SPLITS:
        index = (
            raw_split["valid"] if split == "val" and "val" not in raw_split else raw_split[split]
        )
        tensors[f"split_{split}"] = torch.as_tensor(np.asarray(index), dtype=torch.int64)
    return graphs, tensors
