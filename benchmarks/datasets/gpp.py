"""Graph property prediction (GPP): the PNA multitask generator, rule for rule.

The synthetic benchmark of Corso et al. (PNA, NeurIPS 2020), with the single-source shortest
path (SSSP), eccentricity and diameter tasks, in the 25–35-node variant of A-DGN (Gravina et
al., ICLR 2023) that SWAN, PH-DGN and GNN-SSM report on: 5120 train / 640 val / 1280 test
graphs, unnormalised labels, scored by log10 of the test MSE. Every published GPP number comes
from this generator, so it is followed exactly (``GENERATOR = "pna"``; PNA's
``multitask_benchmark/datasets_generation``):

1. **Sizes and seeds.** A split is a list of batches; batch ``b`` holds graphs of
   ``N = min_nodes + b`` nodes (A-DGN: ``min_nodes = 25``; train 10 batches × 512, val 5 × 128,
   test 5 × 256, so N = 25…34 for train and 25…29 for val and test; PNA's own runs used
   ``min_nodes = 15``). One integer seed counter runs over train, val and test in that order
   and is advanced before every draw, redraws included; dataset seed ``k`` starts it at
   ``k · SEED_STRIDE``, so datasets of different seeds share no draw. A draw with seed ``s``
   uses exactly the generators PNA seeds with ``s``: Python's ``random.Random(s)`` and numpy's
   legacy ``RandomState(s)`` (PNA seeds the global ones; here each draw owns its instances).
2. **Family** from the mixture (``FAMILIES``): ``RandomState.choice`` with ER 0.20, BA 0.20,
   grid 0.05, caveman 0.05, power-law tree 0.15, ladder 0.05, line 0.05, star 0.05,
   caterpillar 0.10, lobster 0.10.
3. **Base graph** on exactly N nodes. ER: ``fast_gnp_random_graph(N, d / N, s)`` with
   ``d = random() · N``, so p ~ U(0, 1). BA: ``barabasi_albert_graph(N, m, s)`` with
   ``m = ⌊random() · (N − 1)⌋ + 1``. Grid ``grid_2d_graph(m, N // m)`` and caveman
   ``caveman_graph(m, N // m)`` (disjoint cliques), m the largest divisor of N that is ≤ √N.
   Tree: ``random_powerlaw_tree(N, seed=s, tries=10000)``. Ladder ``ladder_graph(N // 2)``,
   odd N adding node N − 1 joined to node 0. Line: path; star: ``star_graph(N − 1)``.
   Caterpillar (numpy re-seeded with s, as PNA does): backbone ``b ~ U{1..N−1}`` as a path,
   nodes b…N−1 each joined to a uniform backbone node. Lobster (re-seeded likewise): b as
   before, ``f ~ U{b+1..N}``; nodes b…f−1 join a uniform backbone node, nodes f…N−1 a uniform
   node in b…f−1.
4. **Node order** shuffled (``random.shuffle``), node values ``U(0, 1)`` drawn, then
   ``randomize``: with e edges and r non-edges, keep probability ep = 0.9 and appear
   probability rp = 0.1·e/r when e ≤ r (else ep = 0.9 + 0.1(e − r)/e, rp = 0.1); one symmetric
   matrix ``U = V + Vᵀ``, ``V ~ U(0, 0.5)``; an edge stays where U < ep, a non-edge (not a self
   loop) appears where U < rp. As U is a sum of two uniforms an edge is kept with
   probability 0.98 and almost no edge appears.
5. **Redraws.** A graph with an isolated node is drawn again with the same family and size
   and the next seed. (PNA's script would stop with an error when networkx finds no power-law
   tree in 10000 tries; here that draw is redrawn the same way.)
6. **Source, features, targets.** The SSSP source is ``randint(0, N)`` from the last draw's
   numpy generator. Features (float32, 2 columns): the source's one-hot flag and the node
   values. Targets from unweighted hop distances (a graph may be disconnected): SSSP =
   distance from the source, 0 when unreachable; eccentricity = per node, the largest finite
   distance; diameter = the largest finite distance in the graph (PNA's definitions).

A seed fixes the data for a given networkx version (its ER, BA and tree generators draw from
the seed). Each (seed, sizes, min_nodes) dataset is generated once and cached as an ``.npz``
under ``cache_dir()/gpp/``, written to a temporary file and moved into place atomically. The
file records ``CACHE_VERSION``; a cache written by another version of the generator is never
read, only rebuilt.
"""

import math
import random
import time
import warnings
import zipfile

import dgl
import networkx as nx
import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from ..files import atomic_write
from .base import BenchmarkData
from .paths import cache_dir

