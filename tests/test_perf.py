"""Tests of the performance benchmark (``dgl-ssm perf``, ``python -m dgl_ssm_bench.perf``).

Timings are checked only against what a machine cannot change (a sleep lasts at least its
time, a slower sleep takes longer in proportion); the ratios, targets and fresh-process
measurements against numbers computed here independently.
"""

import csv
import json
import mmap
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

import dgl
import pytest
import torch
from torch.utils.benchmark.utils.common import Measurement, TaskSpec

import dgl_ssm_bench.memory as memory
import dgl_ssm_bench.monitor
import dgl_ssm_bench.train
from dgl_ssm_bench.datasets.gpp import generate_graph
from dgl_ssm_bench.memory import PeakMeter, process_rss_mb, resident_mb
from dgl_ssm_bench.perf import main, measure, runner
from dgl_ssm_bench.perf import report as perf_report
from dgl_ssm_bench.perf.cli import PerfConfig, build_parser, config_from_args
from dgl_ssm_bench.perf.isolation import (
    COMPACT,
    TCMALLOC,
    allocator_environment,
    find_tcmalloc,
    isolated,
    retimed_label,
    split_label,
)
from dgl_ssm_bench.perf.measure import epoch_memory, interleaved, khop_cost
from dgl_ssm_bench.perf.report import all_ratios, evaluate_targets, put, ratio, target
from dgl_ssm_bench.perf.workload import GraphSpec, gpp_sized_graphs, pyg_available

TINY = [
    "--graphs", "synthetic", "--synthetic-nodes", "300", "--synthetic-edges", "1500",
    "--depths", "2", "--repeats", "2", "--warmup", "0", "--min-time", "0", "--hidden", "8",
    "--khop-max-k", "2", "--rewire-graphs", "12", "--no-subprocess",
]  # fmt: skip
SECTIONS = (
    "## Machine",
    "## Run",
    "## Targets",
    "## Time per training epoch",
    "## Peak memory per epoch",
    "## k-hop transform",
    "## k-hop rewiring of many small graphs",
    "## Reference: PyTorch Geometric",
    "## Where the SSM time goes",
    "## All ratios",
)


def test_interleaved_alternates_rounds_and_times_known_durations():
    calls = []

    def sleeper(name, seconds):
        def run():
            calls.append(name)
            time.sleep(seconds)

        return run

    # (Sleeps long beside a busy machine's late wake-ups, a few ms: 10 and 30 ms gave ratios
    # up to 3.35 with the cores loaded. A sleep is never shorter than asked, so each key's
    # shortest round is its least disturbed one.)
    measured = interleaved({"short": sleeper("short", 0.05), "long": sleeper("long", 0.15)},
                           rounds=3, warmup=1, round_seconds=0.0)  # fmt: skip

    # One warm-up round, then 3 timed rounds: every round runs all of "short", then "long".
    runs = [name for i, name in enumerate(calls) if i == 0 or calls[i - 1] != name]
    assert runs == ["short", "long"] * 4
    assert [len(measured[key]) for key in ("short", "long")] == [3, 3]
    short, long = ([m.median for m in measured[key]] for key in ("short", "long"))
    assert min(short) >= 0.05 and min(long) >= 0.15  # a sleep lasts at least its time
    assert 2.0 < min(long) / min(short) < 3.2
    assert measured["long"][0].task_spec.num_threads == torch.get_num_threads()


def _records(**values):
    """Records of one graph at depth 2: ``variant=[seconds per round]``."""
    records = {}
    for variant, seconds in values.items():
        put(records, "time", "g", variant.replace("__", "+"), "seconds", seconds, depth=2)
    return records


def test_time_ratios_pair_rounds_and_memory_ratios_divide_medians():
    records = _records(gcn=[1.0, 2.0, 3.0], gcn_ssm=[2.0, 4.0, 9.0], gcn_ssm__ckpt=[3.0, 2.0])
    found = ratio("time", records[("time", "g", "gcn_ssm", "seconds", 2, None)],
                  records[("time", "g", "gcn", "seconds", 2, None)], "seconds")  # fmt: skip
    # Per-round ratios 2, 2, 3: their median, min and max.
    assert (found["value"], found["low"], found["high"]) == (2.0, 2.0, 3.0)
    assert (found["depth"], found["k"]) == (2, None)
    # Different round counts cannot pair: the ratio of the medians, 2.5 / 2.
    ckpt = ratio("time", records[("time", "g", "gcn_ssm+ckpt", "seconds", 2, None)],
                 records[("time", "g", "gcn", "seconds", 2, None)], "seconds")  # fmt: skip
    assert ckpt["value"] == ckpt["low"] == ckpt["high"] == 1.25
    put(records, "time", "g", "gcn", "seconds", [0.0], depth=3)
    put(records, "time", "g", "gcn_ssm", "seconds", depth=3, status="over budget")
    zero, over = (records[("time", "g", v, "seconds", 3, None)] for v in ("gcn", "gcn_ssm"))
    assert ratio("time", over, zero, "seconds") is None and ratio("time", zero, zero, "x") is None


def test_targets_read_their_ratios_and_fall_back_to_retimed_graphs():
    config = PerfConfig(depths=(2, 64), memory_depth=64, reference_depths=(2,))
    records = {}
    times = {"gcn": [1.0, 1.0], "gcn_ssm": [1.05, 1.2], "gcn_ssm+ckpt": [2.0, 2.0]}
    for variant, seconds in times.items():  # 64 layers timed only under tcmalloc
        put(records, "time", retimed_label("big", TCMALLOC), variant, "seconds", seconds, depth=64)
    for variant, peak in {"gcn": [400.0], "gcn_ssm": [400.0], "gcn_ssm+ckpt": [80.0]}.items():
        put(records, "memory", "big", variant, "peak_mb", peak, depth=64)
    put(records, "khop", "big", "input", "edges", [1000], k=0)
    put(records, "khop", "big", "khop(K=1)", "edges", [3000], k=1)
    put(records, "khop", "big", "khop(K=1)", "peak_mb", [40.0], k=1)
    ratios = all_ratios(records, config)

    by_label = {(r["section"], r["numerator"], r["denominator"], r["metric"]): r for r in ratios}
    assert by_label["time", "gcn_ssm", "gcn", "seconds"]["value"] == pytest.approx(1.125)
    assert by_label["memory", "gcn_ssm+ckpt", "gcn", "peak_mb"]["value"] == 0.2
    assert by_label["khop", "khop(K=1)", "input", "edges"]["value"] == 3.0
    assert by_label["khop", "khop(K=1)", "gcn", "peak_mb"]["value"] == 0.1  # / the plain peak
    verdicts = {t["name"]: t["verdict"] for t in evaluate_targets(ratios, config, "big")}
    assert verdicts == {
        "gcn_ssm / gcn time per epoch, 64 layers, big": "MISS",  # 1.125 > 1.1
        "checkpointed / gcn peak memory, 64 layers, big (≥ 4× lower)": "PASS",
        "checkpointed / gcn_ssm peak memory, 64 layers, big (≥ 4× lower)": "PASS",
        "checkpointed / gcn time per epoch, 64 layers, big": "MISS",  # 2 > 1.6
        "checkpointed / gcn_ssm time per epoch, 64 layers, big": "MISS",
        "ours / PyG GCN-SSM time per epoch, 2 layers, big (aim)": "N/A",
        "checkpointed GCN-SSM at 1024 layers / GCN-SSM at 64 peak memory, cora": "N/A",
    }


