"""Graph property prediction (GPP): the PNA multitask generator, written here from its recipe.

The synthetic benchmark of Corso et al. (PNA, NeurIPS 2020), with the single-source shortest
path (SSSP), eccentricity and diameter tasks and the protocol of A-DGN (Gravina et al., ICLR
2023), SWAN and PH-DGN: 5120 train / 640 val / 1280 test graphs, unnormalised labels, scored
by log10 of the test MSE. One graph is drawn as follows.

1. Family from a fixed mixture (``FAMILIES``): Erdős–Rényi 0.20, Barabási–Albert 0.20, random
   power-law tree 0.15, caterpillar 0.10, lobster 0.10, grid / caveman / ladder / path /
   star 0.05 each; a size n uniform in [25, 35].
2. A base graph of that family with networkx's generators. Shape parameters: Erdős–Rényi
   with mean degree U(3, 8), i.e. p = d / (n - 1); Barabási–Albert with m uniform in 1..4;
   power-law tree with exponent 3 (redrawn when networkx fails to find a degree sequence);
   caterpillar with a backbone of U{2..n-1} nodes and the other nodes attached to uniformly
   chosen backbone nodes; lobster from ``random_lobster_graph`` (backbone ~n/3 expected,
   p1 = p2 = 0.5), redrawn until it has at least n nodes, then trimmed to n by removing
   random leaves (a subtree of a lobster is a lobster); ladder on n // 2 rungs plus, for odd
   n, one node hung off node 0 (as PNA does). These all have exactly n nodes. Grid (3..5
   rows) and connected caveman (cliques of 3..7) use the factorisation closest to n whose
   node count stays in [25, 35], so their n is not exactly the one drawn.
3. Node order shuffled; each edge kept with probability 0.9 and each non-edge added with
   probability 0.1 e / r (e edges, r non-edges), so the expected edge count is unchanged; no
   self loops. A result with an isolated node is thrown away and the graph drawn again
   (same family and n).
4. Features (float32, 2 columns): a one-hot flag of one uniformly drawn source node, and a
   U(0, 1) scalar per node. Targets from unweighted hop distances (scipy BFS; a graph may be
   disconnected after step 3): SSSP = distance from the source, 0 when unreachable;
   eccentricity = per node, the largest finite distance; diameter = the largest finite
   distance in the graph.

Everything is drawn from ``numpy.random.default_rng``: each split has its own stream
(``SeedSequence(seed).spawn(3)``), so smaller ``sizes`` give a prefix of the full splits.
networkx generators are given integer seeds from that stream, so a seed fixes the data for a
given networkx version. Each (seed, sizes) dataset is generated once and cached as an ``.npz``
under ``cache_dir()/gpp/``, written to a temporary file and moved into place atomically.
"""

import os
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import dgl
import networkx as nx
import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from .base import BenchmarkData
from .paths import cache_dir

FAMILIES = {
    "erdos_renyi": 0.20,
    "barabasi_albert": 0.20,
    "powerlaw_tree": 0.15,
    "caterpillar": 0.10,
    "lobster": 0.10,
    "grid": 0.05,
    "caveman": 0.05,
    "ladder": 0.05,
    "path": 0.05,
    "star": 0.05,
}
FAMILY_NAMES = tuple(FAMILIES)
FAMILY_PROBS = np.array(list(FAMILIES.values()))
MIN_NODES, MAX_NODES = 25, 35
KEEP_PROB = 0.9
SPLITS = ("train", "val", "test")
SIZES = (5120, 640, 1280)
TASKS = ("diameter", "sssp", "eccentricity")
CACHE_VERSION = 1  # bump whenever the recipe changes, so stale caches are not reused
MAX_TRIES = 10_000

# networkx 3.5 renamed random_lobster (the old name now warns)
_random_lobster = getattr(nx, "random_lobster_graph", None) or nx.random_lobster


def _nx_seed(rng):
    return int(rng.integers(2**32))


def _closest_factor(n, size):
    """How many blocks of ``size`` nodes come closest to n with a total in [25, 35]."""
    count = max(2, round(n / size))
    while count * size < MIN_NODES:
        count += 1
    while count * size > MAX_NODES:
        count -= 1
    return count