GENERATOR = "pna"
CACHE_VERSION = 2  # 1: the loose recipe of before (not PNA's distribution); 2: PNA's rules
FAMILIES = {  # PNA's MIXTURE, in its order (the order matters: it is how choice() is read)
    "erdos_renyi": 0.20,
    "barabasi_albert": 0.20,
    "grid": 0.05,
    "caveman": 0.05,
    "powerlaw_tree": 0.15,
    "ladder": 0.05,
    "path": 0.05,
    "star": 0.05,
    "caterpillar": 0.10,
    "lobster": 0.10,
}
FAMILY_NAMES = tuple(FAMILIES)
FAMILY_PROBS = np.array(list(FAMILIES.values()))
SPLITS = ("train", "val", "test")
SIZES = (5120, 640, 1280)
BATCHES = (10, 5, 5)  # PNA's batch scheme: graphs of batch b have min_nodes + b nodes
MIN_NODES = 25  # A-DGN's variant (PNA's own: 15)
TASKS = ("diameter", "sssp", "eccentricity")
BASE_KEEP = 0.9  # PNA's BASE_P
MAX_TRIES = 10_000
SEED_STRIDE = 1_000_000  # more draws than a dataset of the default sizes makes (≈ 10⁴)
# The largest data seed: its counter, up to a stride past seed · SEED_STRIDE, must stay a
# seed numpy's RandomState takes (below 2³²).
MAX_SEED = 2**32 // SEED_STRIDE - 1


def _largest_divisor_up_to_root(n):
    return max(i for i in range(1, math.isqrt(n) + 1) if n % i == 0)


def _erdos_renyi(n, seed, py, rs):
    degree = py.random() * n
    return nx.fast_gnp_random_graph(n, degree / n, seed)


def _barabasi_albert(n, seed, py, rs):
    return nx.barabasi_albert_graph(n, int(py.random() * (n - 1)) + 1, seed)


