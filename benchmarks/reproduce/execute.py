"""Run the cells that have no record yet, side by side, one record per finished run."""

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from ..config import RunConfig
from ..console import escape_unencodable
from ..device import CURRENT_GPU, use_gpu_of_worker
from ..orphans import on_parent_exit
from ..records import RecordNotAppended, append_or_show, read_records
from ..threads import get_threads, set_threads, threads_per_worker
from .claims import claim
from .records import SCHEMA, checked_key, config_key


def records_file(out, part):
    return Path(out) / f"{part}.jsonl"


def pending(cells, out):
    """The cells of ``cells`` whose configuration has no record in their part's file under
    ``out`` yet (a run in two parts, e.g. Cora's 64-layer GCN-SSM and calibration's
    defaults, is recorded in each)."""
    done = set()
    for part in {cell.part for cell in cells}:
        path = records_file(out, part)
        for number, record in enumerate(read_records(path), 1):
            done.add((part, checked_key(record, f"{path}, record {number}")))
    return [cell for cell in cells if (cell.part, config_key(cell.config)) not in done]


def run_cells(cells, out, jobs=1, threads=None, locations=None, log=print):
    """Run every pending cell, ``jobs`` at a time, each with ``threads`` torch threads
    (default: cores ÷ jobs, at least 1; several processes with all cores each slow every one
    of them down many times). Each finished run is appended to ``<out>/<part>.jsonl`` at
    once. A run another process is running (:mod:`.claims`) waits for it, and is taken here
    if that process leaves it unrecorded; a run recorded meanwhile is skipped. A run that
    raises is reported and left pending. A record that cannot be appended (a full disk) is
    shown in the ``OSError`` raised, after the runs already running finish (no new one
    starts), and theirs with it. Returns the number of records written."""
    todo = pending(cells, out)
    threads = threads_per_worker(threads, jobs)
    log(f"{len(cells) - len(todo)} of {len(cells)} runs already recorded; {len(todo)} to go "
        f"({jobs} at a time, {threads} torch thread(s) each)")  # fmt: skip
    locations = dict(locations or {})
    written = 0
    if not todo:
        return written
    if jobs == 1:
        with _working_here(threads):
            runs = _Runs(todo, out, log)
            while runs:
                taken = runs.take()
                if taken is None:  # the runs left (if any) are other processes'
                    runs.wait_for_others()
                    continue
                cell, held = taken
                with held:
                    record, error = _outcome(_run, cell.config.to_dict(), locations)
                    written += _finish(cell, record, error, out, log)
        return written
    left, restarts = todo, 0
    with _sigterm_as_exit():  # a plain kill stops the workers too, not only this process
        while True:
            done, left = _run_in_pool(left, out, jobs, threads, locations, log)
            written += done
            if not left:
                return written
            if restarts == _POOL_RESTARTS:
                log(
                    f"workers died {restarts + 1} times; {len(left)} run(s) left pending: "
                    "re-run the same command to resume (fewer --jobs if memory ran out)"
                )
                return written
            restarts += 1
            log(
                f"a worker process died (killed, or out of memory?) with {len(left)} run(s) "
                f"unfinished; {jobs} new workers take them"
            )


# A worker that dies (the OOM killer, a kill) breaks the whole pool; new workers take the runs
# that did not finish, this many times before the rest are left pending.
_POOL_RESTARTS = 2
# Seconds between looks at the runs another process holds, once nothing else is left to start.
_LOOK_AGAIN_S = 30


class _Runs:
    """The runs left to start, in plan order, each taken with its claim (:mod:`.claims`). A
    run another process holds waits aside, and is looked at again (:meth:`look_again`) once
    nothing else is left: it is then recorded (skipped) or free (run here, as that process
    left it unrecorded: stopped, failed or killed)."""

    def __init__(self, cells, out, log):
        self.queue, self.elsewhere, self.out, self.log = list(cells), [], out, log
        self.told = set()  # runs whose holder was logged: each is said once

    def __bool__(self):
        return bool(self.queue or self.elsewhere)

    def take(self):
        """The next run to start here and its claim (close it once the record is on disk),
        or None when every run left is held by another process."""
        while self.queue:
            cell = self.queue.pop(0)
            held = contextlib.ExitStack()
            try:
                holder = held.enter_context(claim(self.out, cell.part, config_key(cell.config)))
                if holder is None and pending([cell], self.out):
                    return cell, held
            except BaseException:
                held.close()
                raise
            held.close()
            if holder is None:  # another process (other --rows, say) recorded it
                self.log(f"{_label(cell)}: recorded meanwhile by another process; skipped")
                continue
            if id(cell) not in self.told:
                self.told.add(id(cell))
                self.log(f"{_label(cell)}: being run by {holder}; waiting for its record")
            self.elsewhere.append(cell)
        return None

    def look_again(self):
        """Queue the runs other processes held, to take any they have let go of."""
        self.queue, self.elsewhere = self.queue + self.elsewhere, []

    def wait_for_others(self):
        """With runs left only to other processes: give them a while, then look again."""
        if self.elsewhere:
            time.sleep(_LOOK_AGAIN_S)
            self.look_again()

    def drop(self):
        """Every run not started, emptying the queue."""
        left, self.queue, self.elsewhere = self.queue + self.elsewhere, [], []
        return left