def _erdos_renyi(n, rng):
    # mean degree 3..8: sparse enough for long shortest paths, dense enough that few nodes
    # end up isolated (which would force a redraw)
    p = rng.uniform(3.0, 8.0) / (n - 1)
    return nx.fast_gnp_random_graph(n, p, seed=_nx_seed(rng))


def _barabasi_albert(n, rng):
    return nx.barabasi_albert_graph(n, int(rng.integers(1, 5)), seed=_nx_seed(rng))


def _powerlaw_tree(n, rng):
    for _ in range(MAX_TRIES):  # about half the draws find no tree degree sequence
        try:
            return nx.random_powerlaw_tree(n, gamma=3, seed=_nx_seed(rng))
        except nx.NetworkXError:
            continue
    raise RuntimeError(f"no power-law tree with {n} nodes after {MAX_TRIES} tries")


def _caterpillar(n, rng):
    backbone = int(rng.integers(2, n))
    graph = nx.path_graph(backbone)
    legs = rng.integers(0, backbone, size=n - backbone)
    graph.add_edges_from(zip(range(backbone, n), legs.tolist()))
    return graph


def _lobster(n, rng):
    for _ in range(MAX_TRIES):
        graph = _random_lobster(n / 3, 0.5, 0.5, seed=_nx_seed(rng))
        if graph.number_of_nodes() >= n:
            break
    else:
        raise RuntimeError(f"no lobster with {n} nodes after {MAX_TRIES} tries")
    while graph.number_of_nodes() > n:
        leaves = [v for v, degree in graph.degree() if degree == 1]
        graph.remove_node(leaves[rng.integers(len(leaves))])
    return graph


def _grid(n, rng):
    rows = int(rng.integers(3, 6))
    return nx.grid_2d_graph(rows, _closest_factor(n, rows))


def _caveman(n, rng):
    # cliques of at least 3: networkx rewires one clique edge, which would isolate a node of 2
    size = int(rng.integers(3, 8))
    return nx.connected_caveman_graph(_closest_factor(n, size), size)


def _ladder(n, rng):
    graph = nx.ladder_graph(n // 2)
    if n % 2:
        graph.add_edge(0, n - 1)
    return graph


def _path(n, rng):
    return nx.path_graph(n)


def _star(n, rng):
    return nx.star_graph(n - 1)


BUILDERS = {
    "erdos_renyi": _erdos_renyi,
    "barabasi_albert": _barabasi_albert,
    "powerlaw_tree": _powerlaw_tree,
    "caterpillar": _caterpillar,
    "lobster": _lobster,
    "grid": _grid,
    "caveman": _caveman,
    "ladder": _ladder,
    "path": _path,
    "star": _star,
}


def base_graph(family, n, rng):
    """The family's graph before shuffling and randomisation, as ``(num_nodes, edges)``.

    ``edges`` is an ``(E, 2)`` int64 array over nodes ``0..num_nodes-1``, one row per edge.
    """
    graph = BUILDERS[family](n, rng)
    index = {node: i for i, node in enumerate(graph)}
    edges = np.array([(index[u], index[v]) for u, v in graph.edges()], dtype=np.int64)
    return len(index), edges.reshape(-1, 2)


def randomise_edges(num_nodes, edges, rng, keep=KEEP_PROB):
    """Keep each edge with ``keep``; add each non-edge at the rate that keeps E[#edges].

    Returns the new ``(E', 2)`` edge array with ``u < v`` in each row (no self loops).
    """
    adjacency = np.zeros((num_nodes, num_nodes), dtype=bool)
    adjacency[edges[:, 0], edges[:, 1]] = True
    adjacency |= adjacency.T
    np.fill_diagonal(adjacency, False)
    rows, cols = np.triu_indices(num_nodes, 1)
    present = adjacency[rows, cols]
    num_edges = int(present.sum())
    add = min(1.0, (1.0 - keep) * num_edges / max(1, present.size - num_edges))
    draws = rng.random(present.size)
    chosen = np.where(present, draws < keep, draws < add)
    return np.stack([rows[chosen], cols[chosen]], axis=1).astype(np.int64)


def generate_graph(rng, family=None):
    """One randomised graph: ``(num_nodes, edges, family)``, with no isolated node.

    The family is drawn from ``FAMILIES`` unless given. ``edges`` is ``(E, 2)`` with ``u < v``.
    """
    if family is None:
        family = FAMILY_NAMES[rng.choice(len(FAMILY_NAMES), p=FAMILY_PROBS)]
    n = int(rng.integers(MIN_NODES, MAX_NODES + 1))
    for _ in range(MAX_TRIES):
        num_nodes, edges = base_graph(family, n, rng)
        edges = rng.permutation(num_nodes)[edges]
        edges = randomise_edges(num_nodes, edges, rng)
        if np.bincount(edges.ravel(), minlength=num_nodes).min() > 0:
            return num_nodes, edges, family
    raise RuntimeError(f"no {family} graph without isolated nodes after {MAX_TRIES} tries")


def graph_targets(num_nodes, edges, source):
    """``(sssp, eccentricity, diameter)`` from unweighted hop distances (unreachable → 0)."""
    adjacency = csr_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_nodes, num_nodes)
    )
    distances = shortest_path(adjacency, directed=False, unweighted=True)
    distances[~np.isfinite(distances)] = 0
    eccentricity = distances.max(axis=1)
    return distances[source], eccentricity, eccentricity.max()