def isolated_fitting(up_to, calls, measure):
    """A stand-in for ``isolation.isolated`` timing runs: depths above ``up_to`` are over the
    budget under the default allocator, the others return ``measure(variants)``; each call's
    (depth, allocator) is appended to ``calls``."""

    def fake_isolated(function, args, budget_mb, allocator, fresh):
        depth, variants = args[2], args[3]
        calls.append((depth, allocator))
        if allocator == "default" and depth > up_to:
            return {"status": "over budget", "message": "stopped at 2,000 MB resident"}
        return {"status": "ok", "measurements": measure(variants)}

    return fake_isolated


def test_depths_over_the_budget_are_timed_again_under_the_deep_allocator(monkeypatch):
    config = PerfConfig(depths=(2, 8, 32), memory_budget_gb=1.0, sections=("time",))
    calls = []

    def measure(variants):
        return interleaved({variant: lambda: None for variant in variants}, config.repeats)

    monkeypatch.setattr(runner.isolation, "isolated", isolated_fitting(2, calls, measure))
    monkeypatch.setattr(runner.isolation, "deep_allocator", lambda: TCMALLOC)
    records, log = {}, []
    runner._time_section(config, GraphSpec("synthetic", 10, 20), "cpu", log.append, records)

    assert calls == [(2, "default"), (8, "default"), (32, "default"),
                     (2, TCMALLOC), (8, TCMALLOC), (32, TCMALLOC)]  # fmt: skip
    assert "[time] random-10: timing 2, 8, 32 layers again under the tcmalloc allocator" in log
    retimed = retimed_label("random-10", TCMALLOC)
    status = {(r["graph"], r["depth"]): r["status"] for r in records.values()}
    assert status[("random-10", 8)] == "over budget" and status[(retimed, 32)] == "ok"
    assert len(records[("time", retimed, "gcn_ssm+ckpt", "seconds", 32, None)]["values"]) == 5


def _small_config(**kwargs):
    return PerfConfig(depths=(2,), hidden=64, memory_budget_gb=8.0, **kwargs)


def test_a_fresh_process_measures_one_epochs_peak_memory():
    spec = GraphSpec("synthetic", 20_000, 100_000)
    result = isolated(epoch_memory, (_small_config(), spec, "gcn_ssm", "cpu"), budget_mb=8192)
    assert result["status"] == "ok", result
    # The backward pass keeps at least the states of both layers: 2 × 20,000 × 64 float32.
    assert result["peak_mb"] > 2 * 20_000 * 64 * 4 / 2**20 and result["seconds"] > 0


def test_a_child_above_the_budget_is_stopped_and_a_failing_one_reported():
    args = (_small_config(khop_max_k=1), GraphSpec("synthetic", 1000, 5000))
    stopped = isolated(khop_cost, args, budget_mb=50)  # importing torch alone takes more
    assert stopped["status"] == "over budget", stopped
    assert "budget 50 MB" in stopped["message"]
    failed = isolated(json.loads, ("{",), budget_mb=1000)
    assert failed["status"] == "failed" and "JSONDecodeError" in failed["message"]
    here = isolated(json.loads, ("{",), budget_mb=1000, fresh=False)
    assert here["status"] == "failed" and here["message"].startswith("JSONDecodeError")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc tunable")
