"""Smoke tests of the performance benchmark (``python -m benchmarks.perf``).

They check that a tiny run goes end to end and reports every section and ratio; they assert
no timings (those depend on the machine).
"""

import csv
import json
import subprocess
import sys

import dgl
import pytest
import torch

from benchmarks.perf import main
from benchmarks.perf.allocator import (
    COMPACT,
    TCMALLOC,
    allocator_environment,
    find_tcmalloc,
    retimed_label,
    split_label,
)
from benchmarks.perf.cli import build_parser, config_from_args
from benchmarks.perf.graphs import GraphSpec
from benchmarks.perf.isolation import run_jobs
from benchmarks.perf.reference import pyg_available

TINY = [
    "--graphs", "synthetic", "--synthetic-nodes", "300", "--synthetic-edges", "1500",
    "--depths", "2", "--repeats", "1", "--warmup", "0", "--min-time", "0", "--hidden", "8",
    "--khop-max-k", "2", "--no-subprocess",
]  # fmt: skip
SECTIONS = (
    "## Machine",
    "## Run",
    "## Targets",
    "## Time per training epoch",
    "## Peak memory per epoch",
    "## k-hop transform",
    "## Reference: PyTorch Geometric",
    "## Where the SSM time goes",
    "## All ratios",
)


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
        ("breakdown", "ssm layer / plain layer"),
    ]
    for section, label in expected:
        assert any(line.split()[1] == section and label in line for line in ratio_lines), label
    # In-process peaks of a tiny model may be 0 MB (freed heap pages are reused), so the
    # memory ratios are not required here; the rows are.
    for variant in ("gcn", "gcn_ssm", "gcn_ssm+ckpt"):
        assert f"| random-300 | {variant} |" in report
    verdicts = [line.split()[0] for line in printed if line.split()[:1] in (["PASS"], ["MISS"])]
    assert len(verdicts) == len([t for t in result["targets"] if t.verdict != "N/A"]) > 0
    assert "Target" in report and ("PASS" in report or "MISS" in report)

    if pyg_available() is None:
        assert any("gcn_ssm / pyg:gcn_ssm" in line for line in ratio_lines)
    else:
        assert "not installed" in report

    raw = json.loads((tmp_path / "perf.json").read_text())
    assert {r["section"] for r in raw["records"]} >= {"time", "memory", "khop", "breakdown"}
    assert raw["machine"]["threads"] == torch.get_num_threads()
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


def test_a_fresh_process_measures_one_epochs_peak_memory():
    job = {
        "task": "epoch",
        "graph": GraphSpec("synthetic", 20_000, 100_000).as_dict(),
        "model": "gcn_ssm",
        "checkpoint": False,
        "depth": 2,
        "hidden": 64,
    }
    (result,) = run_jobs([job], budget_mb=8192)
    assert result["status"] == "ok", result
    # The backward pass keeps at least the states of both layers: 2 × 20,000 × 64 float32.
    assert result["peak_mb"] > 2 * 20_000 * 64 * 4 / 2**20 and len(result["seconds"]) == 1


def test_quick_sets_small_sizes_and_flags_still_win():
    config = config_from_args(build_parser().parse_args(["--quick", "--repeats", "4"]))
    assert config.depths == (2, 16) and config.synthetic_nodes == 10_000
    assert config.repeats == 4 and config.quick


def test_the_pyg_reference_is_the_same_model_as_ours():
    if pyg_available() is not None:
        pytest.skip("torch_geometric is not installed")
    from benchmarks.perf.reference import PygGCNSSM, edge_index
    from dgl_ssm import GCNSSM

    graph = dgl.add_self_loop(dgl.to_bidirected(dgl.rand_graph(30, 90)))
    feat = torch.randn(30, 5)
    ours = GCNSSM(5, 16, 3, num_layers=4).eval()
    theirs = PygGCNSSM(5, 16, 3, num_layers=4).copy_weights_from(ours).eval()
    torch.testing.assert_close(theirs(feat, edge_index(graph)), ours(graph, feat))


def test_retimed_graph_names_round_trip():
    for kind in (TCMALLOC, COMPACT):
        assert split_label(retimed_label("random-100k", kind)) == ("random-100k", kind)
    assert split_label("random-100k") == ("random-100k", None)


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


def test_bench_perf_subcommand_runs_and_names_itself_in_the_report(tmp_path):
    from benchmarks.cli import main as bench_main

    argv = ["perf", *TINY, "--sections", "time", "--out", str(tmp_path)]
    assert bench_main(argv) == 0
    report = (tmp_path / "perf.md").read_text()
    assert "`dgl-ssm-bench perf " in report and "## Time per training epoch" in report


def test_allocator_option_errors_say_what_to_do(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--allocator", "compact", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "cannot apply with --no-subprocess" in capsys.readouterr().err


@pytest.mark.skipif(find_tcmalloc() is None, reason="tcmalloc is not installed")
def test_timings_can_run_under_tcmalloc(tmp_path):
    argv = [a for a in TINY if a != "--no-subprocess"]
    main([*argv, "--sections", "time", "--allocator", "tcmalloc", "--out", str(tmp_path)])
    report = (tmp_path / "perf.md").read_text()
    assert "timings: tcmalloc (--allocator)" in report
    rows = list(csv.DictReader(open(tmp_path / "perf.csv")))
    assert {row["variant"] for row in rows if row["section"] == "time"} >= {"gcn", "gcn_ssm"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--device", "cuda", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--device cuda was asked for" in capsys.readouterr().err