def _generate_split(rng, count):
    # empty seeds, so that a split of size 0 still concatenates to arrays of the right shape
    columns = {
        "num_nodes": [],
        "edges": [np.zeros((0, 2), dtype=np.int64)],
        "feat": [np.zeros((0, 2), dtype=np.float32)],
        "sssp": [np.zeros(0)],
        "eccentricity": [np.zeros(0)],
    }
    diameters, families = [], []
    for _ in range(count):
        num_nodes, edges, family = generate_graph(rng)
        source = int(rng.integers(num_nodes))
        feat = np.zeros((num_nodes, 2), dtype=np.float32)
        feat[source, 0] = 1.0
        feat[:, 1] = rng.random(num_nodes)
        sssp, eccentricity, diameter = graph_targets(num_nodes, edges, source)
        for key, value in zip(columns, (num_nodes, edges, feat, sssp, eccentricity)):
            columns[key].append(value)
        diameters.append(diameter)
        families.append(FAMILY_NAMES.index(family))
    return {
        "num_nodes": np.array(columns["num_nodes"], dtype=np.int64),
        "num_edges": np.array([len(e) for e in columns["edges"][1:]], dtype=np.int64),
        "edges": np.concatenate(columns["edges"]).astype(np.int32).reshape(-1, 2),
        "feat": np.concatenate(columns["feat"]),
        "sssp": np.concatenate(columns["sssp"]).astype(np.float32),
        "eccentricity": np.concatenate(columns["eccentricity"]).astype(np.float32),
        "diameter": np.array(diameters, dtype=np.float32),
        "family": np.array(families, dtype=np.int8),
    }


def generate_gpp(seed=0, sizes=SIZES):
    """Generate the dataset without touching the cache.

    Returns ``{split: {array name: numpy array}}`` with the per-graph arrays ``num_nodes``,
    ``num_edges``, ``diameter`` and ``family`` (index into ``FAMILY_NAMES``), and, concatenated
    over the split's graphs in order, ``edges`` (local node ids, ``u < v``), ``feat``, ``sssp``
    and ``eccentricity``.
    """
    sizes = _check_sizes(sizes)
    streams = np.random.SeedSequence(seed).spawn(len(SPLITS))
    return {
        split: _generate_split(np.random.default_rng(stream), count)
        for split, stream, count in zip(SPLITS, streams, sizes)
    }


def _check_sizes(sizes):
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) != len(SPLITS) or min(sizes) < 0:
        raise ValueError(f"sizes must be three non-negative counts (train, val, test): {sizes}")
    return sizes


def cache_file(seed=0, sizes=SIZES, cache_path=None):
    """Where the (seed, sizes) dataset is cached: ``cache_dir(cache_path)/gpp/…npz``."""
    sizes = _check_sizes(sizes)
    folder = cache_dir(cache_path) / "gpp"
    return folder / f"gpp_v{CACHE_VERSION}_seed{seed}_{'-'.join(map(str, sizes))}.npz"


