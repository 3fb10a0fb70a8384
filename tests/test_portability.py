"""What differs off Linux, checked here on Linux: no ``fcntl`` or ``resource`` (Windows), a
console that cannot show "λ" (Windows' cp1252, an ASCII locale), a high-water mark that
cannot be reset (macOS, Windows), no ``os.nice``, no ``LD_PRELOAD``."""

import os
import subprocess
import sys
import types

import pytest

from dgl_ssm_bench import locks, machine, memory, monitor
from dgl_ssm_bench.memory import PeakMeter
from dgl_ssm_bench.perf import isolation
from dgl_ssm_bench.threads import get_threads, set_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_msvcrt(contended=1):
    """A stand-in for Windows' msvcrt: ``locking`` refuses the first ``contended`` tries."""
    calls = []

    def locking(descriptor, mode, size):  # (it locks from the file's current position)
        calls.append((mode, size, os.lseek(descriptor, 0, os.SEEK_CUR)))
        if mode == fake.LK_NBLCK and sum(c[0] == fake.LK_NBLCK for c in calls) <= contended:
            raise PermissionError(13, "Permission denied")

    fake = types.SimpleNamespace(LK_NBLCK=2, LK_UNLCK=0, locking=locking, calls=calls)
    return fake


def test_every_command_imports_without_fcntl_and_resource():
    # (psutil, DGL and torch first: their POSIX backends import fcntl and resource; on
    # Windows they take other paths.)
    script = (
        "import sys, types, psutil, dgl, torch\n"
        "sys.modules['fcntl'] = sys.modules['resource'] = None\n"
        "sys.modules['msvcrt'] = types.ModuleType('msvcrt')\n"
        "import dgl_ssm_cli, dgl_ssm_bench.cli, dgl_ssm_bench.run, dgl_ssm_bench.analyze\n"
        "import dgl_ssm_bench.perf.cli, dgl_ssm_bench.datasets.staging\n"
        "import dgl_ssm_sweeps.cli, dgl_ssm_sweeps.runner, dgl_ssm_sweeps.leaderboard\n"
        "from dgl_ssm_bench import memory\n"
        "assert memory.resource is None and memory.high_water_mark_mb() > 0\n"
        "print('imported')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr


def test_the_lock_takes_turns_with_msvcrt_where_there_is_no_fcntl(tmp_path, monkeypatch):
    fake = fake_msvcrt(contended=2)
    monkeypatch.setattr(locks, "fcntl", None)
    monkeypatch.setattr(locks, "msvcrt", fake, raising=False)
    monkeypatch.setattr(locks, "POLL_SECONDS", 0.0)
    with locks.exclusive_lock(tmp_path / "sub" / "x.lock"):
        # Waited while another process held the first byte, then took it; not yet released.
        assert fake.calls == [(fake.LK_NBLCK, 1, 0)] * 3
    assert fake.calls[-1] == (fake.LK_UNLCK, 1, 0)
    (tmp_path / "y.lock").write_text("not empty")  # (opened for appending: at its end)
    with pytest.raises(RuntimeError), locks.exclusive_lock(tmp_path / "y.lock"):
        assert fake.calls[-1] == (fake.LK_NBLCK, 1, 0)
        raise RuntimeError("the block failed")
    assert fake.calls[-1] == (fake.LK_UNLCK, 1, 0)  # the same byte, released all the same


ASCII_CONSOLE = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}


