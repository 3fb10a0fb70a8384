"""The installed ``dgl-ssm`` command: its subcommands, the old names, and the main job end to
end at tiny size (the console scripts of the environment the tests run in)."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SUBCOMMANDS = ("run", "perf", "reproduce", "analyze", "sweep", "leaderboard")
OLD_NAMES = ("dgl-ssm-bench", "dgl-ssm-sweep", "dgl-ssm-leaderboard", "dgl-ssm-analyze")

pytestmark = pytest.mark.skipif(
    not (BIN / "dgl-ssm").exists(), reason="dgl-ssm is not installed here (pip install -e .)"
)


def command(*argv, cwd=None):
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                          cwd=cwd, timeout=600)  # fmt: skip


def side_by_side(*argvs):
    """``command`` for each argv, all started at once (each imports DGL: a few seconds)."""
    running = [subprocess.Popen([str(BIN / argv[0]), *argv[1:]], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for argv in argvs]  # fmt: skip
    done = []
    try:
        for process in running:
            out, err = process.communicate(timeout=600)
            done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    finally:
        for process in running:
            process.kill()  # no-op for the finished ones
    return done


@pytest.mark.slow
def test_the_root_lists_its_subcommands_and_the_old_names_still_work():
    subs = ("run", "leaderboard")
    root, *done = side_by_side(
        ("dgl-ssm", "--help"),
        *[("dgl-ssm", name, "--help") for name in subs],
        *[(old, "--help") for old in OLD_NAMES],
        ("dgl-ssm", "trian"),
        ("dgl-ssm", "--version"),
    )
    *done, version = done
    assert root.returncode == 0
    listed = [m.group(1) for m in re.finditer(r"^ {4}(\S+)", root.stdout, re.MULTILINE)]
    assert tuple(listed) == SUBCOMMANDS
    for name, sub in zip(subs, done):
        assert sub.returncode == 0 and sub.stdout.startswith(f"usage: dgl-ssm {name} ")
    for old, alias in zip(OLD_NAMES, done[len(subs) :]):
        assert alias.returncode == 0 and alias.stdout.startswith(f"usage: {old} ")
    unknown = done[-1]
    assert unknown.returncode == 2 and "invalid choice: 'trian'" in unknown.stderr
    import dgl
    import torch

    assert version.returncode == 0 and version.stdout.startswith("dgl-ssm 0.")
    torch_version = torch.__version__.split("+")[0]  # (a local build tag such as +cu121)
    assert f"(dgl {dgl.__version__}, torch {torch_version}" in version.stdout


def test_run_loads_neither_optuna_nor_the_sweeps_runner_nor_asks_pypi_for_versions(tmp_path):
    out = tmp_path / "runs.jsonl"
    out.write_text('{"killed": \n')  # a line the resumed run skips, with a one-line warning
    argv = ["run", "--model", "gcn_ssm", "--dataset", "ring_transfer", "--ring-size", "6",
            "--num-graphs", "20", "--layers", "2", "--hidden", "8", "--epochs", "1",
            "--no-progress", "--output", str(out), "--resume"]  # fmt: skip
    code = (
        "import sys, dgl_ssm_cli\n"
        f"status = dgl_ssm_cli.main({argv!r})\n"
        "rooms = ('optuna', 'dgl_ssm_sweeps', 'outdated')\n"
        "print(status, sorted(m for m, module in sys.modules.items()\n"
        "                     if m.split('.')[0] in rooms and module is not None))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    # Only the sweeps' registration module (names and help lines) is loaded; and not
    # `outdated`, with which OGB (imported by DGL) asks PyPI for versions at every start.
    loaded = "['dgl_ssm_sweeps', 'dgl_ssm_sweeps.commands']"
    assert result.stdout.splitlines()[-1] == f"0 {loaded}", result.stderr
    assert len(out.read_text().splitlines()) == 2
    warned = [line for line in result.stderr.splitlines() if "runs.jsonl:1" in line]
    assert warned == [
        f"dgl-ssm run: warning: {out}:1: skipping a line that is not a JSON "
        "record object (a partial line left by a killed writer, or an edit)"
    ]
    assert "UserWarning" not in result.stderr


def test_a_process_importing_the_sweeps_first_skips_ogbs_version_check_the_library_not():
    # A script calling run_sweep, and each sweep worker it spawns, import dgl_ssm_sweeps (and
    # through its runner DGL, then OGB) before dgl_ssm_bench; a library user imports dgl_ssm.
    check = "import sys, {}; print(sys.modules['ogb.version'].check_outdated is None)"
    sweeps, library = side_by_side(["python", "-c", check.format("dgl_ssm_sweeps.runner")],
                                   ["python", "-c", check.format("dgl_ssm")])  # fmt: skip
    assert (sweeps.stdout, library.stdout) == ("True\n", "False\n"), sweeps.stderr + library.stderr


def test_the_leaderboard_loads_neither_torch_nor_dgl(tmp_path):
    # Tables and bad-input errors come from Optuna's storage alone: no 4-8 s of imports.
    argv = ["leaderboard", "--storage", f"sqlite:///{tmp_path}/none.db", "--out", str(tmp_path)]
    code = (
        "import sys, dgl_ssm_cli, dgl_ssm_sweeps.leaderboard\n"
        f"status = dgl_ssm_cli.main({argv!r})\n"
        "print(status, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'dgl')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "2 []", result.stderr
    assert result.stderr.count("\n") == 1 and "no SQLite file" in result.stderr


@pytest.mark.slow
def test_the_installed_leaderboard_suite_end_to_end_and_its_regeneration(tmp_path):
    # By default a suite keeps its studies and tables in a folder of its own.
    first = command("dgl-ssm", "leaderboard", "--suite", "tiny", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    storage = "sqlite:///runs/tiny/optuna.db"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny"]
    (tmp_path / "runs" / "tiny" / "leaderboard").rename(tmp_path / "board")
    table = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "| GCN-SSM |" in table and "ring_transfer (accuracy ↑)" in table and "smoke" in table
    # Without --suite the command only rebuilds the tables: the same bytes from the storage.
    again = command("dgl-ssm", "leaderboard", "--storage", storage, "--out", "again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "board" / name).read_bytes()


def test_the_harness_installs_under_the_projects_names_only(tmp_path):
    """``benchmarks/`` and ``sweeps/`` install as ``dgl_ssm_bench`` and ``dgl_ssm_sweeps``:
    every package folder is listed in setup.cfg, and a user's own ``benchmarks`` package in the
    working folder neither hides ours nor is hidden by it."""
    import configparser

    root = Path(__file__).resolve().parents[1]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    mapping = dict(line.split(" = ") for line in config["options"]["package_dir"].split("\n")[1:])
    listed = set(config["options"]["packages"].split())
    folders = {str(p.parent.relative_to(root)) for p in root.glob("*/**/__init__.py")}
    folders = {f for f in folders if f.split("/")[0] in ("dgl_ssm", *mapping.values())}
    to_folder = {installed: folder for installed, folder in mapping.items()}
    as_folders = set()
    for package in listed:
        top, *rest = package.split(".")
        as_folders.add("/".join([to_folder.get(top, top), *rest]))
    assert as_folders == folders
    assert not listed & {"benchmarks", "sweeps", "tests"}

    (tmp_path / "benchmarks").mkdir()  # a research repository's own benchmarks package
    (tmp_path / "benchmarks" / "__init__.py").write_text("MINE = True\n")
    code = (
        "import benchmarks, dgl_ssm_bench.train, dgl_ssm_sweeps.space\n"
        "print(benchmarks.MINE, dgl_ssm_bench.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True)  # fmt: skip
    assert result.stdout.split() == ["True", "dgl_ssm_bench"], result.stderr


def test_ctrl_c_stops_a_run_in_one_line_and_keeps_the_finished_records(tmp_path):
    # Seeds of a ring transfer run take a second each; Ctrl-C comes once one has landed.
    output = tmp_path / "runs.jsonl"
    argv = [str(BIN / "dgl-ssm"), "run", "--model", "gcn", "--dataset", "ring_transfer",
            "--ring-size", "4", "--num-graphs", "40", "--layers", "2", "--epochs", "60",
            "--seeds", "50", "--no-progress", "--output", str(output)]  # fmt: skip
    # A default SIGINT disposition, even where the tests run in a background job (which
    # ignores it, and the child would inherit that).
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            if output.exists() and output.read_text().count("\n") >= 1:
                break
            time.sleep(0.2)
        assert process.poll() is None, process.communicate()[1]
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err  # (what it printed, should the interrupt be lost)
    assert "Traceback" not in err
    assert (
        err.strip().splitlines()[-1]
        == "dgl-ssm run: interrupted (Ctrl-C); what had finished is kept; add --resume to run "
        "the rest."
    )
    lines = output.read_text().splitlines()
    assert 1 <= len(lines) < 50 and all(json.loads(line)["status"] == "ok" for line in lines)


def test_the_projects_warnings_are_one_line_and_others_keep_pythons_form():
    # "dgl-ssm run: warning: --device auto runs on the CPU: …" (a RuntimeWarning) as one
    # line; a library's warning, or a deprecation pointing into our code, as Python shows it.
    import warnings

    import torch

    import dgl_ssm_cli
    from dgl_ssm_bench import device

    default = warnings.formatwarning
    previous = dgl_ssm_cli._one_line_warnings("dgl-ssm run")
    try:
        ours, theirs = device.__file__, torch.__file__
        for category in (UserWarning, RuntimeWarning):
            shown = warnings.formatwarning("no GPU", category, ours, 7)
            assert shown == "dgl-ssm run: warning: no GPU\n"
        for category, filename in ((UserWarning, theirs), (FutureWarning, ours)):
            shown = warnings.formatwarning("no GPU", category, filename, 7)
            assert shown == default("no GPU", category, filename, 7)
    finally:
        warnings.formatwarning = previous
    assert previous is default


@pytest.mark.parametrize(
    "argv, named, hint",
    [
        (["run", "--layrs", "4"], "dgl-ssm run", "--layrs 4. Did you mean '--layers'?"),
        (["run", "--config", "cora_kipf", "extra"], "dgl-ssm run", "extra."),
        (["run", "extra", "--layrs=3"], "dgl-ssm run", "extra --layrs=3. Did you mean '--layers'?"),
        (["run", "--", "--layers", "3"], "dgl-ssm run", "-- --layers 3."),  # (no options past --)
        (["perf", "--quik"], "dgl-ssm perf", "--quik. Did you mean '--quick'?"),
        (["reproduce", "--lsit"], "dgl-ssm reproduce", "--lsit. Did you mean '--list'?"),
        (["analyze", "energy", "--layrs=8"], "dgl-ssm analyze energy",
         "--layrs=8. Did you mean '--layers'?"),
        (["sweep", "--backbone", "gcn", "--dataset", "cora", "--trails", "3"], "dgl-ssm sweep",
         "--trails 3. Did you mean '--trials'?"),
        (["leaderboard", "--sute", "quick"], "dgl-ssm leaderboard",
         "--sute quick. Did you mean '--suite'?"),
    ],
)  # fmt: skip
def test_a_mistyped_option_is_named_by_its_command_with_the_option_meant(argv, named, hint,
                                                                         capsys):  # fmt: skip
    # argparse named an option unknown to `run`, `perf` or `reproduce` under the root's usage
    # ("usage: dgl-ssm [-h] {run,perf,reproduce} ...", not every command) and `analyze
    # energy`'s under `analyze`'s, and no command suggested the option meant.
    import dgl_ssm_cli

    with pytest.raises(SystemExit) as exit_:
        dgl_ssm_cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"usage: {named} ")
    assert err.splitlines()[-1] == f"{named}: error: unrecognized arguments: {hint}"


def test_the_library_and_the_commands_work_without_docstrings():
    # `python -OO` strips docstrings: `import dgl_ssm` crashed building the named models'
    # parameter docs from them, and `analyze --help` / `perf --help` on their description.
    code = (
        "import dgl, torch, dgl_ssm, dgl_ssm_cli\n"
        "g = dgl.add_self_loop(dgl.rand_graph(6, 12))\n"
        "print(tuple(dgl_ssm.GCNSSM(3, 4, 2, num_layers=2)(g, torch.randn(6, 3)).shape))\n"
        "for command in ('analyze', 'perf', 'run', 'sweep', 'leaderboard'):\n"
        "    try:\n"
        "        dgl_ssm_cli.main([command, '--help'])\n"
        "    except SystemExit as exit_:\n"
        "        print('exit', command, exit_.code)\n"
    )
    result = subprocess.run([sys.executable, "-OO", "-c", code], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "(6, 2)"
    exits = [line for line in result.stdout.splitlines() if line.startswith("exit ")]
    assert exits == [f"exit {c} 0" for c in ("analyze", "perf", "run", "sweep", "leaderboard")]


def test_an_unknown_option_without_a_chosen_subcommand_is_the_top_parsers_to_refuse(capsys):
    # An optional subcommand left out (none of ours is optional; a parser built on these
    # helpers may be): the top parser names the option, not a KeyError from inside.
    import argparse

    from dgl_ssm_bench.arguments import parse_arguments

    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--layers")
    parser.add_subparsers(dest="command").add_parser("run")
    with pytest.raises(SystemExit):
        parse_arguments(parser, ["--lyers=2"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "tool: error: unrecognized arguments: --lyers=2. Did you mean '--layers'?"
    )
    assert parse_arguments(parser, ["run"]).command == "run"
