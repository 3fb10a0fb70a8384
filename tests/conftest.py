"""Shared fixtures and the small inputs several test files build: local data (no network),
small graphs, a tiny node task, a tiny run config and sweep space."""

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dgl
import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config):
    """In a pytest-xdist worker (``make test``: ``-n 2``), compute with this worker's share of
    the cores, in torch, DGL and the BLAS, and let the commands its tests start do the same
    (``OMP_NUM_THREADS``, unless set): with a thread per core in every worker, threads would
    wait on each other's busy cores at every small operation."""
    if not hasattr(config, "workerinput"):  # one process, or xdist's controller
        return
    from dgl_ssm_bench.threads import blas_limits, set_threads, threads_per_worker

    share = threads_per_worker(None, config.workerinput["workercount"])
    os.environ.setdefault("OMP_NUM_THREADS", str(share))
    set_threads(share)
    blas_limits(share)  # (applied at once, for the process's life)


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_as_in_a_terminal():
    """Ctrl-C raises KeyboardInterrupt, as in a terminal, for the tests of what Ctrl-C does.
    A test run started in the background by a non-interactive shell (`make test &`, nohup)
    has SIGINT ignored, and so would every process the tests start."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def data_dir():
    """The raw-data folder: $DGL_SSM_DATA, else ../shared/data beside the checkout."""
    path = Path(os.environ.get("DGL_SSM_DATA", SHARED_DATA))
    if not path.exists():
        if os.environ.get("CI"):  # CI has ../shared beside the clone: never skip silently
            pytest.fail(f"no local data folder at {path} in CI; put ../shared beside the clone")
        pytest.skip(f"no local data folder at {path}; set DGL_SSM_DATA")
    return path


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    """The processed-data cache of this test session, also for the code and commands that
    tests under ``tests/`` run without a cache folder (``$DGL_SSM_CACHE``): the user's own
    cache is neither read, which would let its state decide a test, nor written."""
    path = tmp_path_factory.mktemp("dgl_ssm_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DGL_SSM_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def cora(data_dir, cache_dir):
    from dgl_ssm_bench.datasets.planetoid import load_planetoid

    return load_planetoid("cora", data_dir, cache_dir)


def random_graph(num_nodes, num_edges, seed=0, self_loops=True):
    """A random undirected (bidirected) graph, optionally with one self loop per node."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    dst = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    graph = dgl.to_bidirected(dgl.remove_self_loop(dgl.graph((src, dst), num_nodes=num_nodes)))
    return dgl.add_self_loop(graph) if self_loops else graph


def ring(n, self_loops=True):
    """The n-cycle, both directions, with one self loop per node unless ``self_loops=False``."""
    nodes = torch.arange(n)
    graph = dgl.to_bidirected(dgl.graph((nodes, (nodes + 1) % n)))
    return dgl.add_self_loop(graph) if self_loops else graph


def numpy_gcn_adjacency(graph_without_loops):
    """Ã = D^-1/2 (A + I) D^-1/2, built from the edge list with numpy only."""
    n = graph_without_loops.num_nodes()
    src, dst = (t.numpy() for t in graph_without_loops.edges())
    adj = np.eye(n)
    adj[dst, src] = 1.0
    deg = adj.sum(axis=1)
    return adj / np.sqrt(np.outer(deg, deg))


def layer_by_layer(model, graph, feat):
    """``([(layer, H⁽ℓ⁾, E⁽ℓ⁾), …], last state)``: each layer's input from calling the layers
    one by one (eval mode), so that a test's linearisation points do not come from the hooks
    of the code under test. One-hop models only: k-hop layers read hop graphs that only the
    model's forward pass assembles."""
    model.eval()
    calls = []
    with torch.no_grad():
        state = model.encoder(feat)
        edges = (
            model.edge_embedding.expand(graph.num_edges(), -1) if model.uses_edge_feats else None
        )
        for layer in model.layers:
            calls.append((layer, state, edges))
            if edges is None:
                state = layer(graph, state)
            else:
                state, edges = layer(graph, state, edges)
    return calls, state