def _grid(n, seed, py, rs):
    rows = _largest_divisor_up_to_root(n)
    return nx.grid_2d_graph(rows, n // rows)


def _caveman(n, seed, py, rs):
    cliques = _largest_divisor_up_to_root(n)
    return nx.caveman_graph(cliques, n // cliques)


def _powerlaw_tree(n, seed, py, rs):
    return nx.random_powerlaw_tree(n, seed=seed, tries=10000)


def _ladder(n, seed, py, rs):
    graph = nx.ladder_graph(n // 2)
    if n % 2:
        graph.add_edge(0, n - 1)
    return graph


def _path(n, seed, py, rs):
    return nx.path_graph(n)


def _star(n, seed, py, rs):
    return nx.star_graph(n - 1)


def _caterpillar(n, seed, py, rs):
    rs.seed(seed)  # PNA re-seeds numpy here, so later draws restart from the seed
    backbone = rs.randint(low=1, high=n)
    graph = nx.empty_graph(n)
    graph.add_edges_from((i - 1, i) for i in range(1, backbone))
    for i in range(backbone, n):
        graph.add_edge(i, rs.randint(backbone))
    return graph


def _lobster(n, seed, py, rs):
    rs.seed(seed)
    backbone = rs.randint(low=1, high=n)
    legs_end = rs.randint(low=backbone + 1, high=n + 1)
    graph = nx.empty_graph(n)
    graph.add_edges_from((i - 1, i) for i in range(1, backbone))
    for i in range(backbone, legs_end):
        graph.add_edge(i, rs.randint(backbone))
    for i in range(legs_end, n):
        graph.add_edge(i, rs.randint(low=backbone, high=legs_end))
    return graph


BUILDERS = {
    "erdos_renyi": _erdos_renyi,
    "barabasi_albert": _barabasi_albert,
    "grid": _grid,
    "caveman": _caveman,
    "powerlaw_tree": _powerlaw_tree,
    "ladder": _ladder,
    "path": _path,
    "star": _star,
    "caterpillar": _caterpillar,
    "lobster": _lobster,
}


def randomize(adjacency, rs):
    """PNA's ``randomize``: toggle edges without changing the expected edge count (see 4.)."""
    n = len(adjacency)
    edges = adjacency.sum() / 2
    non_edges = n * (n - 1) / 2 - edges
    if edges <= non_edges:
        keep, appear = BASE_KEEP, (1 - BASE_KEEP) * edges / non_edges
    else:
        keep, appear = BASE_KEEP + (1 - BASE_KEEP) * (edges - non_edges) / edges, 1 - BASE_KEEP
    draws = rs.uniform(size=(n, n), low=0.0, high=0.5)
    draws = draws + draws.T
    remaining = (draws < keep) * adjacency
    appearing = (draws < appear) * (1 - adjacency) * (1 - np.eye(n))
    return remaining + appearing


def draw_graph(num_nodes, seed, family=None):
    """One draw of PNA's ``generate_graph`` with seed ``seed``.

    Returns ``(adjacency, values, family, rs)``: the randomised ``(N, N)`` 0/1 float matrix,
    the ``U(0, 1)`` node values, the family (drawn from the mixture unless given) and the
    draw's numpy generator, whose state the source node is drawn from. The graph may have
    isolated nodes (``generate_graph`` redraws those) or ``family`` may fail to build
    (``networkx.NetworkXError``, power-law trees only).
    """
    py, rs = random.Random(seed), np.random.RandomState(seed)
    if family is None:
        family = FAMILY_NAMES[rs.choice(len(FAMILY_NAMES), 1, p=FAMILY_PROBS)[0]]
    graph = BUILDERS[family](num_nodes, seed, py, rs)
    nodes = list(graph)
    py.shuffle(nodes)
    adjacency = nx.to_numpy_array(graph, nodelist=nodes)
    values = rs.uniform(low=0, high=1, size=num_nodes)
    return randomize(adjacency, rs), values, family, rs


def generate_graph(num_nodes, seed, family=None):
    """The first graph from ``seed`` on without isolated nodes, as PNA's dataset script draws it.

    Returns ``(edges, values, source, family, next_seed)``: ``edges`` is ``(E, 2)`` int64 with
    ``u < v``; ``next_seed`` is the last seed used (the counter's new value).
    """
    for _ in range(MAX_TRIES):
        try:
            adjacency, values, family_drawn, rs = draw_graph(num_nodes, seed, family)
        except nx.NetworkXError:  # no power-law tree found: redraw like an isolated node
            family_drawn, adjacency = family or "powerlaw_tree", None
        family = family_drawn
        if adjacency is not None and adjacency.max(axis=0).min() > 0:
            source = int(rs.randint(0, num_nodes))
            edges = np.argwhere(np.triu(adjacency, 1) > 0).astype(np.int64)
            return edges, values, source, family, seed
        seed += 1
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


def split_node_counts(count, batches, min_nodes=MIN_NODES):
    """N of each of ``count`` graphs: ``batches`` equal batches (the first ones one larger when
    ``count`` does not divide), batch ``b`` with ``min_nodes + b`` nodes."""
    per_batch = [count // batches + (b < count % batches) for b in range(batches)]
    return np.repeat(min_nodes + np.arange(batches), per_batch)


def _generate_split(counts, seed):
    # empty seeds, so that a split of size 0 still concatenates to arrays of the right shape
    columns = {
        "edges": [np.zeros((0, 2), dtype=np.int64)],
        "feat": [np.zeros((0, 2), dtype=np.float32)],
        "sssp": [np.zeros(0)],
        "eccentricity": [np.zeros(0)],
    }
    num_edges, diameters, families = [], [], []
    for num_nodes in counts.tolist():
        edges, values, source, family, seed = generate_graph(num_nodes, seed + 1)
        feat = np.zeros((num_nodes, 2), dtype=np.float32)
        feat[source, 0] = 1.0
        feat[:, 1] = values
        sssp, eccentricity, diameter = graph_targets(num_nodes, edges, source)
        for key, value in zip(columns, (edges, feat, sssp, eccentricity)):
            columns[key].append(value)
        num_edges.append(len(edges))
        diameters.append(diameter)
        families.append(FAMILY_NAMES.index(family))
    arrays = {
        "num_nodes": counts.astype(np.int64),
        "num_edges": np.array(num_edges, dtype=np.int64),
        "edges": np.concatenate(columns["edges"]).astype(np.int32).reshape(-1, 2),
        "feat": np.concatenate(columns["feat"]),
        "sssp": np.concatenate(columns["sssp"]).astype(np.float32),
        "eccentricity": np.concatenate(columns["eccentricity"]).astype(np.float32),
        "diameter": np.array(diameters, dtype=np.float32),
        "family": np.array(families, dtype=np.int8),
    }
    return arrays, seed


def generate_gpp(seed=0, sizes=SIZES, min_nodes=MIN_NODES, batches=BATCHES):
    """Generate the dataset without touching the cache.

    ``seed · SEED_STRIDE`` starts PNA's seed counter; ``sizes`` are the graph counts of train,
    val and test, each spread over its number of ``batches`` (default ``BATCHES``: PNA's 10, 5
    and 5), batch ``b`` of graphs with ``min_nodes + b`` nodes. Which node counts the
    published val and test sets used is not certain, so the scheme is an option
    (``batches=(10, 10, 10)``: every split over 25–34 nodes). Returns
    ``{split: {array name: numpy array}}`` with the per-graph arrays ``num_nodes``,
    ``num_edges``, ``diameter`` and ``family`` (index into ``FAMILY_NAMES``), and,
    concatenated over the split's graphs in order, ``edges`` (local node ids, ``u < v``),
    ``feat``, ``sssp`` and ``eccentricity``.
    """
    sizes, batches = _check_sizes(sizes), _check_batches(batches)
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(
            f"The GPP data seed (--data-seed, data.options.seed) must be from 0 to {MAX_SEED}, "
            f"got {seed}: seed s numbers its graphs' random draws from s·{SEED_STRIDE:,}, and "
            "numpy's RandomState takes seeds below 2**32."
        )
    result, seed = {}, int(seed) * SEED_STRIDE
    for split, count, split_batches in zip(SPLITS, sizes, batches):
        counts = split_node_counts(count, split_batches, int(min_nodes))
        result[split], seed = _generate_split(counts, seed)
    return result


def _check_sizes(sizes):
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) != len(SPLITS) or min(sizes) < 0:
        raise ValueError(f"sizes must be three non-negative counts (train, val, test): {sizes}")
    return sizes


def _check_batches(batches):
    batches = tuple(int(b) for b in batches)
    if len(batches) != len(SPLITS) or min(batches) < 1:
        raise ValueError(
            f"batches must be three counts of at least 1 (train, val, test), got {batches}; "
            f"PNA's scheme is {BATCHES}."
        )
    return batches


def cache_file(seed=0, sizes=SIZES, cache_path=None, min_nodes=MIN_NODES, batches=BATCHES):
    """Where the dataset is cached: ``cache_dir(cache_path)/gpp/…npz``."""
    sizes, batches = _check_sizes(sizes), _check_batches(batches)
    folder = cache_dir(cache_path) / "gpp"
    name = f"gpp_v{CACHE_VERSION}_{GENERATOR}_seed{seed}_n{min_nodes}_{'-'.join(map(str, sizes))}"
    if batches != BATCHES:  # (PNA's scheme keeps the name its caches were written under)
        name += f"_b{'-'.join(map(str, batches))}"
    return folder / f"{name}.npz"


VERSION_KEY = "generator_version"


class StaleCache(ValueError):
    """A cache file written by another version of the generator."""


def _save(arrays, path):
    flat = {f"{split}/{key}": value for split, d in arrays.items() for key, value in d.items()}
    flat[VERSION_KEY] = np.array(CACHE_VERSION)
    with atomic_write(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, **flat)  # a stream: given a name, savez would append ".npz" to it


def _load(path):
    with np.load(path, allow_pickle=False) as stored:
        flat = {key: stored[key] for key in stored.files}
    version = flat.pop(VERSION_KEY, None)
    if version is None or int(version) != CACHE_VERSION:
        raise StaleCache(f"written by generator version {version}, not {CACHE_VERSION}")
    arrays = {split: {} for split in SPLITS}
    for key, value in flat.items():
        split, name = key.split("/", 1)
        arrays[split][name] = value
    return arrays


def gpp_arrays(seed=0, sizes=SIZES, cache_path=None, min_nodes=MIN_NODES, batches=BATCHES):
    """The dataset as numpy arrays (see ``generate_gpp``), from the cache or generated into it.

    A cache file that is unreadable, or that another generator version wrote, is rebuilt.
    """
    path = cache_file(seed, sizes, cache_path, min_nodes, batches)
    if path.exists():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            warnings.warn(f"unusable GPP cache {path} ({error}); regenerating", stacklevel=2)
    arrays = generate_gpp(seed, sizes, min_nodes, batches)
    _save(arrays, path)
    return arrays


def gpp_families(seed=0, sizes=SIZES, cache_path=None, min_nodes=MIN_NODES, batches=BATCHES):
    """``{split: [family name of each graph]}``, in the order of ``load_gpp``'s graphs."""
    arrays = gpp_arrays(seed, sizes, cache_path, min_nodes, batches)
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


def load_gpp(task, seed=0, sizes=SIZES, cache_path=None, min_nodes=MIN_NODES, batches=BATCHES):
    """One GPP task (``"diameter"``, ``"sssp"`` or ``"eccentricity"``) as ``BenchmarkData``.

    SSSP and eccentricity are node-level (``ndata["label"]``, float32 ``(n, 1)``); diameter is
    graph-level (``graph_labels[split]``, float32 ``(num_graphs, 1)``). Features are
    ``ndata["feat"]`` (float32 ``(n, 2)``). Labels are not normalised. ``gpp_families`` gives
    each graph's family. ``batches``: how many node counts each split spans (see
    :func:`generate_gpp`).
    """
    if task not in TASKS:
        raise ValueError(f"unknown GPP task {task!r}; choose from {TASKS}")
    arrays = gpp_arrays(seed, sizes, cache_path, min_nodes, batches)
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


if __name__ == "__main__":  # python -m dgl_ssm_bench.datasets.gpp: time a full generation
    start = time.perf_counter()
    full = generate_gpp(0)
    print(
        f"{sum(len(a['num_nodes']) for a in full.values())} graphs in "
        f"{time.perf_counter() - start:.1f} s"
    )
