"""A Ctrl-C is never lost: raised at once where allowed, else at the next check, and raised
again when a finalizer swallowed it (``dgl_ssm_bench.ctrl_c``), in a sweep worker's loop and in
``dgl-ssm run``."""

import json
import signal
import sys
import time

import optuna
import pytest

import dgl_ssm_cli
from dgl_ssm_bench import train as train_module
from dgl_ssm_bench.ctrl_c import CtrlC


@pytest.fixture(autouse=True)
def python_takes_ctrl_c():
    """SIGINT raises KeyboardInterrupt, as in a terminal, even where the tests were started in
    a background job (which ignores it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class _SwallowsCtrlC:
    """An object whose finalizer is running when Ctrl-C comes, as DGL's ``__del__`` of a
    freed graph or index may be: Python prints the KeyboardInterrupt and ignores it."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)
        for _ in range(1000):  # Python runs the handler here, inside the finalizer
            pass


def ctrl_c_inside_a_finalizer():
    """Ctrl-C, lost in a finalizer: the handler raised there, since nothing escapes. Returns
    True, for the caller to note that it got past the call (had the interrupt been raised
    elsewhere, it would not have)."""
    _SwallowsCtrlC()  # freed at once
    return True


def test_a_worker_takes_ctrl_c_once_and_at_once_only_where_no_storage_is_touched():
    with pytest.raises(KeyboardInterrupt), CtrlC.installed() as ctrl_c:
        with pytest.raises(KeyboardInterrupt), ctrl_c.interruptible():
            signal.raise_signal(signal.SIGINT)
            time.sleep(5)  # never reached
        signal.raise_signal(signal.SIGINT)  # the parent forwards it: ignored
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()  # the loop's next check still stops the worker
        # ... and so does the end of the loop, if no check came.
    with pytest.raises(KeyboardInterrupt), CtrlC.installed() as fresh:
        with fresh.interruptible():
            with fresh.deferred():
                signal.raise_signal(signal.SIGINT)
                done = True  # the storage call finishes
            pytest.fail("the interrupt is raised when the storage call ends")
    assert done
    with CtrlC.installed() as later:  # a new loop does not inherit an old Ctrl-C
        later.check()


def test_a_ctrl_c_before_an_interruptible_block_is_raised_as_it_starts():
    """A Ctrl-C that came while storage was touched (no raise at once) is raised as the next
    interruptible block starts, not after the block's work (a whole trial's training)."""
    noted, started = [], []
    with pytest.raises(KeyboardInterrupt), CtrlC.installed() as ctrl_c:
        signal.raise_signal(signal.SIGINT)
        noted.append(True)  # not raised here: no interruptible block yet
        with ctrl_c.interruptible():
            started.append(True)
    assert noted == [True] and started == []


def shown_unraisable(monkeypatch):
    """What reaches the ``unraisablehook`` there was (which prints "Exception ignored")."""
    shown = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: shown.append(unraisable))
    return shown


def test_a_ctrl_c_a_finalizer_swallowed_is_raised_at_the_next_check_and_not_shown(monkeypatch):
    shown = shown_unraisable(monkeypatch)
    hook = sys.unraisablehook
    with pytest.raises(KeyboardInterrupt), CtrlC.installed() as ctrl_c:
        with ctrl_c.interruptible():
            lost = ctrl_c_inside_a_finalizer()  # raised in the finalizer, and lost there
            with pytest.raises(KeyboardInterrupt):
                ctrl_c.check()
            signal.raise_signal(signal.SIGINT)  # once raised, it is the loop's one: ignored
            ignored = True
    assert lost and ignored and shown == []
    assert sys.unraisablehook is hook  # put back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_after_a_swallowed_ctrl_c_the_next_one_raises_at_once():
    # One interrupt per loop, but the lost one does not count: a user who presses Ctrl-C
    # again is not ignored until the next check.
    with pytest.raises(KeyboardInterrupt), CtrlC.installed() as ctrl_c:
        with ctrl_c.interruptible():
            lost = ctrl_c_inside_a_finalizer()
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
                time.sleep(5)  # never reached
            signal.raise_signal(signal.SIGINT)  # a third, once the second was raised: ignored
            ignored = True
    assert lost and ignored


def test_without_once_every_ctrl_c_raises_as_pythons_own_handler_does():
    # dgl-ssm run: a second Ctrl-C must still break a clean-up that hangs.
    with pytest.raises(KeyboardInterrupt), CtrlC.installed(once=False) as ctrl_c:
        with ctrl_c.interruptible():
            for _ in range(2):
                with pytest.raises(KeyboardInterrupt):
                    signal.raise_signal(signal.SIGINT)
                    time.sleep(5)  # never reached


def test_other_unraisable_errors_still_reach_the_hook_there_was(monkeypatch):
    class Broken:
        def __del__(self):
            raise RuntimeError("a finalizer's own error")

    shown = shown_unraisable(monkeypatch)
    with CtrlC.installed():
        Broken()
    assert [str(unraisable.exc_value) for unraisable in shown] == ["a finalizer's own error"]