def postgres_url():
    """``$DGL_SSM_TEST_POSTGRES``, naming a database of its own for each pytest-xdist worker:
    tests on two workers at once would otherwise drop each other's database."""
    url, worker = os.environ.get("DGL_SSM_TEST_POSTGRES"), os.environ.get("PYTEST_XDIST_WORKER")
    if not (url and worker):
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


def fresh_postgres_database(url):
    """Drop and re-create the database of the PostgreSQL ``url``, closing its other sessions."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database
    admin = sqlalchemy.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def still_running(processes, timeout):
    """Those of ``processes`` (psutil) still running after up to ``timeout`` seconds. Not
    counted: zombies (dead, waiting to be reaped), which processes that are not this one's
    children stay where no init reaps orphans (a container's PID 1 may not)."""
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    running = []
    for process in alive:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running


# --- small inputs for the trainer, the reproduction and the sweeps -----------------------------


def tiny_node_task(metric):
    """A 30-node random graph scored by ``metric``, with the loss and targets it needs."""
    from dgl_ssm_bench.datasets import BenchmarkData

    generator = torch.Generator().manual_seed(0)
    # Edges from the seeded generator, not dgl.rand_graph's global RNG: the same graph
    # whichever tests ran before.
    src, dst = torch.randint(0, 30, (2, 90), generator=generator)
    graph = dgl.to_bidirected(dgl.to_simple(dgl.graph((src, dst), num_nodes=30)))
    graph.ndata["feat"] = torch.randn(30, 4, generator=generator)
    tasks = {"accuracy": ("cross_entropy", 3), "roc_auc": ("cross_entropy", 2),
             "ap": ("bce", 2), "mae": ("l1", 1), "log10_mse": ("mse", 1)}  # fmt: skip
    loss, outputs = tasks[metric]
    if loss == "cross_entropy":
        graph.ndata["label"] = torch.arange(30) % outputs
    elif loss == "bce":
        graph.ndata["label"] = torch.stack([torch.arange(30) % 2, torch.arange(30) // 15], 1)
    else:
        graph.ndata["label"] = torch.randn(30, 1, generator=generator)
    index = torch.arange(30)
    split = {"train": index[:10], "val": index[10:20], "test": index[20:]}
    return BenchmarkData("tiny", "node", loss, metric, 4, outputs, graph=graph, splits=[split])


def tiny_ring(seed, layers=2):
    """A one-epoch GCN-SSM run on 40 six-node RingTransfer graphs."""
    from dgl_ssm_bench.config import RunConfig

    return RunConfig.from_dict({
        "model": {"name": "gcn_ssm", "num_layers": layers, "hidden": 8},
        "data": {"name": "ring_transfer", "options": {"ring_size": 6, "num_graphs": 40}},
        "optim": {"epochs": 1, "batch_size": 16},
        "seed": seed,
    })  # fmt: skip


class ThreadPool(ThreadPoolExecutor):
    """The reproduction pool's bookkeeping on threads, without spawning worker processes
    (for ``execute.ProcessPoolExecutor``)."""

    def __init__(self, jobs, mp_context=None, initializer=None, initargs=()):
        super().__init__(jobs)


# A study small enough for a trial in about a second: two-layer twins on RingTransfer, one
# searched value each (format it with `epochs` and `graphs`).
TINY_SPACE = """
protocol: smoke
fixed:
  data.options.ring_size: 6
  data.options.num_graphs: {graphs}
  model.hidden: 8
  model.num_layers: 2
  optim.epochs: {epochs}
search:
  optim.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
plain:
  model.residual: {{type: categorical, choices: [false, true]}}
ssm:
  model.state_scale: {{type: float, low: 0.5, high: 1.0}}
final: {{runs: 2}}
"""


def tiny_space(tmp_path, epochs=3, graphs=60):
    """``TINY_SPACE`` written to a file in ``tmp_path``: its path."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE.format(epochs=epochs, graphs=graphs))
    return str(path)