def in_an_ascii_locale(argv, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"}
    return subprocess.run([sys.executable, *argv], capture_output=True, cwd=ROOT, timeout=300,
                          env={**env, **ASCII_CONSOLE}, **kwargs)  # fmt: skip


def test_spaces_configs_and_tables_are_utf8_whatever_the_locale(tmp_path):
    script = (
        "import locale, sys\n"
        "assert locale.getpreferredencoding(False) != 'UTF-8', locale.getpreferredencoding()\n"
        "from pathlib import Path\n"
        "from dgl_ssm_sweeps.space import SPACES, load_space\n"
        "from dgl_ssm_bench.config import RunConfig\n"
        "from dgl_ssm_bench.figures import write_csv\n"
        "for path in sorted(Path(SPACES).glob('*.yaml')):\n"
        "    load_space(path.stem)\n"
        "for path in sorted(Path('benchmarks/configs').glob('*.yaml')):\n"
        "    RunConfig.from_yaml(path)\n"
        f"write_csv(Path({str(tmp_path)!r}) / 't.csv', ['‖Λ‖₂'], [['λ = 1 ± 0']])\n"
    )
    check = tmp_path / "check.py"  # (a file: an ASCII locale's argv cannot carry "λ")
    check.write_text(script, encoding="utf-8")
    done = in_an_ascii_locale([str(check)], text=True, encoding="utf-8")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.csv").read_bytes().decode("utf-8") == "‖Λ‖₂\r\nλ = 1 ± 0\r\n"


def test_a_command_printing_lambda_to_an_ascii_console_escapes_it(tmp_path):
    # reproduce --list prints the calibration columns' "centred λ": it used to stop there,
    # exit 2, with an 'ascii' codec error.
    (tmp_path / "records").mkdir()
    argv = ["-m", "dgl_ssm_cli", "reproduce", "--list", "--part", "calibration", "--rows",
            "GCN-SSM", "--out", str(tmp_path / "records")]  # fmt: skip
    done = in_an_ascii_locale(argv)
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    assert b"centred \\u03bb" in done.stdout


def test_without_a_resettable_mark_only_a_processs_first_run_has_a_peak(monkeypatch):
    monkeypatch.setattr(memory, "_can_reset", lambda: False)  # as on macOS and Windows
    monkeypatch.setattr(PeakMeter, "_started_in_process", False)
    first, second = PeakMeter("cpu"), PeakMeter("cpu")
    first.start()
    assert first.peak_total_mb() > 0
    second.start()
    # Its mark holds the first run's peak: not this run's, so not reported as if it were.
    assert second.peak_total_mb() is None and first.peak_total_mb() > 0


def test_on_windows_the_high_water_mark_is_the_peak_working_set(monkeypatch):
    monkeypatch.setattr(memory, "_status_kb", lambda field: None)
    monkeypatch.setattr(memory, "resource", None)
    info = types.SimpleNamespace(rss=1 * 2**20, peak_wset=5 * 2**20)
    process = types.SimpleNamespace(memory_info=lambda: info)
    monkeypatch.setattr(memory.psutil, "Process", lambda: process)
    monkeypatch.setattr(memory, "_can_reset", lambda: False)
    assert memory.high_water_mark_mb() == 5
    assert PeakMeter("cpu").method == "peak working set"


@pytest.fixture
def one_thread():
    """The monitor's helper set-up (``monitor._one_thread``), called in pytest's process: the
    thread counts and BLAS limits it sets are put back afterwards."""
    threads, limits = get_threads(), monitor._LIMITS
    yield monitor._one_thread
    if monitor._LIMITS is not limits:
        monitor._LIMITS.restore_original_limits()
    monitor._LIMITS = limits
    set_threads(*threads)


def test_the_monitors_helper_starts_where_there_is_no_nice_or_scheduler(monkeypatch, one_thread):
    monkeypatch.delattr(os, "sched_setscheduler", raising=False)
    monkeypatch.delattr(os, "nice")
    one_thread()  # (raised AttributeError: every monitored epoch's spectra failed)
    assert get_threads()[0] == 1


def test_where_there_is_no_idle_scheduler_the_monitors_helper_takes_the_lowest_priority(
    monkeypatch, one_thread
):
    # macOS has no SCHED_IDLE: the helper is niced to 19, the lowest, so it still takes only
    # the CPU time training leaves (os.nice adds its argument to the process's niceness).
    monkeypatch.delattr(os, "sched_setscheduler", raising=False)
    increments = []
    monkeypatch.setattr(os, "nice", increments.append)
    one_thread()
    assert increments == [19]


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_tcmalloc_is_offered_only_where_ld_preload_works(monkeypatch, platform):
    monkeypatch.setattr(isolation.ctypes.util, "find_library", lambda name: f"lib{name}.so")
    monkeypatch.setattr(isolation.sys, "platform", platform)
    assert isolation.find_tcmalloc() is None
    assert isolation.deep_allocator() == isolation.COMPACT


def test_on_macos_a_record_names_the_cpu_model_sysctl_gives(monkeypatch, tmp_path):
    asked = []

    def sysctl(argv, **kwargs):
        asked.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="Apple M2\n", stderr="")

    monkeypatch.setattr(machine, "Path", lambda path: tmp_path / "no-cpuinfo")
    monkeypatch.setattr(machine.sys, "platform", "darwin")
    monkeypatch.setattr(machine.subprocess, "run", sysctl)
    monkeypatch.setattr(machine.platform, "processor", lambda: "arm")
    assert machine.cpu_model.__wrapped__() == "Apple M2"  # (platform says "arm")
    assert asked == [["sysctl", "-n", "machdep.cpu.brand_string"]]


@pytest.fixture
def a_mark_that_cannot_be_reset(monkeypatch):
    """As on macOS and Windows, in a process that has measured nothing yet."""
    monkeypatch.setattr(memory, "_can_reset", lambda: False)
    monkeypatch.setattr(PeakMeter, "_started_in_process", False)


def test_without_a_resettable_mark_a_second_seed_records_no_peak(a_mark_that_cannot_be_reset):
    from dgl_ssm_bench.config import RunConfig
    from dgl_ssm_bench.run import run_seeds

    config = RunConfig.from_dict({
        "model": {"name": "gcn", "num_layers": 1, "hidden": 4},
        "data": {"name": "ring_transfer", "options": {"ring_size": 4, "num_graphs": 10}},
        "optim": {"epochs": 1},
    })  # fmt: skip
    records = run_seeds(config, seeds=2, progress=False, log=lambda *_: None)
    first, second = (record["peak_memory_mb"] for record in records)
    assert first > 0 and second is None


def test_perf_in_one_process_refuses_a_peak_the_mark_cannot_tell(a_mark_that_cannot_be_reset):
    from dgl_ssm_bench.perf.cli import PerfConfig
    from dgl_ssm_bench.perf.measure import epoch_memory
    from dgl_ssm_bench.perf.workload import GraphSpec

    config, spec = PerfConfig(depths=(2,), hidden=8), GraphSpec("synthetic", 200, 1000)
    assert epoch_memory(config, spec, "gcn", "cpu")["status"] == "ok"  # the process's first
    out = epoch_memory(config, spec, "gcn_ssm", "cpu")
    assert out["status"] == "failed" and "drop --no-subprocess" in out["message"]
