"""Claims on reproduction runs: two processes over the same records never train one run
twice, and no claim outlives the process that held it."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from dgl_ssm_bench.reproduce import execute, read_records
from dgl_ssm_bench.reproduce.claims import CLAIMS, claim
from dgl_ssm_bench.reproduce.plan import Cell
from dgl_ssm_bench.reproduce.records import config_key
from tests.test_reproduce import tiny_ring

pytestmark = pytest.mark.skipif(os.name != "posix", reason="claims need flock")

HOLD_SCRIPT = """
import sys, time
from dgl_ssm_bench.reproduce.claims import claim
with claim(sys.argv[1], "ring", "abc") as holder:
    print("held" if holder is None else holder, flush=True)
    time.sleep(600)
"""


def test_a_claim_is_exclusive_and_removed_when_released(tmp_path):
    with claim(tmp_path, "ring", "abc") as first:
        with claim(tmp_path, "ring", "abc") as second, claim(tmp_path, "gpp", "abc") as other:
            assert first is None and other is None  # another part's run is another claim
            assert second == f"process {os.getpid()}"
        assert (tmp_path / CLAIMS / "ring-abc").exists()
    assert not (tmp_path / CLAIMS / "ring-abc").exists()
    with claim(tmp_path, "ring", "abc") as again:
        assert again is None


def test_a_claim_of_a_killed_process_is_free_at_once(tmp_path):
    """``kill -9`` leaves the claim file behind, but not its lock: the run is free again."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with claim(tmp_path, "ring", "abc") as taken:
            assert taken == f"process {holder.pid}"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (tmp_path / CLAIMS / "ring-abc").exists()  # the file stays; the lock does not
    with claim(tmp_path, "ring", "abc") as taken:
        assert taken is None


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_another_process_holds_is_skipped(tmp_path, jobs):
    cells = [Cell("ring", "GCN-SSM", "n=6", tiny_ring(seed)) for seed in (0, 1)]
    lines = []
    with claim(tmp_path, "ring", config_key(cells[0].config)):
        written = execute.run_cells(cells, tmp_path, jobs=jobs, threads=1, log=lines.append)
    assert written == 1
    assert [r["config"]["seed"] for r in read_records(tmp_path / "ring.jsonl")] == [1]
    skipped = f"seed 0: being run by process {os.getpid()}; skipped"
    assert any(skipped in line for line in lines), lines
    assert list((tmp_path / CLAIMS).iterdir()) == []  # every claim released


def test_two_commands_over_the_same_runs_train_each_once(tmp_path, monkeypatch):
    """Two runners started together (as from two terminals) over four runs of a second each:
    each run is trained by one of them, and recorded once."""
    cells = [Cell("ring", "GCN-SSM", "n=6", tiny_ring(seed)) for seed in range(4)]
    trained, lock = [], threading.Lock()

    def fake_run(config_dict, locations):
        with lock:
            trained.append(config_dict["seed"])
        time.sleep(1.0)
        return {"status": "ok", "test": 0.5, "metric": "accuracy", "epochs": 1,
                "cpu_time_s": 1.0, "config": config_dict}  # fmt: skip

    monkeypatch.setattr(execute, "_run", fake_run)
    monkeypatch.setattr(execute, "_init_worker", lambda threads: None)
    runners = [threading.Thread(target=execute.run_cells, args=(cells, tmp_path),
                                kwargs={"log": lambda line: None}) for _ in range(2)]  # fmt: skip
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=60)
    assert sorted(trained) == [0, 1, 2, 3]
    records = read_records(tmp_path / "ring.jsonl")
    assert sorted(r["config"]["seed"] for r in records) == [0, 1, 2, 3]
