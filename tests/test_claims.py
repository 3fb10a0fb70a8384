"""Claims on reproduction runs: two processes over the same records never train one run
twice, and no claim outlives the process that held it."""

import os
import signal
import subprocess
import sys
import threading
import time
import types

import pytest

from dgl_ssm_bench.reproduce import execute, read_records
from dgl_ssm_bench.reproduce.claims import CLAIMS, claim
from dgl_ssm_bench.reproduce.plan import Cell
from dgl_ssm_bench.reproduce.records import SCHEMA, append_record, config_key
from tests.conftest import ThreadPool, tiny_ring

pytestmark = pytest.mark.skipif(os.name != "posix", reason="claims need flock")

HOLD_SCRIPT = """
import sys, time
from dgl_ssm_bench.reproduce.claims import claim
with claim(sys.argv[1], "ring", sys.argv[2] if len(sys.argv) > 2 else "abc") as holder:
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
    holder = hold(tmp_path, "abc")
    try:
        with claim(tmp_path, "ring", "abc") as taken:
            assert taken == f"process {holder.pid}"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (tmp_path / CLAIMS / "ring-abc").exists()  # the file stays; the lock does not
    with claim(tmp_path, "ring", "abc") as taken:
        assert taken is None


def test_a_look_at_a_free_claim_does_not_keep_a_run_from_taking_it(tmp_path, monkeypatch):
    """``--list`` looks at a claim file a killed run left with a shared lock, for a moment;
    a run claiming it just then took it for held and set it aside for 30 s."""
    import fcntl

    from dgl_ssm_bench.reproduce import claims

    (tmp_path / CLAIMS).mkdir()
    stale = tmp_path / CLAIMS / "ring-abc"
    stale.write_text("process 1234\n")  # left by a run killed with -9
    with open(stale) as look:
        fcntl.flock(look, fcntl.LOCK_SH | fcntl.LOCK_NB)  # as holder() looks
        # The look ends while the run pauses before trying again (a timer thread once did it,
        # and had to be scheduled within the run's pauses).
        look_away = types.SimpleNamespace(sleep=lambda _: fcntl.flock(look, fcntl.LOCK_UN))
        monkeypatch.setattr(claims, "time", look_away)  # (claims' own: not time.sleep itself)
        with claim(tmp_path, "ring", "abc") as taken:
            assert taken is None


def test_two_looks_at_a_free_claim_at_once_both_see_it_free(tmp_path):
    """Two ``--list`` at once: a look holds a shared lock for a moment, which another look
    must not take for a run holding the claim."""
    import fcntl

    from dgl_ssm_bench.reproduce.claims import holder

    (tmp_path / CLAIMS).mkdir()
    stale = tmp_path / CLAIMS / "ring-abc"
    stale.write_text("process 1234\n")  # left by a run killed with -9
    with open(stale) as look:
        fcntl.flock(look, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the other look, as holder() looks
        assert holder(tmp_path, "ring", "abc") is None


def test_a_stale_claim_file_taken_over_names_only_its_new_holder(tmp_path):
    """A claim file a killed run left still holds its text: a run taking it over must replace
    it, not append to it, or a look at the claim names a process long gone beside this one."""
    (tmp_path / CLAIMS).mkdir()
    (tmp_path / CLAIMS / "ring-abc").write_text("process 1234\n")  # left by a kill -9
    with claim(tmp_path, "ring", "abc") as taken:
        assert taken is None
        with claim(tmp_path, "ring", "abc") as other:
            assert other == f"process {os.getpid()}"


def test_a_claim_file_removed_as_it_was_locked_is_claimed_anew(tmp_path, monkeypatch):
    """The holder of a claim removes its file as it finishes: a run that opened the file just
    before and locks it then holds a lock on a file no longer there, which a third process
    would not see (it makes a new one). It must claim the file at the path instead."""
    from dgl_ssm_bench.reproduce import claims

    path = tmp_path / CLAIMS / "ring-abc"
    real, removed = claims._flock_soon, []

    def holder_finishes_meanwhile(handle):
        if not removed:  # opened by this run; its holder removes it before the lock is taken
            path.unlink()
            removed.append(path)
        return real(handle)

    monkeypatch.setattr(claims, "_flock_soon", holder_finishes_meanwhile)
    with claim(tmp_path, "ring", "abc") as taken:
        assert taken is None and removed
        assert path.exists()  # the file others open is the one held
        assert claims.holder(tmp_path, "ring", "abc") == f"process {os.getpid()}"


def test_a_pool_claims_only_the_runs_it_starts(tmp_path, monkeypatch):
    """With --jobs 2, two runs are claimed at a time: a third claimed while it waits for a
    worker would be left by every other process ("being run by …") though none runs it."""
    held, both_started = [], threading.Barrier(2, timeout=30)

    def fake_run(config_dict, locations):
        both_started.wait()  # (runs go in pairs) both are claimed: at least 2 claims
        time.sleep(0.2)  # and a third, wrongly taken while both run, has been taken
        held.append(len(list((tmp_path / CLAIMS).iterdir())))
        return {"status": "ok", "test": 0.5, "metric": "accuracy", "epochs": 1,
                "cpu_time_s": 1.0, "config": config_dict}  # fmt: skip

    monkeypatch.setattr(execute, "ProcessPoolExecutor", ThreadPool)
    monkeypatch.setattr(execute, "_run", fake_run)
    cells = [Cell("ring", "GCN-SSM", "n=6", tiny_ring(seed)) for seed in range(4)]
    assert execute.run_cells(cells, tmp_path, jobs=2, threads=1, log=lambda _: None) == 4
    assert len(held) == 4 and max(held) == 2


def hold(out, key):
    """A process holding the claim on ``key`` of part ring (kill it to end the claim)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(out), key],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    return holder