def _run_in_pool(cells, out, jobs, threads, locations, log):
    """Run ``cells`` on ``jobs`` worker processes: ``(records written, cells left unfinished
    because a worker died)``. A cell is claimed when a worker is free to start it, and the
    claim held until its record is on disk. On Ctrl-C or SIGTERM the workers are stopped at
    once and the queue dropped; every finished run is already on disk. A record that cannot
    be appended stops new runs; once the running ones end, :class:`RecordNotAppended` holds
    every such record (and says if a worker died)."""
    context = get_context("spawn")  # fresh interpreters: no forked torch or DGL state
    started = context.Value("i", 0)  # numbers the workers, to spread them over the GPUs
    initargs = (threads, started, _device(cells))
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                               initargs=initargs)  # fmt: skip
    runs, running, written, lost, broken = _Runs(cells, out, log), {}, 0, [], False
    unwritten = []  # records that could not be appended (a full disk): shown, then raised
    try:
        while running or runs and not broken:
            while not broken and len(running) < jobs and (taken := runs.take()) is not None:
                cell, held = taken
                try:
                    running[pool.submit(_outcome, _run, cell.config.to_dict(), locations)] = taken
                except BrokenProcessPool:  # a worker died: this pool takes no more runs
                    held.close()
                    lost.append(cell)
                    broken = True
                except BaseException:
                    held.close()
                    raise
            if running:  # wake for a finished run, or to look again at other processes' runs
                wake = _LOOK_AGAIN_S if runs.elsewhere else None
                finished, _ = wait(running, timeout=wake, return_when=FIRST_COMPLETED)
            else:  # every run left (if any) is another process's
                runs.wait_for_others()
                finished = ()
            for future in finished:
                cell, held = running.pop(future)
                with held:
                    try:
                        record, error = future.result()
                    except BrokenProcessPool:
                        lost.append(cell)
                        broken = True
                        continue
                    try:
                        written += _finish(cell, record, error, out, log)
                    except RecordNotAppended as failure:  # the running runs finish first
                        unwritten.append(str(failure))
                        runs.drop()  # no run is started that could not be recorded either
                        with contextlib.suppress(OSError):  # (the log may be on that disk)
                            log(str(failure))
            if not runs.queue:
                runs.look_again()
    except BaseException:
        _stop(pool)
        for _, held in running.values():
            held.close()
        raise
    pool.shutdown()
    if unwritten:
        if lost:
            unwritten.append(f"{len(lost)} run(s) left pending: a worker process died")
        raise RecordNotAppended("\n".join(unwritten))
    order = {id(cell): index for index, cell in enumerate(cells)}  # the plan's, required first
    return written, sorted(lost + runs.drop(), key=lambda cell: order[id(cell)])


def _stop(pool):
    """Drop the queue and end the running workers (their runs are lost; they were not done)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


@contextlib.contextmanager
def _sigterm_as_exit():
    """SIGTERM raises SystemExit (as Ctrl-C raises KeyboardInterrupt), so the pool is stopped
    on the way out instead of leaving its workers behind; restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(_signum, _frame):
        raise SystemExit(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _label(cell):
    return f"{cell.part}: {cell.row} on {cell.column}, seed {cell.config.seed}"


def _finish(cell, record, error, out, log):
    label = _label(cell)
    if error is not None:
        log(f"{label}: FAILED ({error}); left pending")
        return 0
    record.update(part=cell.part, row=cell.row, column=cell.column, schema=SCHEMA,
                  key=config_key(cell.config))  # fmt: skip
    append_or_show(records_file(out, cell.part), record, label)  # (or raise, showing it)
    test = record["test"]
    shown = f"{test:.4g}" if isinstance(test, float) else test  # None when it diverged
    log(f"{label}: {record['status']}, test {record['metric']} {shown} "
        f"({record['epochs']} epochs, {record['cpu_time_s'] / 60:.1f} CPU min)")  # fmt: skip
    return 1


def _device(cells):
    """The device the cells ask for: ``cuda`` when any may use a GPU (``auto``, ``cuda``)."""
    return "cuda" if any(cell.config.device in CURRENT_GPU for cell in cells) else "cpu"


@contextlib.contextmanager
def _working_here(threads):
    """This process set up to run cells for the block, then its thread counts and
    ``OMP_NUM_THREADS`` put back: a longer-lived caller (a test session, a notebook) keeps
    its own."""
    previous, omp = get_threads(), os.environ.get("OMP_NUM_THREADS")
    _init_worker(threads)
    try:
        yield
    finally:
        set_threads(*previous)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


def _init_worker(threads, started=None, device="cpu"):
    """Set up this process to run cells: ``threads`` torch threads; in a pool's worker
    (``started`` counts them), its GPU, and the parent's stops."""
    escape_unencodable()
    set_threads(threads)
    # (for the processes it starts: this one's OpenMP read it at import)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if started is None:
        return
    with started.get_lock():
        index, started.value = started.value, started.value + 1
    use_gpu_of_worker(index, device)
    # Ctrl-C reaches the whole process group: the parent stops the workers, so a worker does
    # not turn it into an error of the run it is in.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Its parent killed outright (SIGKILL, say), nobody would write the records of its runs.
    on_parent_exit(lambda: os._exit(1))


def _outcome(function, *args):
    try:
        return function(*args), None
    except Exception as error:  # reported by the parent; the cell stays pending
        return None, f"{type(error).__name__}: {error}"


def located(config_dict, locations):
    """The run's config with the local data and cache folders set (records keep them out)."""
    config = RunConfig.from_dict(config_dict)
    for name, value in locations.items():
        setattr(config.data, name, value)
    return config


def _run(config_dict, locations):
    import torch

    from ..run import run_record
    from ..train import train

    config = located(config_dict, locations)
    start = time.process_time()
    result = train(config)
    record = run_record(RunConfig.from_dict(config_dict), result)  # without the local paths
    record.update(cpu_time_s=round(time.process_time() - start, 1),
                  threads=torch.get_num_threads())  # fmt: skip
    return record