def test_ctrl_c_outside_the_handled_signals_keeps_its_own_handler():
    before = signal.getsignal(signal.SIGTERM)
    with CtrlC.installed(signals=[signal.SIGINT]):
        assert signal.getsignal(signal.SIGTERM) is before


def test_a_run_stops_after_the_epoch_in_which_a_finalizer_swallowed_ctrl_c(
    tmp_path, monkeypatch, capsys
):
    # Seeds of 3 epochs: the Ctrl-C comes during seed 1's second epoch, inside a finalizer.
    epochs_trained, lost = [], []
    train_epoch = train_module._Task.train_epoch

    def train_epoch_then_ctrl_c(self, *args, **kwargs):
        loss = train_epoch(self, *args, **kwargs)
        epochs_trained.append(len(epochs_trained))
        if len(epochs_trained) == 5:
            lost.append(ctrl_c_inside_a_finalizer())
        return loss

    monkeypatch.setattr(train_module._Task, "train_epoch", train_epoch_then_ctrl_c)
    shown = shown_unraisable(monkeypatch)
    output = tmp_path / "runs.jsonl"
    argv = ["run", "--model", "gcn", "--dataset", "ring_transfer", "--ring-size", "4",
            "--num-graphs", "20", "--layers", "2", "--epochs", "3", "--seeds", "3",
            "--no-progress", "--output", str(output)]  # fmt: skip
    assert dgl_ssm_cli.main(argv) == 130
    err = capsys.readouterr().err
    assert shown == [] and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("dgl-ssm run: interrupted (Ctrl-C)")
    assert lost == [True] and len(epochs_trained) == 5  # not one epoch more
    seeds = [json.loads(line)["config"]["seed"] for line in output.read_text().splitlines()]
    assert seeds == [0]  # the finished seed is kept
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sweeps_final_evaluation_stops_after_the_epoch_in_which_ctrl_c_was_swallowed(
    tmp_path, monkeypatch
):
    from dgl_ssm_sweeps import runner
    from tests.conftest import tiny_space

    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = runner.SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage,
                            space=tiny_space(tmp_path), pruner="none", final=False)  # fmt: skip
    runner.run_sweep(spec, log=lambda *_: None)  # the search: one trial of 3 epochs
    epochs_trained, lost = [], []
    train_epoch = train_module._Task.train_epoch

    def train_epoch_then_ctrl_c(self, *args, **kwargs):
        loss = train_epoch(self, *args, **kwargs)
        epochs_trained.append(len(epochs_trained))
        if len(epochs_trained) == 2:  # final run 1, epoch 2
            lost.append(ctrl_c_inside_a_finalizer())
        return loss

    monkeypatch.setattr(train_module._Task, "train_epoch", train_epoch_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runner.final_evaluation(spec, log=lambda *_: None)
    assert lost == [True] and len(epochs_trained) == 2  # not one epoch more
    study = optuna.load_study(study_name=spec.study_name, storage=storage)
    assert "final" not in study.user_attrs and "final_runs" not in study.user_attrs


def test_a_second_ctrl_c_breaks_a_run_whose_stop_hangs(tmp_path, monkeypatch):
    # dgl-ssm run takes each Ctrl-C as Python's own handler does: one caught on the way out
    # (a clean-up, a finalizer) does not make the next one wait for the end of the run.
    went_on = []

    def run_seeds(config, seeds, **options):
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            time.sleep(5)  # never reached
        signal.raise_signal(signal.SIGINT)  # the handler runs (and raises) before it returns
        went_on.append(True)
        return []

    monkeypatch.setattr("dgl_ssm_bench.run.run_seeds", run_seeds)
    argv = ["run", "--model", "gcn", "--dataset", "ring_transfer", "--no-progress",
            "--output", str(tmp_path / "runs.jsonl")]  # fmt: skip
    assert dgl_ssm_cli.main(argv) == 130
    assert went_on == []


def test_an_ignored_ctrl_c_stays_ignored():
    # A run started in the background (`dgl-ssm run … &`) ignores SIGINT: so do the
    # processes it starts, and a Ctrl-C meant for the terminal's foreground job.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with CtrlC.installed() as ctrl_c:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
        assert not ctrl_c.seen and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_only_an_interrupted_run_is_told_to_resume(monkeypatch, capsys):
    from types import SimpleNamespace

    def interrupted(argv, prog):
        raise KeyboardInterrupt

    commands = {name: SimpleNamespace(help="", main=interrupted) for name in ("run", "perf")}
    monkeypatch.setattr(dgl_ssm_cli, "benchmark_commands", lambda: commands)
    for name, told in (("run", True), ("perf", False)):
        assert dgl_ssm_cli.main([name]) == 130
        err = capsys.readouterr().err
        assert err.startswith(f"dgl-ssm {name}: interrupted (Ctrl-C); what had finished is kept")
        assert ("add --resume" in err) == told