def kill_later(process, seconds, before=None):
    def kill():
        time.sleep(seconds)
        if before is not None:
            before()
        process.send_signal(signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()


@pytest.mark.parametrize(("jobs", "records_it"), [(1, True), (1, False), (2, False)],
                         ids=["recorded", "left", "left-pool"])  # fmt: skip
def test_a_run_another_process_holds_waits_for_it(tmp_path, monkeypatch, jobs, records_it):
    """Seed 0 is held by another process: seed 1 runs meanwhile, and seed 0 is skipped once
    that process has recorded it, or run here if it ended without a record (killed)."""
    monkeypatch.setattr(execute, "_LOOK_AGAIN_S", 0.2)
    cells = [Cell("ring", "GCN-SSM", "n=6", tiny_ring(seed)) for seed in (0, 1)]
    holder = hold(tmp_path, config_key(cells[0].config))
    theirs = {"row": "GCN-SSM", "column": "n=6", "status": "ok", "test": 0.5, "schema": SCHEMA,
              "config": cells[0].config.to_dict(), "key": config_key(cells[0].config)}  # fmt: skip

    def record_theirs():
        append_record(tmp_path / "ring.jsonl", theirs)

    kill_later(holder, 3.0, record_theirs if records_it else None)
    lines = []
    try:
        written = execute.run_cells(cells, tmp_path, jobs=jobs, threads=1, log=lines.append)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert any(f"seed 0: being run by process {holder.pid}; waiting" in x for x in lines), lines
    records = read_records(tmp_path / "ring.jsonl")
    assert sorted(r["config"]["seed"] for r in records) == [0, 1]  # each run recorded once
    assert written == (1 if records_it else 2)
    if records_it:
        assert any("seed 0: recorded meanwhile by another process" in x for x in lines), lines
    assert list((tmp_path / CLAIMS).iterdir()) == []  # even the killed holder's file is gone


TWO_COMMANDS_SCRIPT = """
import sys, time
from dgl_ssm_bench.config import RunConfig
from dgl_ssm_bench.reproduce import execute
from dgl_ssm_bench.reproduce.plan import Cell

def fake_run(config_dict, locations):
    print(config_dict["seed"], flush=True)
    time.sleep(1.0)
    return {"status": "ok", "test": 0.5, "metric": "accuracy", "epochs": 1,
            "cpu_time_s": 1.0, "config": config_dict}

execute._run, execute._init_worker = fake_run, lambda threads: None
execute._LOOK_AGAIN_S = 0.2
cells = [Cell("ring", "GCN-SSM", "n=6", RunConfig.from_dict({
    "model": {"name": "gcn_ssm", "num_layers": 2, "hidden": 8},
    "data": {"name": "ring_transfer", "options": {"ring_size": 6, "num_graphs": 40}},
    "optim": {"epochs": 1, "batch_size": 16}, "seed": seed})) for seed in range(4)]
execute.run_cells(cells, sys.argv[1], log=lambda line: None)
"""


def test_two_commands_over_the_same_runs_train_each_once(tmp_path):
    """Two runner processes started together (as from two terminals) over four runs of a
    second each: each run is trained by one of them, and recorded once."""
    commands = [subprocess.Popen([sys.executable, "-c", TWO_COMMANDS_SCRIPT, str(tmp_path)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    trained = [
        int(seed) for command in commands for seed in command.communicate(timeout=120)[0].split()
    ]
    assert [command.returncode for command in commands] == [0, 0]
    assert sorted(trained) == [0, 1, 2, 3]
    records = read_records(tmp_path / "ring.jsonl")
    assert sorted(r["config"]["seed"] for r in records) == [0, 1, 2, 3]


def test_list_says_which_pending_runs_another_process_is_running(tmp_path, capsys):
    from dgl_ssm_bench.cli import main
    from dgl_ssm_bench.reproduce import plan
    from dgl_ssm_bench.reproduce.claims import holder as holder_of

    first, second = plan(["ring"])[:2]
    assert holder_of(tmp_path, "ring", config_key(first.config)) is None
    assert not (tmp_path / CLAIMS).exists()  # looking claims nothing
    running = hold(tmp_path, config_key(first.config))
    try:
        assert main(["reproduce", "--part", "ring", "--list", "--out", str(tmp_path)]) == 0
    finally:
        running.send_signal(signal.SIGKILL)
        running.wait(timeout=30)
    listed = {tuple(line.split("\t")) for line in capsys.readouterr().out.splitlines()}
    label = ("ring", first.row, first.column, f"seed {first.config.seed}")
    assert (*label, f"running in process {running.pid}") in listed
    assert ("ring", second.row, second.column, f"seed {second.config.seed}") in listed
    assert holder_of(tmp_path, "ring", config_key(first.config)) is None  # killed: free
