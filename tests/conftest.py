"""Shared fixtures: local data (no network), small graphs."""

import os
import signal
from pathlib import Path

import dgl
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