def _save(arrays, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {f"{split}/{key}": value for split, d in arrays.items() for key, value in d.items()}
    # a killed run leaves at most a stray *.tmp file, never a half-written cache
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **flat)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load(path):
    with np.load(path, allow_pickle=False) as stored:
        flat = {key: stored[key] for key in stored.files}
    arrays = {split: {} for split in SPLITS}
    for key, value in flat.items():
        split, name = key.split("/", 1)
        arrays[split][name] = value
    return arrays


def gpp_arrays(seed=0, sizes=SIZES, cache_path=None):
    """The dataset as numpy arrays (see ``generate_gpp``), from the cache or generated into it."""
    path = cache_file(seed, sizes, cache_path)
    if path.exists():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            warnings.warn(f"unreadable GPP cache {path} ({error}); regenerating", stacklevel=2)
    arrays = generate_gpp(seed, sizes)
    _save(arrays, path)
    return arrays


def gpp_families(seed=0, sizes=SIZES, cache_path=None):
    """``{split: [family name of each graph]}``, in the order of ``load_gpp``'s graphs."""
    arrays = gpp_arrays(seed, sizes, cache_path)
    return {split: [FAMILY_NAMES[i] for i in arrays[split]["family"]] for split in SPLITS}


def _build_graphs(split_arrays, task):
    num_nodes, num_edges = split_arrays["num_nodes"], split_arrays["num_edges"]
    if len(num_nodes) == 0:
        return []
    # one bidirected batched graph, cut into per-graph DGL graphs by dgl.unbatch
    node_offsets = np.repeat(np.cumsum(num_nodes) - num_nodes, num_edges)
    edges = split_arrays["edges"].astype(np.int64) + node_offsets[:, None]
    graph_of_edge = np.repeat(np.arange(len(num_nodes)), num_edges)
    order = np.argsort(np.concatenate([graph_of_edge, graph_of_edge]), kind="stable")
    src = np.concatenate([edges[:, 0], edges[:, 1]])[order]
    dst = np.concatenate([edges[:, 1], edges[:, 0]])[order]
    batched = dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)), num_nodes=num_nodes.sum())
    batched.set_batch_num_nodes(torch.from_numpy(num_nodes))
    batched.set_batch_num_edges(torch.from_numpy(2 * num_edges))
    graphs = dgl.unbatch(batched)
    node_data = {"feat": torch.from_numpy(split_arrays["feat"])}
    if task != "diameter":
        node_data["label"] = torch.from_numpy(split_arrays[task]).unsqueeze(1)
    for key, values in node_data.items():
        # cloned so that each graph owns its tensors rather than a view of the whole split
        for graph, part in zip(graphs, values.split(num_nodes.tolist())):
            graph.ndata[key] = part.clone()
    return graphs


def load_gpp(task, seed=0, sizes=SIZES, cache_path=None):
    """One GPP task (``"diameter"``, ``"sssp"`` or ``"eccentricity"``) as ``BenchmarkData``.

    SSSP and eccentricity are node-level (``ndata["label"]``, float32 ``(n, 1)``); diameter is
    graph-level (``graph_labels[split]``, float32 ``(num_graphs, 1)``). Features are
    ``ndata["feat"]`` (float32 ``(n, 2)``). Labels are not normalised. ``gpp_families`` gives
    each graph's family.
    """
    if task not in TASKS:
        raise ValueError(f"unknown GPP task {task!r}; choose from {TASKS}")
    arrays = gpp_arrays(seed, sizes, cache_path)
    graphs = {split: _build_graphs(arrays[split], task) for split in SPLITS}
    graph_labels = None
    if task == "diameter":
        graph_labels = {
            split: torch.from_numpy(arrays[split]["diameter"]).unsqueeze(1) for split in SPLITS
        }
    return BenchmarkData(
        name=f"gpp_{task}",
        level="graph" if task == "diameter" else "node",
        loss="mse",
        metric="log10_mse",
        num_features=2,
        num_outputs=1,
        graphs=graphs,
        graph_labels=graph_labels,
    )


if __name__ == "__main__":  # python -m benchmarks.datasets.gpp: time a full generation
    start = time.perf_counter()
    full = generate_gpp(0)
    print(
        f"{sum(len(a['num_nodes']) for a in full.values())} graphs in "
        f"{time.perf_counter() - start:.1f} s"
    )