def test_a_measurement_interrupted_in_the_parent_stops_its_child(monkeypatch):
    """Ctrl-C (or SIGTERM) reaching only the benchmark's process must not leave the measuring
    child running on alone."""
    import _thread
    import threading

    import psutil

    started = []
    real_popen = psutil.Popen

    def remembered(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(psutil, "Popen", remembered)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            isolated(time.sleep, (60,), budget_mb=4000)
    finally:
        timer.cancel()
    assert len(started) == 1 and not started[0].is_running()


def test_the_compact_allocator_reaches_the_child():
    tunables = isolated(os.getenv, ("GLIBC_TUNABLES",), budget_mb=1000, allocator=COMPACT)
    assert tunables == "glibc.malloc.mmap_threshold=65536"


@pytest.mark.parametrize("platform,maxrss", [("darwin", 3 * 2**30), ("freebsd14", 3 * 2**20)])
def test_off_linux_the_high_water_mark_reads_ru_maxrss_in_its_platforms_unit(
    monkeypatch, platform, maxrss
):
    # getrusage(2): ru_maxrss is in bytes on macOS and in kilobytes on the BSDs (and Linux).
    monkeypatch.setattr(memory, "_status_kb", lambda field: None)  # no /proc/self/status
    monkeypatch.setattr(memory.sys, "platform", platform)
    usage = type("Usage", (), {"ru_maxrss": maxrss})()
    monkeypatch.setattr(memory.resource, "getrusage", lambda who: usage)
    assert memory.high_water_mark_mb() == 3 * 1024  # 3 GiB, in MB


def test_the_memory_meter_sees_memory_allocated_after_its_start():
    meter = PeakMeter("cpu")
    meter.start()
    before = resident_mb()
    # 50 MB of fresh pages, every one written: an anonymous mmap, because malloc may serve a
    # tensor from pages an earlier test freed but left resident (then RSS would not move)
    block = mmap.mmap(-1, 50 * 2**20)
    for offset in range(0, len(block), mmap.PAGESIZE):
        block[offset] = 1
    grown = resident_mb() - before
    block.close()
    assert grown > 45
    if meter.resettable:  # Linux: the high-water mark was reset to the baseline
        assert meter.peak_mb() > 45
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    assert process_rss_mb(child.pid) > 0
    child.kill()
    child.wait()
    assert process_rss_mb(child.pid) is None


def test_quick_sets_small_sizes_and_flags_still_win():
    config = config_from_args(build_parser().parse_args(["--quick", "--repeats", "4"]))
    assert config.depths == (2, 16) and config.synthetic_nodes == 10_000
    assert config.repeats == 4 and config.quick and config.min_time == 0.3


def test_the_pyg_reference_is_the_same_model_as_ours():
    if pyg_available() is not None:
        pytest.skip("torch_geometric is not installed")
    from dgl_ssm import GCNSSM
    from dgl_ssm_bench.perf.workload import PygGCNSSM, edge_index

    graph = dgl.add_self_loop(dgl.to_bidirected(dgl.rand_graph(30, 90)))
    feat = torch.randn(30, 5)
    ours = GCNSSM(5, 16, 3, num_layers=4).eval()
    theirs = PygGCNSSM(5, 16, 3, num_layers=4).copy_weights_from(ours).eval()
    torch.testing.assert_close(theirs(feat, edge_index(graph)), ours(graph, feat))


def test_retimed_graph_names_round_trip():
    for kind in (TCMALLOC, COMPACT):
        assert split_label(retimed_label("random-100k", kind)) == ("random-100k", kind)
    assert split_label("random-100k") == ("random-100k", None)


def test_a_report_that_fails_half_way_leaves_the_last_one_whole(tmp_path, monkeypatch):
    # perf.csv, perf.json and perf.md are one set: a failure while rendering the last (or a
    # Ctrl-C) must not leave a new table beside an old summary.
    main([*TINY, "--sections", "time", "--out", str(tmp_path)])
    before = {name: (tmp_path / name).read_bytes() for name in ("perf.csv", "perf.json", "perf.md")}

    def fails(*args):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(perf_report, "render_markdown", fails)
    with pytest.raises(RuntimeError, match="rendering failed"):
        main([*TINY, "--sections", "time", "--depths", "3", "--out", str(tmp_path)])
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporary left


@pytest.mark.skipif(find_tcmalloc() is None, reason="tcmalloc is not installed")
def test_the_tcmalloc_environment_loads_tcmalloc_in_the_child():
    env = allocator_environment(TCMALLOC, {"PATH": "/usr/bin:/bin"})
    maps = subprocess.run(
        [sys.executable, "-c", "print(open('/proc/self/maps').read())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "tcmalloc" in maps


def test_a_report_that_cannot_be_written_is_shown_not_lost(tmp_path, monkeypatch, capsys):
    # A full disk after the measuring: one line, and the measurements in it (a traceback
    # before, and the timings gone).
    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(perf_report, "write_together", full)
    with pytest.raises(SystemExit) as stop:
        main([*TINY, "--sections", "time", "--out", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    head, _, document = err.partition("\n")
    assert head.endswith("(No space left on device); its perf.json follows, to save by hand:")
    assert {r["section"] for r in json.loads(document)["records"]} == {"time"}


@pytest.mark.slow
def test_tiny_run_writes_every_section_and_ratio(tmp_path, capsys):
    result = main([*TINY, "--out", str(tmp_path)])

    report = (tmp_path / "perf.md").read_text()
    for heading in SECTIONS:
        assert heading in report, heading
    assert "### random-300" in report
    printed = capsys.readouterr().out.splitlines()
    ratio_lines = [line for line in printed if line.startswith("ratio ")]
    expected = [
        ("time", "gcn_ssm / gcn"),
        ("time", "gcn_ssm+ckpt / gcn"),
        ("time", "gcn_ssm+ckpt / gcn_ssm"),
        ("khop", "khop(K=1) / input"),
        ("rewire", "batched / one at a time"),
        ("breakdown", "ssm layer / plain layer"),
    ]
    for section, label in expected:
        assert any(line.split()[1] == section and label in line for line in ratio_lines), label
    for variant in ("gcn", "gcn_ssm", "gcn_ssm+ckpt"):
        assert f"| random-300 | {variant} |" in report
    assert any("time per epoch, random-300" in line for line in printed)  # Compare's table
    verdicts = [line.split()[0] for line in printed if line.split()[:1] in (["PASS"], ["MISS"])]
    assert len(verdicts) == len([t for t in result["targets"] if t["verdict"] != "N/A"]) > 0
    if pyg_available() is None:
        assert any("gcn_ssm / pyg:gcn_ssm" in line for line in ratio_lines)
    else:
        assert "not installed" in report

    raw = json.loads((tmp_path / "perf.json").read_text())
    assert {r["section"] for r in raw["records"]} >= {"time", "memory", "khop", "rewire",
                                                      "breakdown"}  # fmt: skip
    assert raw["machine"]["threads"] == torch.get_num_threads()
    seconds = {r["variant"]: r["values"] for r in raw["records"] if r["section"] == "time"}
    per_round = [a / b for a, b in zip(seconds["gcn_ssm"], seconds["gcn"])]
    printed_ratio = next(line for line in ratio_lines if "gcn_ssm / gcn " in line)
    assert f"{statistics.median(per_round):.3f}" in printed_ratio
    edges = {r["variant"]: r["values"][0] for r in raw["records"] if r["metric"] == "edges"}
    assert edges["khop(K=1)"] == edges["input"] < edges["khop(K=2)"]  # K = 1 is the graph
    with open(tmp_path / "perf.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {"section", "variant", "median", "min", "max", "values"} <= set(rows[0])


@pytest.mark.slow
def test_cora_is_timed_when_its_files_are_there(tmp_path, data_dir, cache_dir):
    args = ["--graphs", "cora", "--sections", "time", "--depths", "2", "--repeats", "1"]
    args += ["--warmup", "0", "--min-time", "0", "--hidden", "8", "--backbones", "gcn", "gin"]
    args += ["--data-dir", str(data_dir), "--cache-dir", str(cache_dir), "--out", str(tmp_path)]
    main(args)
    report = (tmp_path / "perf.md").read_text()
    assert "### cora" in report and "gin_ssm" in report


def test_bench_perf_subcommand_runs_and_names_itself_in_the_report(tmp_path):
    from dgl_ssm_bench.cli import main as bench_main

    argv = ["perf", *TINY, "--sections", "time", "--out", str(tmp_path)]
    assert bench_main(argv) == 0
    report = (tmp_path / "perf.md").read_text()
    assert "`dgl-ssm-bench perf " in report and "## Time per training epoch" in report


def test_allocator_option_errors_say_what_to_do(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--allocator", "compact", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "cannot apply with --no-subprocess" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options,message",
    [
        (["--backbones", "foo"], r"Cannot time backbones \['foo'\]. Valid: gcn, gin"),
        (["--backbones", "gcn_ssm"], "give the plain name gcn; its SSM twin is timed beside it"),
        (["--backbones", "kgcn_ssm"], "kgcn_ssm: a k-hop model, which needs a rewired graph"),
        (["--hidden", "0"], "hidden must be at least 1, got 0"),
        (["--threads", "0"], "threads must be at least 1, got 0"),
        (["--synthetic-nodes", "0"], "synthetic_nodes must be at least 1, got 0"),
        (["--repeats", "0"], "repeats must be at least 1, got 0"),  # (0 divided min_time)
        # (0 layers is no model; a 0 memory depth was read as "the largest"; K = 0 measured
        # nothing; a monitor every 0 epochs never records)
        (["--depths", "0", "2"], "depths must be positive layer counts"),
        (["--reference-depths", "0"], r"reference_depths must be positive, got \(0,\)"),
        (["--deep-depth", "0"], "deep_depth must be a positive layer count, got 0"),
        (["--memory-depth", "0"], "memory_depth must be at least 1, got 0"),
        (["--khop-max-k", "0"], "khop_max_k must be at least 1, got 0"),
        (["--monitor-every", "0"], "monitor_every must be at least 1, got 0"),
    ],
)
def test_options_that_cannot_be_measured_stop_before_the_report_is_touched(
    tmp_path, capsys, options, message
):
    # A run of nothing but failures used to replace the last report with an all-N/A one.
    (tmp_path / "perf.md").write_text("the last report")
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, *options, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert (tmp_path / "perf.md").read_text() == "the last report"


@pytest.mark.skipif(find_tcmalloc() is None, reason="tcmalloc is not installed")
def test_timings_can_run_under_tcmalloc(tmp_path):
    argv = [a for a in TINY if a != "--no-subprocess"]
    main([*argv, "--sections", "time", "--allocator", "tcmalloc", "--out", str(tmp_path)])
    report = (tmp_path / "perf.md").read_text()
    assert "timings: tcmalloc (--allocator)" in report
    with open(tmp_path / "perf.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["variant"] for row in rows if row["section"] == "time"} >= {"gcn", "gcn_ssm"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--device", "cuda", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "device cuda was asked for, but" in capsys.readouterr().err


def test_the_monitor_overhead_is_a_ratio_and_a_target(tmp_path, data_dir, cache_dir, capsys):
    args = ["--graphs", "cora", "--sections", "monitor", "--depths", "2", "--repeats", "2"]
    args += ["--warmup", "1", "--min-time", "0", "--hidden", "8", "--monitor-every", "2"]
    args += ["--data-dir", str(data_dir), "--cache-dir", str(cache_dir), "--out", str(tmp_path)]
    result = main([*args, "--no-subprocess"])
    printed = capsys.readouterr().out
    assert "[monitor] cora 2 layers:" in printed
    spectra, entries = map(int, re.search(r"for (\d+) of (\d+) recorded epochs", printed).groups())
    assert entries >= 1 and spectra <= entries  # the monitored variant did record
    (found,) = [r for r in result["ratios"] if r["section"] == "monitor"]
    assert (found["numerator"], found["denominator"], found["depth"]) == (
        "gcn_ssm+monitor", "gcn_ssm", 2)  # fmt: skip
    (goal,) = [t for t in result["targets"] if t["name"].startswith("monitored (every 2)")]
    assert goal["verdict"] in ("PASS", "MISS") and goal["ratio"] == found


def test_the_deep_section_sets_the_checkpointed_deep_model_against_64_layers(
    tmp_path, data_dir, cache_dir, capsys
):
    args = ["--graphs", "cora", "--sections", "deep", "--depths", "2", "--repeats", "2",
            "--hidden", "8", "--deep-depth", "96", "--data-dir", str(data_dir),
            "--cache-dir", str(cache_dir), "--out", str(tmp_path)]  # fmt: skip
    result = main(args)
    printed = capsys.readouterr().out
    assert "[deep] cora 64 layers gcn_ssm: peak" in printed
    assert (
        "[deep] cora 96 layers gcn_ssm+ckpt: peak" in printed and "the 64-layer model's" in printed
    )
    records = {(r["variant"], r["metric"]): r for r in result["records"].values()}
    assert records["gcn_ssm", "peak_mb"]["depth"] == 64
    assert records["gcn_ssm+ckpt", "seconds"]["depth"] == 96
    assert len(records["gcn_ssm+ckpt", "seconds"]["values"]) == 2  # --repeats epochs timed
    found = {r["metric"]: r for r in result["ratios"] if r["section"] == "deep"}
    for metric in ("peak_mb", "seconds"):
        deep, base = (statistics.median(records[v, metric]["values"])
                      for v in ("gcn_ssm+ckpt", "gcn_ssm"))  # fmt: skip
        assert found[metric]["value"] == pytest.approx(deep / base)
    (goal,) = [t for t in result["targets"] if t["name"].startswith("checkpointed GCN-SSM at 96")]
    assert goal["goal"] == "≤ 2" and goal["ratio"] == found["peak_mb"]
    assert "## 1024 layers" not in (report := (tmp_path / "perf.md").read_text())
    assert "## 96 layers" in report and "| cora | 96 | gcn_ssm+ckpt |" in report


def test_a_failed_deep_measurement_leaves_no_reference_and_an_unmeasured_target():
    from dgl_ssm_bench.perf.report import _deep_section

    config = PerfConfig(graphs=("cora",), sections=("deep",))
    records = {}
    put(records, "deep", "cora", "gcn_ssm", "peak_mb", depth=64, status="over budget")
    put(records, "deep", "cora", "gcn_ssm+ckpt", "peak_mb", [98.0], depth=1024)
    put(records, "deep", "cora", "gcn_ssm+ckpt", "seconds", [16.0, 17.0], depth=1024)
    ratios = all_ratios(records, config)
    assert not [r for r in ratios if r["section"] == "deep"]
    (goal,) = [t for t in evaluate_targets(ratios, config, "cora") if "1024 layers" in t["name"]]
    assert goal["verdict"] == "N/A"
    rows = [line for line in _deep_section(config, records, ratios) if line.startswith("| cora")]
    assert rows and all(row.endswith("| — |") for row in rows)


@pytest.mark.parametrize("option", ["--data-dir", "--cache-dir"])
def test_missing_cora_files_or_a_bad_cache_fail_before_measuring_in_one_line(
    tmp_path, capsys, option
):
    (tmp_path / "file").write_text("")
    bad = {"--data-dir": tmp_path / "nothing", "--cache-dir": tmp_path / "file" / "cache"}
    argv = [*TINY, "--graphs", "cora", "--sections", "time", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, option, str(bad[option])])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    expected = "No raw cora files" if option == "--data-dir" else "as the data cache"
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_perf_errors_under_the_root_command_name_the_subcommand(tmp_path, capsys):
    from dgl_ssm_cli import main as root_main

    argv = ["perf", *TINY, "--graphs", "cora", "--data-dir", str(tmp_path / "nothing")]
    with pytest.raises(SystemExit) as exit_info:
        root_main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("dgl-ssm perf: error: No raw cora files")


def test_gpp_sized_graphs_are_the_generators_graphs():
    graphs = gpp_sized_graphs(12, seed=3)
    assert [g.num_nodes() for g in graphs] == [25 + i % 10 for i in range(12)]
    for i, graph in enumerate(graphs):
        edges, *_ = generate_graph(25 + i % 10, 3 + i)
        pairs = {tuple(e) for e in edges.tolist()}
        src, dst = (t.tolist() for t in graph.edges())
        assert set(zip(src, dst)) == pairs | {(v, u) for u, v in pairs}  # both directions
        assert graph.in_degrees().min() > 0  # the generator redraws isolated nodes


def test_the_rewire_timings_run_under_the_allocator_asked_for(monkeypatch):
    # A timing, as the time and monitor sections: --allocator (here its default, glibc's),
    # not the compact allocator the memory section measures under.
    config = PerfConfig(sections=("rewire",), memory_budget_gb=1.0)
    used = []

    def fake_isolated(function, args, budget_mb, allocator, fresh):
        used.append((function.__name__, allocator))
        return {"status": "failed", "message": "not run"}

    monkeypatch.setattr(runner.isolation, "isolated", fake_isolated)
    runner._rewire_section(config, lambda *_: None, {})
    assert used == [("rewire_cost", "default")]


def test_the_rewire_section_times_both_ways_and_flags_different_graphs(tmp_path, monkeypatch,
                                                                        capsys):  # fmt: skip
    args = ["--graphs", "synthetic", "--synthetic-nodes", "300", "--synthetic-edges", "1500",
            "--sections", "rewire", "--rewire-graphs", "6", "--repeats", "2", "--warmup", "0",
            "--min-time", "0", "--no-subprocess"]  # fmt: skip
    result = main([*args, "--out", str(tmp_path / "a")])
    assert "the same graphs" in capsys.readouterr().out
    (found,) = [r for r in result["ratios"] if r["section"] == "rewire"]
    assert (found["numerator"], found["denominator"]) == ("batched", "one at a time")
    assert "## k-hop rewiring of many small graphs" in (tmp_path / "a" / "perf.md").read_text()

    real = dgl_ssm_bench.train.prepare_graphs

    def drops_an_edge(graphs, config):
        prepared = real(graphs, config)
        prepared[-1] = dgl.remove_edges(prepared[-1], [0])
        return prepared

    def drops_a_graph(graphs, config):
        return real(graphs, config)[:-1]

    for name, wrong in (("edge", drops_an_edge), ("graph", drops_a_graph)):
        monkeypatch.setattr(dgl_ssm_bench.train, "prepare_graphs", wrong)
        result = main([*args, "--out", str(tmp_path / name)])
        assert "DIFFERENT graphs" in capsys.readouterr().out, name
        assert not [r for r in result["ratios"] if r["section"] == "rewire"]
        report = (tmp_path / name / "perf.md").read_text()
        assert "rewire, gpp-sized: different graphs" in report


class IdleMonitor:
    """A TrainingMonitor that records nothing: the timing code's bookkeeping alone."""

    entries = []

    def __init__(self, every):
        pass

    def close(self):
        pass


def test_the_monitor_section_reports_seconds_per_epoch_not_per_block(monkeypatch):
    # Every "epoch" costs exactly 1 s (the fake timer counts epochs); a block is
    # monitor_every = 4 epochs, so each variant's per-epoch time must be 1.0, not 4.0.
    epochs, watched = [], []

    def fake_make_epoch(*args, monitor=None, **kwargs):
        if monitor is None:
            return lambda: epochs.append(1)
        return lambda watch: epochs.append(1) or watched.append(watch)

    monkeypatch.setattr(measure, "load_graph", lambda *a, **k: None)
    monkeypatch.setattr(measure, "make_epoch", fake_make_epoch)

    monkeypatch.setattr(dgl_ssm_bench.monitor, "TrainingMonitor", IdleMonitor)

    def fake_interleaved(runs, rounds, warmup=0, round_seconds=0.0, label="", description=""):
        measured = {}
        for key, run in runs.items():
            measured[key] = []
            for _ in range(rounds):
                epochs.clear()
                run()
                measured[key].append(Measurement(1, [float(len(epochs))], TaskSpec("run()", "")))
        return measured

    monkeypatch.setattr(measure, "interleaved", fake_interleaved)
    config = SimpleNamespace(
        threads=0, hidden=8, monitor_every=4, min_time=0.0, repeats=2, warmup=0, seed=0
    )
    found = measure.time_monitor(config, None, 2, "label", "cpu")
    for key in ("gcn_ssm", "gcn_ssm+monitor"):
        assert [m.median for m in found["measurements"][key]] == [1.0, 1.0]
    # The monitor records the first epoch of each block of 4, as `--monitor 4` would.
    assert watched == [True, False, False, False] * 2


def test_same_graph_compares_the_edges_not_only_the_node_count():
    a = dgl.graph(([0, 1], [1, 2]), num_nodes=3)
    assert measure._same_graph(a, dgl.graph(([0, 1], [1, 2]), num_nodes=3))
    assert not measure._same_graph(a, dgl.graph(([0, 2], [1, 1]), num_nodes=3))  # other edges
    assert not measure._same_graph(a, dgl.graph(([1, 0], [2, 1]), num_nodes=3))  # other order


def test_a_ratio_exactly_at_its_goal_passes():
    # The goals read "≤ threshold" (e.g. checkpointed peak ≤ 0.25 of the plain model's).
    assert target("t", 0.25, {"value": 0.25})["verdict"] == "PASS"
    assert target("t", 0.25, {"value": 0.2500001})["verdict"] == "MISS"
    assert target("t", 0.25, None)["verdict"] == "N/A"


def test_without_64_layers_the_time_target_is_read_at_the_deepest_timed_depth():
    config = PerfConfig(depths=(2, 8), memory_depth=8, reference_depths=(2,))
    records = {}
    for depth, ssm in ((2, [3.0, 3.0]), (8, [1.05, 1.05])):  # 3.0 at 2 layers, 1.05 at 8
        put(records, "time", "g", "gcn", "seconds", [1.0, 1.0], depth=depth)
        put(records, "time", "g", "gcn_ssm", "seconds", ssm, depth=depth)
    targets = evaluate_targets(all_ratios(records, config), config, "g")
    (time,) = [t for t in targets if t["name"].startswith("gcn_ssm / gcn time per epoch")]
    assert time["name"] == "gcn_ssm / gcn time per epoch, 8 layers, g"
    assert time["note"] == "read at 8 layers (64 not timed)"
    assert time["ratio"]["value"] == pytest.approx(1.05) and time["verdict"] == "PASS"


def test_the_high_water_mark_is_in_the_same_mb_as_the_resident_set():
    meter = PeakMeter("cpu")
    if not meter.resettable:
        pytest.skip("the mark cannot be reset here")
    meter.start()  # the mark is now the resident set: both in MiB (VmHWM is in KiB)
    assert resident_mb() * 0.995 <= meter.peak_total_mb() <= resident_mb() * 1.005


@pytest.mark.skipif(not os.access(memory.CLEAR_REFS, os.W_OK), reason="no resettable mark")
def test_on_linux_a_second_stretch_has_its_own_peak(monkeypatch):
    monkeypatch.setattr(PeakMeter, "_started_in_process", False)
    first, second = PeakMeter("cpu"), PeakMeter("cpu")
    first.start()
    block = mmap.mmap(-1, 64 * 2**20)
    for offset in range(0, len(block), mmap.PAGESIZE):
        block[offset] = 1
    block.close()
    assert first.peak_mb() > 60
    second.start()  # after the 64 MB were freed: they are not the second stretch's
    assert second.peak_total_mb() is not None and second.peak_mb() < 32


def _round(*seconds, variant="v"):
    """One round's Measurement: ``seconds`` per block (median ≠ mean when they are skewed)."""
    task = TaskSpec("run()", "", label="time", sub_label=variant, description="d")
    return Measurement(1, list(seconds), task)


def test_a_ratio_is_placed_at_its_numerators_depth_and_k():
    # The deep ratio sets 1024 layers against 64: it was measured at 1024 (the numerator's);
    # the k-hop peak ratio at K = 1, the numerator's, and at the plain peak's 64 layers (the
    # numerator has no depth).
    config = PerfConfig(depths=(2, 64), graphs=("cora",), sections=("deep", "khop", "memory"))
    records = {}
    put(records, "deep", "cora", "gcn_ssm", "peak_mb", [100.0], depth=64)
    put(records, "deep", "cora", "gcn_ssm+ckpt", "peak_mb", [150.0], depth=1024)
    put(records, "memory", "cora", "gcn", "peak_mb", [400.0], depth=64)
    put(records, "khop", "cora", "input", "edges", [1000], k=0)
    put(records, "khop", "cora", "khop(K=1)", "edges", [1000], k=1)
    put(records, "khop", "cora", "khop(K=1)", "peak_mb", [40.0], k=1)
    found = {(r["section"], r["metric"]): r for r in all_ratios(records, config)}
    assert (found["deep", "peak_mb"]["depth"], found["deep", "peak_mb"]["value"]) == (1024, 1.5)
    assert (found["khop", "peak_mb"]["depth"], found["khop", "peak_mb"]["k"]) == (64, 1)


def test_the_khop_time_ratio_is_against_the_plain_epoch_at_the_shallowest_depth():
    # Depths given out of order are sorted: the k-hop cost is set against one plain epoch at
    # 2 layers (1 s), not at the deepest, 64 (10 s).
    config = PerfConfig(depths=(64, 2, 2), sections=("time", "khop"))
    assert config.depths == (2, 64)
    records = {}
    put(records, "time", "g", "gcn", "seconds", [1.0], depth=2)
    put(records, "time", "g", "gcn", "seconds", [10.0], depth=64)
    put(records, "khop", "g", "input", "edges", [1000], k=0)
    put(records, "khop", "g", "khop(K=1)", "edges", [1000], k=1)
    put(records, "khop", "g", "khop(K=1)", "seconds", [0.5], k=1)
    (found,) = [r for r in all_ratios(records, config) if r["metric"] == "seconds"]
    assert (found["numerator"], found["denominator"], found["value"]) == ("khop(K=1)", "gcn", 0.5)


def test_targets_read_the_default_allocator_the_memory_depth_and_the_deepest_reference():
    config = PerfConfig(depths=(2, 16, 64), memory_depth=16, reference_depths=(2, 16))
    records = {}
    # 64 layers timed under both allocators: the default one's ratio (1.05) is the target's,
    # the tcmalloc one (1.2) only stands in when the default one is missing.
    put(records, "time", "g", "gcn", "seconds", [1.0], depth=64)
    put(records, "time", "g", "gcn_ssm", "seconds", [1.05], depth=64)
    put(records, "time", retimed_label("g", TCMALLOC), "gcn", "seconds", [1.0], depth=64)
    put(records, "time", retimed_label("g", TCMALLOC), "gcn_ssm", "seconds", [1.2], depth=64)
    # --memory-depth 16: checkpointing is read at 16 layers, not at the largest depth.
    for variant, peak in {"gcn": [400.0], "gcn_ssm": [400.0], "gcn_ssm+ckpt": [80.0]}.items():
        put(records, "memory", "g", variant, "peak_mb", peak, depth=16)
    # PyG timed at 2 and 16 layers (64 not among the reference depths): read at 16.
    for depth, ours in ((2, [3.0]), (16, [0.9])):
        put(records, "time", "g", "pyg:gcn_ssm", "seconds", [1.0], depth=depth)
        put(records, "time", "g", "gcn_ssm", "seconds", ours, depth=depth)
    verdicts = {t["name"]: (t["verdict"], t["ratio"] and t["ratio"]["value"])
                for t in evaluate_targets(all_ratios(records, config), config, "g")}  # fmt: skip
    assert verdicts["gcn_ssm / gcn time per epoch, 64 layers, g"] == ("PASS", pytest.approx(1.05))
    assert verdicts["checkpointed / gcn peak memory, 16 layers, g (≥ 4× lower)"] == ("PASS", 0.2)
    assert verdicts["ours / PyG GCN-SSM time per epoch, 16 layers, g (aim)"] == ("PASS", 0.9)


def test_the_monitor_overhead_goal_is_at_most_ten_percent():
    config = PerfConfig(depths=(2,), sections=("monitor",), monitor_every=10)
    for seconds, verdict in ((1.1, "PASS"), (1.15, "MISS")):
        records = {}
        put(records, "monitor", "cora", "gcn_ssm", "seconds", [1.0], depth=2)
        put(records, "monitor", "cora", "gcn_ssm+monitor", "seconds", [seconds], depth=2)
        targets = evaluate_targets(all_ratios(records, config), config, "cora")
        (goal,) = [t for t in targets if t["name"].startswith("monitored (every 10)")]
        assert (goal["goal"], goal["verdict"]) == ("≤ 1.1", verdict)


def test_the_report_table_holds_median_min_max_and_each_depths_own_ratio(tmp_path):
    config = PerfConfig(out=tmp_path, depths=(2, 8), sections=("time",), graphs=("synthetic",))
    records = {}
    put(records, "time", "g", "gcn", "seconds", [1.0, 1.0, 1.0, 1.0], depth=2)
    put(records, "time", "g", "gcn_ssm", "seconds", [3.0, 1.0, 2.0, 10.0], depth=2)
    put(records, "time", "g", "gcn", "seconds", [1.0], depth=8)
    put(records, "time", "g", "gcn_ssm", "seconds", [7.0], depth=8)
    put(records, "memory", "g", "gcn_ssm+ckpt", "peak_mb", [1234.5678], depth=8)
    ratios = all_ratios(records, config)
    targets = evaluate_targets(ratios, config, "g")
    meta = {"machine_lines": [], "command": "perf", "wall_s": 0.0, "graphs": [],
            "reference": "", "breakdown_ops": {}, "notes": []}  # fmt: skip
    perf_report.write_report(tmp_path, config, records, ratios, targets, meta)
    with open(tmp_path / "perf.csv") as handle:
        rows = {(r["depth"], r["variant"]): r for r in csv.DictReader(handle)}
    # 3, 1, 2, 10: median 2.5 (mean 4), min 1, max 10
    row = rows["2", "gcn_ssm"]
    assert (row["median"], row["min"], row["max"], row["n"]) == ("2.5", "1.0", "10.0", "4")
    assert rows["8", "gcn"]["values"] == "1" and rows["2", "gcn_ssm"]["values"] == "3 1 2 10"
    assert rows["8", "gcn_ssm+ckpt"]["values"] == "1234.57"  # 6 digits, as perf.json's
    # perf.json keeps the verdicts too: 7 s / 1 s at 8 layers misses the 1.1 goal.
    written = json.loads((tmp_path / "perf.json").read_text())["targets"]
    assert {t["name"]: t["verdict"] for t in written}[
        "gcn_ssm / gcn time per epoch, 8 layers, g"] == "MISS"  # fmt: skip
    lines = (tmp_path / "perf.md").read_text().splitlines()
    (at_2,) = [line for line in lines if line.startswith("| 2 | gcn_ssm |")]
    assert at_2.startswith("| 2 | gcn_ssm | 2.5 [1–10] n=4 |")  # median [min–max]
    assert at_2.endswith("| / gcn: 2.500 [1.000–10.000] |")  # not also the 8-layer 7.000
    # The plain model is the reference of its ratios (an "ours / PyG" cell is PyG's row only).
    (plain,) = [line for line in lines if line.startswith("| 2 | gcn |")]
    assert plain == "| 2 | gcn | 1 [1–1] n=4 | 1 (reference) |"
    (at_8,) = [line for line in lines if line.startswith("| 8 | gcn_ssm |")]
    assert at_8.endswith("| / gcn: 7.000 |")


def test_time_records_are_round_medians_and_the_deepest_fitting_depth_is_timed_again(
    monkeypatch,
):
    # 2 and 8 layers fit under the default allocator, 32 does not: 8 (the deepest that fitted,
    # to compare the allocators on) and 32 are timed again. Each round's value is its median.
    config = PerfConfig(depths=(2, 8, 32), memory_budget_gb=1.0, sections=("time",), repeats=2)
    calls = []

    def measure(variants):
        return {v: [_round(1.0, 2.0, 6.0, variant=v), _round(4.0, 5.0, 30.0, variant=v)]
                for v in variants}  # fmt: skip

    monkeypatch.setattr(runner.isolation, "isolated", isolated_fitting(8, calls, measure))
    monkeypatch.setattr(runner.isolation, "deep_allocator", lambda: TCMALLOC)
    records = {}
    runner._time_section(config, GraphSpec("synthetic", 10, 20), "cpu", lambda *_: None, records)
    assert calls == [(2, "default"), (8, "default"), (32, "default"),
                     (8, TCMALLOC), (32, TCMALLOC)]  # fmt: skip
    assert records[("time", "random-10", "gcn_ssm", "seconds", 2, None)]["values"] == [2.0, 5.0]

    # Asked for another allocator, a depth over budget stays over budget: it is not retimed
    # under a third one that the report would call glibc's fallback.
    config = PerfConfig(depths=(2, 32), memory_budget_gb=1.0, sections=("time",),
                        allocator=COMPACT)  # fmt: skip
    calls.clear()
    monkeypatch.setattr(
        runner.isolation,
        "isolated",
        lambda f, args, b, allocator, fresh: (
            calls.append((args[2], allocator)) or {"status": "over budget", "message": "over"}
        ),
    )
    runner._time_section(config, GraphSpec("synthetic", 10, 20), "cpu", lambda *_: None, {})
    assert calls == [(2, COMPACT), (32, COMPACT)]


def test_each_section_measures_where_and_under_the_allocator_it_reports(monkeypatch):
    # Peak memory under the compact allocator at --memory-depth; the deep section's peak under
    # compact and its times under --allocator; the monitor at the deepest timed depth; every
    # child within the budget in MiB (GB here are GiB, as psutil's figures are divided).
    config = PerfConfig(depths=(2, 16), memory_depth=8, memory_budget_gb=2.0, deep_depth=96,
                        sections=("memory", "deep", "monitor"), repeats=2)  # fmt: skip
    calls = []

    def fake_isolated(function, args, budget_mb, allocator, fresh):
        calls.append((function.__name__, args[2:], allocator, budget_mb))
        if function.__name__ == "time_monitor":
            rounds = [_round(1.0), _round(1.0)]
            return {"status": "ok", "measurements": {"gcn_ssm": rounds, "gcn_ssm+monitor": rounds},
                    "entries": 1, "with_spectra": 1, "helper_cpu_s": 0.0}  # fmt: skip
        return {"status": "ok", "peak_mb": 10.0, "seconds": 1.0, "method": "m",
                "epoch_seconds": [1.0, 2.0]}  # fmt: skip

    monkeypatch.setattr(runner.isolation, "isolated", fake_isolated)
    records, spec = {}, GraphSpec("cora")
    runner._memory_section(config, GraphSpec("synthetic", 10, 20), "cpu", lambda *_: None, records)
    runner._deep_section(config, spec, "cpu", lambda *_: None, records)
    runner._monitor_section(config, spec, "cpu", lambda *_: None, records)
    assert {budget for *_, budget in calls} == {2048.0}
    memory = [(args, allocator) for name, args, allocator, _ in calls[:3]]
    assert memory == [(("gcn", "cpu"), COMPACT), (("gcn_ssm", "cpu"), COMPACT),
                      (("gcn_ssm+ckpt", "cpu"), COMPACT)]  # fmt: skip
    assert {(r["variant"], r["depth"]) for r in records.values() if r["section"] == "memory"} == {
        ("gcn", 8), ("gcn_ssm", 8), ("gcn_ssm+ckpt", 8)}  # fmt: skip
    deep = [(args, allocator) for name, args, allocator, _ in calls[3:7]]
    assert deep == [(("gcn_ssm", "cpu", 64), COMPACT), (("gcn_ssm", "cpu", 64, 2), "default"),
                    (("gcn_ssm+ckpt", "cpu", 96), COMPACT),
                    (("gcn_ssm+ckpt", "cpu", 96, 2), "default")]  # fmt: skip
    assert calls[7][:2] == ("time_monitor", (16, "monitor every 10, cora", "cpu"))


def test_each_measurement_builds_the_model_and_depth_it_reports(monkeypatch):
    built, timed = [], []
    monkeypatch.setattr(measure, "load_graph", lambda *a, **k: None)

    def fake_make_epoch(variant, data, depth, hidden, seed=0, monitor=None):
        built.append((variant, depth))
        return lambda *_: None

    def fake_interleaved(runs, rounds, warmup=0, round_seconds=0.0, label="", description=""):
        timed.append((sorted(runs), rounds, round_seconds))
        return {key: [_round(1.0) for _ in range(rounds)] for key in runs}

    monkeypatch.setattr(measure, "make_epoch", fake_make_epoch)
    monkeypatch.setattr(measure, "interleaved", fake_interleaved)
    monkeypatch.setattr(dgl_ssm_bench.monitor, "TrainingMonitor", IdleMonitor)
    config = PerfConfig(depths=(2, 16), hidden=8, repeats=4, min_time=2.0, monitor_every=5)
    # The deep section's 96 layers, not the memory section's 16.
    assert epoch_memory(config, None, "gcn_ssm+ckpt", "cpu", 96)["status"] == "ok"
    assert built == [("gcn_ssm+ckpt", 96)]
    # Monitored and unmonitored runs are both GCN-SSM (the overhead is the monitor's alone).
    measure.time_monitor(config, None, 16, "label", "cpu")
    assert built[1:] == [("gcn_ssm", 16), ("gcn_ssm", 16)]
    # A round times a block of monitor_every = 5 epochs: 2 s × 5 epochs over 4 rounds.
    assert timed[-1] == (["gcn_ssm", "gcn_ssm+monitor"], 4, 2.5)
    # min_time is each model's time over all rounds: 2 s in 4 rounds of 0.5 s.
    measure.time_epochs(config, None, 2, ["gcn", "gcn_ssm"], "label", "cpu")
    assert timed[-1] == (["gcn", "gcn_ssm"], 4, 0.5)


def test_the_khop_cost_stops_at_the_first_k_over_max_edges(monkeypatch):
    tried = []

    class Transform:
        def __init__(self, k, max_edges):
            self.k = k

        def __call__(self, graph):
            tried.append(self.k)
            if self.k >= 2:
                raise ValueError("would exceed max_edges")
            return graph

    monkeypatch.setattr(measure, "KHopTransform", Transform)
    config = PerfConfig(depths=(2,), khop_max_k=5)
    out = khop_cost(config, GraphSpec("synthetic", 20, 40))
    assert tried == [1, 2]  # a larger K only has more edges
    assert [(s["k"], s["status"]) for s in out["steps"]] == [(1, "ok"), (2, "exceeds max_edges")]


def test_the_compact_allocator_replaces_an_mmap_threshold_already_set():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("a glibc tunable")
    env = allocator_environment(
        COMPACT, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576:glibc.malloc.arena_max=2"}
    )
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"


def test_every_k_hop_step_up_to_khop_max_k_gets_its_ratios():
    config = PerfConfig(depths=(2,), sections=("khop",), khop_max_k=2)
    records = {}
    put(records, "khop", "g", "input", "edges", [1000], k=0)
    for k, edges in ((1, 1000), (2, 4000)):
        put(records, "khop", "g", f"khop(K={k})", "edges", [edges], k=k)
    found = {(r["k"], r["metric"]): r["value"] for r in all_ratios(records, config)}
    assert found == {(1, "edges"): 1.0, (2, "edges"): 4.0}  # K = 2, the last, too


def test_the_pyg_aim_is_read_at_a_timed_depth_and_the_deep_goal_only_when_deep_runs():
    # Default reference depths 2 and 64 with 64 not timed: the aim is read at 2 layers (not
    # "N/A at 64"). The deep section was not selected: it has no goal in the list.
    config = PerfConfig(depths=(2, 8), graphs=("cora",), sections=("time", "reference"))
    records = {}
    put(records, "time", "cora", "pyg:gcn_ssm", "seconds", [2.0], depth=2)
    put(records, "time", "cora", "gcn_ssm", "seconds", [1.0], depth=2)
    targets = evaluate_targets(all_ratios(records, config), config, "cora")
    names = {t["name"]: (t["verdict"], t["ratio"] and t["ratio"]["value"]) for t in targets}
    assert names["ours / PyG GCN-SSM time per epoch, 2 layers, cora (aim)"] == ("PASS", 0.5)
    assert not [name for name in names if name.startswith("checkpointed GCN-SSM at")]


def _machine(**changes):
    """An idle 2-core machine, as ``runner.describe_machine`` describes one."""
    return {"load_before": (1.0, 1.0, 1.0), "load_after": (1.0, 1.0, 1.0), "cores": 2,
            "op_latency_ms": 0.01, "op_latency_after_ms": 0.01, "threads": 2,
            **changes}  # fmt: skip


def test_the_notes_say_what_disturbed_the_run_and_what_failed():
    config = PerfConfig(depths=(2,))
    assert runner._notes({}, _machine(), config) == []
    # Busy above 1.25 × the cores (2.5 of 2 is not above); a tiny op slow before or after,
    # which only matters when torch runs more than one thread.
    assert runner._notes({}, _machine(load_after=(2.5, 1.0, 1.0)), config) == []
    (busy,) = runner._notes({}, _machine(load_after=(2.6, 1.0, 1.0)), config)
    assert busy.startswith("The machine was busy (load average up to 2.6 on 2 cores)")
    (stalled,) = runner._notes({}, _machine(op_latency_after_ms=0.75), config)
    assert stalled.startswith("A tiny parallel op took 0.75 ms")
    assert runner._notes({}, _machine(op_latency_ms=0.75, threads=1), config) == []
    # A k-hop step stopped at max_edges is a result; a depth over the budget is a failure.
    records = {}
    put(records, "khop", "g", "khop(K=3)", "edges", k=3, status="exceeds max_edges", note="big")
    put(records, "time", "g", "gcn", "seconds", depth=8, status="over budget", note="2 GB")
    assert runner._notes(records, _machine(), config) == ["time, g at 8 layers: over budget — 2 GB"]
    (here,) = runner._notes({}, _machine(), PerfConfig(depths=(2,), subprocess=False))
    assert "(--no-subprocess)" in here


def test_each_depth_times_the_variants_it_reports(monkeypatch):
    # Checkpointing at --memory-depth (where its targets are read), not at the largest depth;
    # PyG only at the reference depths; --quick times PyG at both of its depths.
    monkeypatch.setattr(runner, "pyg_available", lambda: None)
    config = PerfConfig(depths=(2, 8, 64), memory_depth=8, reference_depths=(2, 64))
    assert [runner.variants_at(config, d) for d in (2, 8, 64)] == [
        ["gcn", "gcn_ssm", "pyg:gcn_ssm"],
        ["gcn", "gcn_ssm", "gcn_ssm+ckpt"],
        ["gcn", "gcn_ssm", "pyg:gcn_ssm"],
    ]
    quick = config_from_args(build_parser().parse_args(["--quick"]))
    assert runner.variants_at(quick, 16) == ["gcn", "gcn_ssm", "gcn_ssm+ckpt", "pyg:gcn_ssm"]


def test_the_default_memory_budget_is_80_percent_of_the_memory_available(tmp_path, monkeypatch):
    memory_now = SimpleNamespace(total=16 * 2**30, available=10 * 2**30)
    monkeypatch.setattr(runner.psutil, "virtual_memory", lambda: memory_now)
    main([*TINY, "--sections", "time", "--out", str(tmp_path)])
    config = json.loads((tmp_path / "perf.json").read_text())["config"]
    assert config["memory_budget_gb"] == pytest.approx(8.0)


def test_same_graph_compares_node_and_edge_data_too():
    a = dgl.graph(([0, 1], [1, 2]), num_nodes=3)
    b = dgl.graph(([0, 1], [1, 2]), num_nodes=3)
    a.ndata["hop"], b.ndata["hop"] = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])
    a.edata["w"], b.edata["w"] = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    assert measure._same_graph(a, b)
    b.edata["w"] = torch.tensor([1.0, 3.0])
    assert not measure._same_graph(a, b)
    b.edata["w"], b.ndata["hop"] = torch.tensor([1.0, 2.0]), torch.tensor([0, 2, 2])
    assert not measure._same_graph(a, b)


def test_the_breakdown_times_at_least_5_rounds_and_lists_ops_whose_count_differs(monkeypatch):
    timed = []

    def fake_interleaved(runs, rounds, warmup=0, round_seconds=0.0, label="", description=""):
        timed.append((rounds, warmup, round_seconds))
        return {}

    tables = {"plain layer": {"mm": (2, 0.5), "relu": (1, 0.1), "add": (1, 0.2)},
              "ssm layer": {"mm": (3, 0.1), "relu": (1, 0.9), "mul": (1, 0.3)}}  # fmt: skip
    monkeypatch.setattr(measure, "interleaved", fake_interleaved)
    monkeypatch.setattr(measure, "layer_parts", lambda *a: {k: k for k in tables})
    monkeypatch.setattr(measure, "_op_table", lambda run, repeats, device: tables[run])
    data = SimpleNamespace(spec=GraphSpec("synthetic", 10, 20), feat=torch.zeros(1))
    config = PerfConfig(depths=(2,), repeats=1, warmup=0, min_time=1.0)
    _, ops = measure.breakdown(config, data)
    assert timed == [(5, 1, 0.2)]  # max(5, 3 × 1) rounds sharing 1 s, one warm-up
    # relu: the same count (only its time differs); by |Δ ms|: mm −0.4, mul +0.3, add −0.2
    assert [(o["op"], o["plain_calls"], o["ssm_calls"]) for o in ops] == [
        ("mm", 2, 3), ("mul", 0, 1), ("add", 1, 0)]  # fmt: skip
    assert [o["delta_ms"] for o in ops] == pytest.approx([-0.4, 0.3, -0.2])


def test_synthetic_graphs_are_named_by_their_size():
    assert [GraphSpec("synthetic", n).name for n in (1_000_000, 100_000, 1500, 2_000_000)] == [
        "random-1M", "random-100k", "random-1500", "random-2M"]  # fmt: skip
    assert GraphSpec("cora", 2708).name == "cora"


def test_the_khop_peak_says_when_it_is_cumulative_over_k(monkeypatch):
    # Without a high-water reset (not Linux) the peak of K = 2 includes K = 1's: its note says so.
    for resettable, note in (
        (True, ""),
        (False, "peak is cumulative over K (no high-water reset)"),
    ):
        step = dict(k=1, edges=40, status="ok", seconds=0.1, peak_mb=5.0, message="")
        out = {"status": "ok", "input_edges": 20, "steps": [step], "resettable": resettable}
        monkeypatch.setattr(runner.isolation, "isolated", lambda *args, out=out: out)
        records = {}
        config = PerfConfig(depths=(2,), memory_budget_gb=1.0)
        runner._khop_section(config, GraphSpec("synthetic", 10, 20), lambda *_: None, records)
        peak = records[("khop", "random-10", "khop(K=1)", "peak_mb", None, 1)]
        assert (peak["values"], peak["note"]) == ([5.0], note)
        assert records[("khop", "random-10", "input", "edges", None, 0)]["values"] == [20]


def test_the_breakdown_table_is_in_milliseconds():
    config = PerfConfig(depths=(2,), sections=("breakdown",))
    records = {}
    put(records, "breakdown", "g", "plain layer", "seconds", [0.002, 0.004, 0.003])
    put(records, "breakdown", "g", "ssm layer", "seconds", [0.004, 0.008, 0.006])
    lines = perf_report._breakdown_section(records, all_ratios(records, config), {})
    assert "| g | plain layer | 3 [2–4] n=3 | 1 (reference) |" in lines
    assert "| g | ssm layer | 6 [4–8] n=3 | / plain layer: 2.000 |" in lines  # (exact halves)


def test_only_the_goals_of_the_sections_run_are_listed_and_off_depth_ones_say_so():
    # `perf --sections monitor` listed four "N/A ... not measured" goals of sections not
    # asked for; `perf --quick` judged the checkpoint and monitor goals at 16 layers with no
    # word that they were set for 128 and 64 (0.497 "MISS" against ≤ 0.25).
    config = PerfConfig(depths=(2, 16), sections=("monitor",))
    records = {}
    put(records, "monitor", "cora", "gcn_ssm", "seconds", [1.0], depth=16)
    put(records, "monitor", "cora", "gcn_ssm+monitor", "seconds", [1.2], depth=16)
    targets = evaluate_targets(all_ratios(records, config), config, "cora")
    assert [(t["verdict"], t["note"]) for t in targets] == [("MISS", "goal set for 64 layers")]
    config, records = PerfConfig(depths=(2, 16), sections=("memory",)), {}
    for variant, peak in {"gcn": [100.0], "gcn_ssm": [100.0], "gcn_ssm+ckpt": [50.0]}.items():
        put(records, "memory", "g", variant, "peak_mb", peak, depth=16)
    targets = evaluate_targets(all_ratios(records, config), config, "g")
    assert [(t["name"], t["note"]) for t in targets] == [
        ("checkpointed / gcn peak memory, 16 layers, g (≥ 4× lower)", "goal set for 128 layers"),
        ("checkpointed / gcn_ssm peak memory, 16 layers, g (≥ 4× lower)",
         "goal set for 128 layers"),
    ]  # fmt: skip
    at_128 = PerfConfig(depths=(2, 128), sections=("memory",))
    assert all(t["note"] == "" for t in evaluate_targets([], at_128, "g"))
