"""Run the cells that have no record yet, side by side, one record per finished run."""

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from ..config import RunConfig
from ..device import use_gpu_of_worker
from ..records import append_record, read_records
from .records import SCHEMA, config_key, record_key


def records_file(out, part):
    return Path(out) / f"{part}.jsonl"


def pending(cells, out):
    """The cells of ``cells`` whose configuration has no record under ``out`` yet."""
    done = set()
    for part in {cell.part for cell in cells}:
        done.update(record_key(r) for r in read_records(records_file(out, part)))
    return [cell for cell in cells if config_key(cell.config) not in done]


def run_cells(cells, out, jobs=1, threads=None, locations=None, log=print):
    """Run every pending cell, ``jobs`` at a time, each with ``threads`` torch threads
    (default: cores ÷ jobs, at least 1; several processes with all cores each slow every one
    of them down many times). Each finished run is appended to ``<out>/<part>.jsonl`` at
    once. A run that raises is reported and left pending. Returns the number of records
    written."""
    todo = pending(cells, out)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    log(f"{len(cells) - len(todo)} of {len(cells)} runs already recorded; {len(todo)} to go "
        f"({jobs} at a time, {threads} torch thread(s) each)")  # fmt: skip
    locations = dict(locations or {})
    written = 0
    if not todo:
        return written
    if jobs == 1:
        _init_worker(threads)
        for cell in todo:
            if not pending([cell], out):  # another process (other --rows, say) recorded it
                log(f"{_label(cell)}: recorded meanwhile by another process; skipped")
                continue
            record, error = _outcome(_run, cell.config.to_dict(), locations)
            written += _finish(cell, record, error, out, log)
        return written
    context = get_context("spawn")  # fresh interpreters: no forked torch or DGL state
    started = context.Value("i", 0)  # numbers the workers, to spread them over the GPUs
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                             initargs=(threads, started)) as pool:  # fmt: skip
        futures = {
            pool.submit(_outcome, _run, cell.config.to_dict(), locations): cell for cell in todo
        }
        for future in as_completed(futures):
            record, error = future.result()
            written += _finish(futures[future], record, error, out, log)
    return written


def _label(cell):
    return f"{cell.part}: {cell.row} on {cell.column}, seed {cell.config.seed}"


def _finish(cell, record, error, out, log):
    label = _label(cell)
    if error is not None:
        log(f"{label}: FAILED ({error}); left pending")
        return 0
    record.update(part=cell.part, row=cell.row, column=cell.column, schema=SCHEMA,
                  key=config_key(cell.config))  # fmt: skip
    append_record(records_file(out, cell.part), record)
    test = record["test"]
    shown = f"{test:.4g}" if isinstance(test, float) else test  # None when it diverged
    log(f"{label}: {record['status']}, test {record['metric']} {shown} "
        f"({record['epochs']} epochs, {record['cpu_time_s'] / 60:.1f} CPU min)")  # fmt: skip
    return 1


def _init_worker(threads, started=None):
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if started is not None:
        with started.get_lock():
            index, started.value = started.value, started.value + 1
        use_gpu_of_worker(index)


def _outcome(function, *args):
    try:
        return function(*args), None
    except Exception as error:  # reported by the parent; the cell stays pending
        return None, f"{type(error).__name__}: {error}"


def _run(config_dict, locations):
    import torch

    from ..run import run_record
    from ..train import train

    config = RunConfig.from_dict(config_dict)
    for name, value in locations.items():
        setattr(config.data, name, value)
    start = time.process_time()
    result = train(config)
    record = run_record(RunConfig.from_dict(config_dict), result)  # without the local paths
    record.update(cpu_time_s=round(time.process_time() - start, 1),
                  threads=torch.get_num_threads())  # fmt: skip
    return record
