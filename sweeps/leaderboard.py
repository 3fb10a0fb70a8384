"""Sweep storage → leaderboard tables and plots, and nothing else.

Reads the Optuna studies the sweep runner wrote (one per backbone × dataset, named
``<backbone>__<dataset>``) and writes, into one folder:

- ``leaderboard.md``: models × datasets, ``mean ± std (n=…)`` of the test metric of each
  study's ``final`` evaluation, next to the published numbers that are comparable with them;
  best per column in bold. The other published numbers are listed apart, as context, each
  with the reason it is not comparable. Studies whose sweep has no ``final`` yet are listed in
  a separate, clearly provisional section (best trial by validation, one seed) and never
  ranked. Studies run at a smoke-size budget (protocol ``smoke``, the quick suite) are marked
  as such, and the page says it reproduces nothing.
- ``leaderboard.csv``: the main table in long form,
  ``model,source,dataset,metric,direction,mean,std,n,best``.
- ``leaderboard.tex``: the main table as a booktabs ``tabular``.
- ``depth_<dataset>.png``: test metric vs number of layers, one line per backbone.
- ``summary.png``: every cell of the main table as a dot with its error bar.

Regenerating from the same storage gives byte-identical files: every ordering is sorted, floats
have a fixed format, nothing carries a timestamp or a path, and the figures have fixed sizes and
no PNG software/version stamp.

The contract read (per study): ``user_attrs`` ``backbone``, ``dataset``, ``metric``,
``direction``; optionally ``protocol`` and ``data_version`` (absent: unknown, so comparable with
no published number); once evaluated, ``final = {"mean", "std", "values", "seeds", "params",
"config"}``; per trial, ``value`` (validation metric) and ``user_attrs`` ``config`` (with
``config["model"]["num_layers"]``), ``test``, ``status`` (``ok``/``diverged``).

A published number (:mod:`benchmarks.references`) is *comparable*, and set in the main table, when
some finished study of ours in its column has the same data version (where the number names
one), the same protocol, and, when the number is of a model this project implements, is a study
of that model (the heterophily GCN is Platonov et al.'s residual GCN, ``gcn_platonov``, not a
bare ``gcn``). A number of a model we do not implement needs the data and protocol only.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import re
import sqlite3
import sys
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import sqlalchemy.engine
from optuna.trial import TrialState

from benchmarks.files import write_together
from benchmarks.models import display_name
from benchmarks.references import DATA_NOTES, PROTOCOLS, REFERENCES

from .storage import one_line, redact

log = logging.getLogger(__name__)

PROG = "dgl-ssm-leaderboard"

#: The direction in which each metric of the benchmark suite improves (``benchmarks.metrics``,
#: repeated here because the leaderboard reads only the storage and must not import torch).
METRIC_DIRECTIONS = {
    "accuracy": "maximize",
    "roc_auc": "maximize",
    "ap": "maximize",
    "mae": "minimize",
    "log10_mse": "minimize",
}

REQUIRED_ATTRS = ("backbone", "dataset", "metric", "direction")
DECIMALS = 4
DASH = "–"
ARROWS = {"maximize": "↑", "minimize": "↓"}

SMOKE = "smoke"  # the protocol tag of smoke-size spaces (the quick suite)

DEPTH_FIGSIZE = (6.4, 4.2)
DPI = 100


class LeaderboardError(Exception):
    """Bad input (unreadable storage, nothing to tabulate): the CLI prints it and exits 2."""


class _Skip(Exception):
    """A study that does not follow the sweep contract; the message says what is wrong."""


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Final:
    """The ``final`` evaluation of a study: test metric over ``n`` seeds (``failed`` more)."""

    mean: float
    std: float | None
    n: int | None
    failed: int = 0


@dataclass(frozen=True)
class TrialPoint:
    """A usable trial: completed, not diverged, finite validation and test values."""

    number: int
    val: float
    test: float
    depth: int | None


@dataclass
class StudyResult:
    """What the leaderboard keeps of one study."""

    name: str
    backbone: str
    dataset: str
    metric: str
    direction: str
    final: Final | None
    trials: list[TrialPoint]
    n_complete: int
    final_problem: str | None = None  # why a present `final` could not be used
    protocol: str | None = None  # the space's protocol tag ("gpp", "smoke", …), if recorded
    data_version: str | None = None  # e.g. "pna-v2" for the graph-property data

    @property
    def smoke(self):
        return self.protocol == SMOKE

    def best_by(self, key):
        """The best trial ranked by ``key`` ("val" or "test"); ties go to the earlier trial."""
        return _best(self.trials, key, self.direction)

    def depth_curve(self, select):
        """``{num_layers: test value}``, the trial per depth chosen by ``select`` (val/test)."""
        by_depth = {}
        for trial in self.trials:
            if trial.depth is not None:
                by_depth.setdefault(trial.depth, []).append(trial)
        return {d: _best(ts, select, self.direction).test for d, ts in sorted(by_depth.items())}


def _best(trials, key, direction):
    sign = -1.0 if direction == "maximize" else 1.0
    return min(trials, key=lambda t: (sign * getattr(t, key), t.number), default=None)


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _parse_final(raw):
    """``final`` → :class:`Final`; ``ValueError`` saying what is malformed."""
    if not isinstance(raw, dict):
        raise ValueError(f"'final' is a {type(raw).__name__}, not a dict")
    mean, std = raw.get("mean"), raw.get("std")
    if mean is None:
        raise ValueError("final evaluation without a mean (every final run failed)")
    if not isinstance(mean, (int, float)) or isinstance(mean, bool):
        raise ValueError("'final' has a non-numeric 'mean'")
    if std is not None and (not isinstance(std, (int, float)) or isinstance(std, bool)):
        raise ValueError("'final' has a non-numeric 'std'")
    # n: the runs the mean is over. Failed runs are stored as None in `values`; counting them
    # apart keeps a mean over 3 of 4 seeds from passing for a 4-seed result.
    values, seeds = raw.get("values"), raw.get("seeds")
    if isinstance(values, list):
        n = sum(_finite(v) for v in values)
        failed = len(values) - n
    else:
        n, failed = (len(seeds) if isinstance(seeds, list) else None), 0
    return Final(float(mean), None if std is None else float(std), n, failed)


def _depth(config):
    """``config["model"]["num_layers"]`` as an int, or None."""
    try:
        depth = config["model"]["num_layers"]
    except (KeyError, TypeError, IndexError):
        return None
    return depth if isinstance(depth, int) and not isinstance(depth, bool) and depth > 0 else None


def _read_study(storage, summary):
    attrs = summary.user_attrs
    missing = [k for k in REQUIRED_ATTRS if not (isinstance(attrs.get(k), str) and attrs[k])]
    if missing:
        raise _Skip(f"missing user attr(s) {', '.join(missing)} (not a sweep study?)")
    backbone, dataset, metric, direction = (attrs[k] for k in REQUIRED_ATTRS)
    if direction not in ARROWS:
        raise _Skip(f"direction {direction!r} is neither 'maximize' nor 'minimize'")
    if len(summary.directions) != 1:
        raise _Skip("multi-objective study")
    if summary.directions[0].name.lower() != direction:
        raise _Skip(
            f"user attr direction {direction!r} disagrees with the study's direction "
            f"{summary.directions[0].name.lower()!r}"
        )
    expected = METRIC_DIRECTIONS.get(metric)
    if expected is not None and expected != direction:
        raise _Skip(f"metric {metric!r} is to be {expected}d, but direction is {direction!r}")

    final = problem = None
    if attrs.get("final") is not None:
        try:
            final = _parse_final(attrs["final"])
        except ValueError as exc:
            problem = str(exc)
            log.warning("study %r: %s; listed with the unfinished sweeps", summary.study_name, exc)

    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    points = []
    for trial in completed:
        user = trial.user_attrs
        test = user.get("test")
        # Diverged runs and runs without a test score say nothing about the model's quality.
        if user.get("status", "ok") != "ok" or not (_finite(trial.value) and _finite(test)):
            continue
        points.append(
            TrialPoint(trial.number, float(trial.value), float(test), _depth(user.get("config")))
        )
    tags = {k: attrs.get(k) if isinstance(attrs.get(k), str) else None
            for k in ("protocol", "data_version")}  # fmt: skip
    return StudyResult(
        summary.study_name, backbone, dataset, metric, direction, final, points,
        n_complete=len(completed), final_problem=problem, **tags,
    )  # fmt: skip


def _check_sqlite(parsed, shown):
    """Refuse a missing or non-Optuna SQLite file before SQLAlchemy creates an empty one."""
    database = parsed.database
    query = {k: str(v).lower() for k, v in parsed.query.items()}
    if database and database.startswith("file:") and query.get("uri") in ("true", "1"):
        if query.get("mode") == "memory":
            database = None
        else:
            database = urllib.parse.unquote(urllib.parse.urlsplit(database).path)
    if not database or database == ":memory:":
        raise LeaderboardError(
            f"{shown} is an in-memory SQLite database, which holds no studies; "
            "pass the URL of the file the sweep wrote"
        )
    path = Path(database).resolve()
    if not path.is_file():
        raise LeaderboardError(f"no SQLite file at {path} (from {shown}); not creating one")
    try:
        # Read-only URI: looking must not write (no journal, no tables).
        with sqlite3.connect(path.as_uri() + "?mode=ro", uri=True) as con:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        con.close()
    except sqlite3.Error as exc:
        raise LeaderboardError(f"{path} is not a readable SQLite database: {exc}") from None
    if "studies" not in {name for (name,) in rows}:
        raise LeaderboardError(f"{path} is not an Optuna storage (it has no 'studies' table)")


def open_storage(storage_url):
    """Open an Optuna RDB storage for reading, or raise :class:`LeaderboardError`.

    SQLite files are checked to exist first, and no tables are created in any database, so
    a wrong URL never leaves an empty storage behind.

    Parameters
    ----------
    storage_url : str
        Any Optuna/SQLAlchemy storage URL, e.g. ``sqlite:///runs/optuna.db``.

    Returns
    -------
    optuna.storages.RDBStorage
    """
    try:
        parsed = sqlalchemy.engine.make_url(storage_url)
    except Exception as exc:  # ArgumentError, ValueError: not a URL at all
        raise LeaderboardError(
            redact(f"invalid storage URL {storage_url!r}: {one_line(exc)}", storage_url)
        ) from None
    shown = redact(storage_url if parsed.password is None else parsed.render_as_string(True))
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed, shown)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # keep bad input to one stderr line
            return optuna.storages.RDBStorage(storage_url, skip_table_creation=True)
    except Exception as exc:  # unknown dialect, missing driver, refused connection, old schema
        raise LeaderboardError(
            redact(f"cannot open storage {shown}: {one_line(exc)}", storage_url)
        ) from None


def read_studies(storage):
    """Every study that follows the sweep contract, sorted by name; the others are skipped.

    Parameters
    ----------
    storage : str or optuna.storages.BaseStorage

    Returns
    -------
    results : list of StudyResult
    skipped : list of (str, str)
        ``(study name, reason)``; each is also logged as a warning.
    """
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    results, skipped, seen = [], [], {}
    for summary in sorted(summaries, key=lambda s: s.study_name):
        try:
            result = _read_study(storage, summary)
            key = (result.backbone, result.dataset, result.metric)
            if key in seen:
                raise _Skip(f"same backbone, dataset and metric as study {seen[key]!r}")
        except Exception as exc:  # a malformed study must never take the leaderboard down
            reason = str(exc) if isinstance(exc, _Skip) else f"unreadable: {one_line(exc)}"
            log.warning("skipping study %r: %s", summary.study_name, reason)
            skipped.append((summary.study_name, reason))
            continue
        seen[key] = result.name
        results.append(result)
    return results, skipped


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, order=True)
class Column:
    dataset: str
    metric: str
    direction: str

    @property
    def header(self):
        return f"{self.dataset} ({self.metric} {ARROWS[self.direction]})"


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float | None = None
    n: int | None = None
    failed: int = 0
    smoke: bool = False  # from a smoke-size study

    @property
    def count(self):
        """``(n=4)``, ``(n=3, 1 failed)``, ``(n=2, smoke)``, or "" when n is unknown (paper)."""
        if self.n is None:
            return ""
        return (
            f"(n={self.n}"
            + (f", {self.failed} failed" if self.failed else "")
            + (f", {SMOKE}" if self.smoke else "")
            + ")"
        )

    @property
    def text(self):
        """``mean ± std`` with fixed decimals (no n: callers place it)."""
        out = _fmt(self.mean)
        return out if self.std is None else f"{out} ± {_fmt(self.std)}"

    @property
    def rounded(self):
        """The value as shown, used to rank: equal-looking cells are all best."""
        return round(self.mean, DECIMALS) + 0.0 if math.isfinite(self.mean) else None


@dataclass
class Row:
    label: str
    source: str  # "ours" or "paper"
    cells: dict = field(default_factory=dict)  # Column -> Cell
    backbone: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where a published number went: beside ``matched`` studies, or apart with ``reason``."""

    ref: object  # a benchmarks.references.Reference
    column: Column
    matched: tuple = ()  # names of the studies it is comparable with
    reason: str = ""  # why it is not comparable (when matched is empty)

    @property
    def comparable(self):
        return bool(self.matched)


@dataclass
class Table:
    columns: list
    rows: list
    best: set  # {(row label, Column)}
    placements: list = field(default_factory=list)  # every reference of the table's columns


def _fmt(x):
    text = f"{x:.{DECIMALS}f}"
    return text[1:] if text == "-" + f"{0:.{DECIMALS}f}" else text  # no "-0.0000"


def _reference_label(ref):
    return f"{ref.label} ({ref.cite}{' ' + ref.version if ref.version else ''})"


def _listed(values):
    values = sorted({str(v) for v in values})
    return ", ".join(values) if values else "none"


def place_reference(ref, column, results):
    """Whether ``ref`` is comparable with a finished study of ``column``.

    The checks, in order (the first that fails is the reason given): some finished study in
    the column is on the reference's data version (when it names one); of those, some ran
    the reference's protocol; of those, when the reference is of a model this project
    implements (``ref.model``), some is a study of that model. A reference of a model we do
    not implement is a score on the same benchmark once data and protocol agree.

    Returns
    -------
    Placement
        The names of the matching studies, or the reason in words.
    """
    studies = [r for r in results if (r.dataset, r.metric) == (column.dataset, column.metric)]
    studies = sorted((r for r in studies if r.final is not None), key=lambda r: r.name)
    if not studies:
        return Placement(ref, column, reason="no finished study of ours on this dataset")
    if ref.data is not None:
        same = [r for r in studies if r.data_version == ref.data]
        if not same:
            versions = _listed(r.data_version or "not recorded" for r in studies)
            return Placement(ref, column, reason=(
                f"other data: published on {ref.data} ({DATA_NOTES.get(ref.data, ref.data)}), "
                f"ours on {versions}"
            ))  # fmt: skip
        studies = same
    same = [r for r in studies if ref.protocol is not None and r.protocol == ref.protocol]
    if not same:
        if all(r.smoke for r in studies):
            reason = (
                f"ours ran at a smoke-size budget (quick suite), not the {ref.protocol} protocol"
            )
        else:
            protocols = _listed(r.protocol or "not recorded" for r in studies)
            reason = f"other protocol: published {ref.protocol}, ours {protocols}"
        return Placement(ref, column, reason=reason)
    studies = same
    if ref.model is not None:
        same = [r for r in studies if r.backbone == ref.model]
        if not same:
            return Placement(ref, column, reason=(
                f"other model: {ref.architecture or ref.label} is our {ref.model}, and no "
                f"{ref.model} study of this data and protocol has finished (ours: "
                f"{_listed(r.backbone for r in studies)})"
            ))  # fmt: skip
        studies = same
    return Placement(ref, column, matched=tuple(r.name for r in studies))


def build_table(results, references=REFERENCES):
    """Rows (ours by backbone name, then the published ones in order) × columns (by dataset).

    Columns are the (dataset, metric) pairs of the studies read, whether or not their sweep
    is finished. A published number is placed in the table only when comparable (see
    :func:`place_reference`); every reference of the table's columns is kept in
    ``placements`` with where it went and why.
    """
    columns = sorted({Column(r.dataset, r.metric, r.direction) for r in results})
    by_key = {(c.dataset, c.metric): c for c in columns}

    ours = {}
    for result in sorted(results, key=lambda r: (r.backbone, r.dataset, r.metric)):
        if result.final is None:
            continue
        row = ours.setdefault(result.backbone, Row(display_name(result.backbone), "ours"))
        row.backbone = result.backbone
        column = by_key[(result.dataset, result.metric)]
        final = result.final
        row.cells[column] = Cell(final.mean, final.std, final.n, final.failed, result.smoke)
    rows = [ours[b] for b in sorted(ours)]
    labels = [row.label for row in rows]
    for row in rows:  # two names printing alike (gcn_ssm, gcn-ssm) stay apart
        if labels.count(row.label) > 1:
            row.label = f"{row.label} [{row.backbone}]"

    paper, placements = {}, []
    for ref in references:
        column = by_key.get((ref.dataset, ref.metric))
        if column is None:
            continue
        placement = place_reference(ref, column, results)
        placements.append(placement)
        if placement.comparable:
            label = _reference_label(ref)
            paper.setdefault(label, Row(label, "paper")).cells[column] = Cell(ref.mean, ref.std)
    rows.extend(paper.values())

    best = set()
    for column in columns:
        values = [(row.cells[column].rounded, row.label) for row in rows if column in row.cells]
        values = [(v, label) for v, label in values if v is not None]
        if values:
            pick = max if column.direction == "maximize" else min
            top = pick(v for v, _ in values)
            best.update((label, column) for v, label in values if v == top)
    return Table(columns, rows, best, placements)


# --------------------------------------------------------------------------- writers


def _md_escape(text):
    return text.replace("|", "\\|")


def render_markdown(table, results, skipped):
    """The Markdown leaderboard: main table, published numbers, running and skipped studies."""
    out = ["# Leaderboard", ""]
    smoke = sorted(r.name for r in results if r.smoke)
    if smoke:
        out.append(
            "**Smoke-size budget, not a reproduction.** "
            + (
                f"All {len(smoke)}"
                if len(smoke) == len(results)
                else f"{len(smoke)} of the {len(results)}"
            )  # fmt: skip
            + f" studies ran a smoke space (protocol `{SMOKE}`: the quick suite's few short trials "
            "on small data), and their cells say so: they check that the pipeline runs end to "
            "end, and reproduce no published number; none is compared with them. Studies: "
            + ", ".join(f"`{_md_escape(name)}`" for name in smoke)
            + "."
        )
        out.append("")
    out.append(
        "Test metric per model (rows) and dataset (columns). Ours: mean ± std over n seeds of "
        "the best configuration (chosen on validation) re-run, from each study's `final`. "
        "Published (cited in the row label): set beside ours only where comparable, i.e. same "
        "data version and protocol and, for a model this project implements, our study of that "
        "model; the others are listed below as context. ± only where published. **Bold**: best "
        "in the column among all rows (↑ higher / ↓ lower is better; equal at 4 decimals → all "
        f"bold). {DASH}: no result."
    )
    out.append("")
    if table.columns:
        out.append("| Model | " + " | ".join(_md_escape(c.header) for c in table.columns) + " |")
        out.append("| --- |" + " ---: |" * len(table.columns))
        for row in table.rows:
            cells = []
            for column in table.columns:
                cell = row.cells.get(column)
                if cell is None:
                    cells.append(DASH)
                    continue
                text = f"**{cell.text}**" if (row.label, column) in table.best else cell.text
                cells.append(f"{text} {cell.count}".strip())
            out.append(f"| {_md_escape(row.label)} | " + " | ".join(cells) + " |")
        out.append("")
        out.append(
            "Accuracy, ROC-AUC and AP are fractions in [0, 1]: heterophily numbers published in "
            "% are divided by 100. v1/v2: the arXiv version of the paper."
        )
        out.append("")

    placed = [p for p in table.placements if p.comparable]
    if placed:
        out += ["## Published numbers in the table", ""]
        out.append(
            "What each published row is, and the studies of ours it is comparable with (same "
            "data version and protocol; the same model where we implement it)."
        )
        out.append("")
        out.append("| Published | Column | Architecture | Data | Protocol | Beside |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for p in placed:
            beside = ", ".join(f"`{name}`" for name in p.matched)
            out.append(f"| {_reference_cells(p)} | {_md_escape(beside)} |")
        out += ["", _md_escape(_protocol_legend(placed)), ""]
    context = [p for p in table.placements if not p.comparable]
    if context:
        out += ["## Published numbers shown as context", ""]
        out.append(
            "Not comparable with any study here, so not in the table above, never bold, and "
            "not to be read as a gap between ours and theirs. The last column says why."
        )
        out.append("")
        out.append(
            "| Published | Column | Architecture | Data | Protocol | Value | Why not comparable |"
        )
        out.append("| --- | --- | --- | --- | --- | ---: | --- |")
        for p in context:
            value = Cell(p.ref.mean, p.ref.std).text
            out.append(f"| {_reference_cells(p)} | {value} | {_md_escape(p.reason)} |")
        out += ["", _md_escape(_protocol_legend(context)), ""]

    pending = [r for r in results if r.final is None]
    if pending:
        out += ["## Sweeps without a final evaluation", ""]
        out.append(
            "Not ranked above: the test value of the trial with the best validation value, "
            "one seed (n=1), before the final re-run over seeds. Provisional."
        )
        out.append("")
        out.append(
            "| Study | Model | Dataset | Metric | Best trial test (n=1) | Trial | Complete "
            "| Final |"
        )
        out.append("| --- | --- | --- | --- | ---: | ---: | ---: | --- |")
        for r in sorted(pending, key=lambda r: r.name):
            best = r.best_by("val")
            value, number = (_fmt(best.test), str(best.number)) if best else (DASH, DASH)
            metric = f"{r.metric} {ARROWS[r.direction]}"
            out.append(
                f"| {_md_escape(r.name)} | {_md_escape(display_name(r.backbone))} | "
                f"{_md_escape(r.dataset)} | {_md_escape(metric)} | {value} | {number} | "
                f"{r.n_complete} | {_md_escape(r.final_problem or 'not yet')} |"
            )
        out.append("")

    if skipped:
        out += ["## Skipped studies", ""]
        out += [f"- `{name}`: {_md_escape(reason)}" for name, reason in skipped]
        out.append("")
    return "\n".join(out)


def _reference_cells(placement):
    """Label, column, architecture, data and protocol of a published number, as table cells."""
    ref = placement.ref
    data = ref.data_note or DASH
    if ref.data:
        data = f"{data} ({ref.data})"
    cells = [
        _reference_label(ref),
        placement.column.header,
        ref.architecture or ref.label,
        data,
        ref.protocol or DASH,
    ]
    return " | ".join(_md_escape(c) for c in cells)


def _protocol_legend(placements):
    """One line naming each protocol tag of ``placements``."""
    tags = sorted({p.ref.protocol for p in placements if p.ref.protocol})
    return "Protocols: " + "; ".join(f"`{t}`: {PROTOCOLS.get(t, t)}" for t in tags) + "."


def render_csv(table):
    """The main table in long form, one line per (model, dataset), sorted."""
    lines = []
    for row in table.rows:
        for column, cell in row.cells.items():
            lines.append(
                [
                    row.label,
                    row.source,
                    column.dataset,
                    column.metric,
                    column.direction,
                    repr(cell.mean),
                    "" if cell.std is None else repr(cell.std),
                    "" if cell.n is None else str(cell.n),
                    "true" if (row.label, column) in table.best else "false",
                ]
            )
    lines.sort(key=lambda line: (line[2], line[3], line[1], line[0]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["model", "source", "dataset", "metric", "direction", "mean", "std", "n", "best"]
    )
    writer.writerows(lines)
    return buffer.getvalue()


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Λ": r"$\Lambda$",
    "≈": r"$\approx$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    DASH: "--",
}


def tex_escape(text):
    r"""Escape LaTeX specials and spell the few non-ASCII symbols we print.

    Examples
    --------
    >>> print(tex_escape("gpp_sssp 0.1 ± 0.2"))
    gpp\_sssp 0.1 $\pm$ 0.2
    """
    return "".join(_TEX.get(ch, ch) for ch in text)


def render_latex(table):
    """The main table as a booktabs ``tabular`` (``\\usepackage{booktabs}``)."""
    out = [
        f"% {PROG}: test metric, mean $\\pm$ std over n seeds; bold = best per column.",
        "% Needs \\usepackage{booktabs}.",
        "\\begin{tabular}{l" + "r" * len(table.columns) + "}",
        "\\toprule",
        " & ".join(["Model"] + [tex_escape(c.header) for c in table.columns]) + " \\\\",
    ]
    if any(cell.smoke for row in table.rows for cell in row.cells.values()):
        out.insert(
            2, "% Cells marked smoke: a smoke-size budget (quick suite), not a reproduction."
        )
    previous = None
    for row in table.rows:
        if row.source != previous:  # rule between our rows and the paper's
            out.append("\\midrule")
            previous = row.source
        cells = [tex_escape(row.label)]
        for column in table.columns:
            cell = row.cells.get(column)
            if cell is None:
                cells.append(tex_escape(DASH))
                continue
            # A math minus, not a hyphen, in front of negative numbers.
            text = re.sub(r"(^| )-(?=\d)", r"\1$-$", tex_escape(cell.text))
            text = f"\\textbf{{{text}}}" if (row.label, column) in table.best else text
            cells.append(f"{text} {cell.count.replace('n=', '$n$=')}".strip())
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- plots


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _png(fig):
    """The figure as PNG bytes without the software/version stamp (byte-stable output)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def plot_depth(column, results, colors, references=REFERENCES, select="val"):
    """PNG bytes: test metric vs number of layers on one dataset, one line per backbone.

    Parameters
    ----------
    column : Column
    results : list of StudyResult
        The studies of this column.
    colors : dict
        Backbone → matplotlib colour, the same in every figure.
    references : list of Reference
        Published values drawn as dashed lines in the colour of the backbone that implements
        their model (``Reference.model``); pass only the comparable ones.
    select : {"val", "test"}
        At each depth, the trial with the best validation value ("val") or the best test
        value ("test") gives the point.

    Returns
    -------
    bytes or None
        None when no trial of this column has a depth and a test value.
    """
    curves = {r.backbone: r.depth_curve(select) for r in results}
    curves = {b: c for b, c in sorted(curves.items()) if c}
    if not curves:
        return None
    import matplotlib.style
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    with matplotlib.style.context("default"):  # ignore the user's matplotlibrc
        fig = Figure(figsize=DEPTH_FIGSIZE, dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        depths = sorted({d for c in curves.values() for d in c})
        for backbone, curve in curves.items():
            xs = sorted(curve)
            ax.plot(
                xs,
                [curve[x] for x in xs],
                marker="o",
                color=colors[backbone],
                label=display_name(backbone),
            )
        for ref in references:
            if (ref.dataset, ref.metric) == (column.dataset, column.metric) and not ref.version:
                if ref.model in curves:
                    ax.axhline(
                        ref.mean,
                        color=colors[ref.model],
                        linestyle="--",
                        linewidth=1,
                        label=_reference_label(ref),
                    )
        if depths[-1] >= 8 * depths[0]:  # depths spanning ≥ 8× read better on a log axis
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        if len(depths) <= 12:  # label every depth tried, unless they would overlap
            ax.set_xticks(depths)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("number of layers")
        chosen = "best validation" if select == "val" else "best test"
        ax.set_ylabel(f"test {column.metric} ({ARROWS[column.direction]} better)")
        ax.set_title(
            f"{column.dataset}: test {column.metric} vs depth\n(trial with {chosen} per depth)"
        )
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        return _png(fig)


def plot_summary(table, colors):
    """PNG bytes: one panel per column, every row's value with its ± std as an error bar."""
    panels = [(c, [r for r in table.rows if c in r.cells]) for c in table.columns]
    panels = [(c, rows) for c, rows in panels if rows]
    if not panels:
        return None
    import matplotlib.style
    from matplotlib.figure import Figure

    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    tallest = max(len(rows) for _, rows in panels)
    size = (5.2 * ncols, (0.28 * tallest + 1.4) * nrows)
    with matplotlib.style.context("default"):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (column, rows) in zip(axes, panels):
            for y, row in enumerate(rows):
                cell = row.cells[column]
                ours = row.source == "ours"
                color = colors.get(row.backbone, "0.4") if ours else "0.4"
                ax.errorbar(
                    cell.mean,
                    -y,
                    xerr=cell.std,
                    fmt="o" if ours else "D",
                    color=color,
                    markerfacecolor=color if ours else "white",
                    capsize=3,
                )
            ax.set_yticks([-y for y in range(len(rows))])
            labels = ax.set_yticklabels([row.label for row in rows], fontsize="small")
            for label, row in zip(labels, rows):
                if (row.label, column) in table.best:
                    label.set_fontweight("bold")
            ax.set_ylim(-tallest + 0.5, 0.5)  # same row spacing in every panel
            ax.set_title(column.header, fontsize="medium")
            ax.grid(True, axis="x", alpha=0.3)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        return _png(fig)


# --------------------------------------------------------------------------- build


@dataclass
class Leaderboard:
    """What one build read and wrote."""

    files: dict
    results: list
    skipped: list


def _build(storage_url, out_dir, depth_select="val"):
    if depth_select not in ("val", "test"):
        raise ValueError(f"depth_select must be 'val' or 'test', not {depth_select!r}")
    storage = open_storage(storage_url)
    try:
        try:
            results, skipped = read_studies(storage)
        except Exception as exc:  # e.g. the server went away between connect and read
            raise LeaderboardError(
                redact(f"cannot read storage: {one_line(exc)}", storage_url)
            ) from None
    finally:
        storage.remove_session()
        storage.engine.dispose()  # close the file/socket now, not at interpreter exit
    if not results:
        if skipped:
            raise LeaderboardError(
                f"none of the {len(skipped)} studies in the storage follows the sweep contract "
                "(user attrs backbone, dataset, metric, direction)"
            )
        raise LeaderboardError("the storage holds no studies: nothing to tabulate")

    table = build_table(results)
    backbones = sorted({r.backbone for r in results})
    colors = {b: f"C{i % 10}" for i, b in enumerate(backbones)}

    outputs = {
        "leaderboard.md": render_markdown(table, results, skipped).encode(),
        "leaderboard.csv": render_csv(table).encode(),
        "leaderboard.tex": render_latex(table).encode(),
    }
    datasets = [c.dataset for c in table.columns]
    for column in table.columns:
        name = _slug(column.dataset)
        if datasets.count(column.dataset) > 1:  # one dataset scored in two metrics
            name += "_" + _slug(column.metric)
        mine = [r for r in results if (r.dataset, r.metric) == (column.dataset, column.metric)]
        comparable = [p.ref for p in table.placements if p.column == column and p.comparable]
        png = plot_depth(column, mine, colors, references=comparable, select=depth_select)
        if png is not None:
            outputs[f"depth_{name}.png"] = png
    summary = plot_summary(table, colors)
    if summary is not None:
        outputs["summary.png"] = summary

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Leaderboard(write_together(out_dir, outputs), results, skipped)


def build_leaderboard(storage_url, out_dir, *, depth_select="val"):
    """Read every sweep study in a storage and write the leaderboard tables and plots.

    Parameters
    ----------
    storage_url : str
        Optuna storage URL, e.g. ``sqlite:///runs/optuna.db``. Only read: a missing SQLite
        file is an error, never created.
    out_dir : str or Path
        Folder to write into (created if needed). Existing files of the same names are
        replaced; other files are left alone.
    depth_select : {"val", "test"}
        Which trial gives each point of the depth plots: best validation value (default,
        an honest estimate) or best test value (an optimistic envelope).

    Returns
    -------
    dict of str to Path
        File name → path of every file written: ``leaderboard.md``, ``leaderboard.csv``,
        ``leaderboard.tex``, ``depth_<dataset>.png`` per dataset with depth data, and
        ``summary.png``.

    Raises
    ------
    LeaderboardError
        The storage cannot be opened or read, or holds no study that follows the contract.
    """
    return _build(storage_url, out_dir, depth_select).files


def main(argv=None, prog=PROG):
    """``dgl-ssm-leaderboard --storage URL --out DIR``: returns the exit code (2: bad input)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Build the leaderboard (Markdown, CSV, LaTeX tables and PNG plots) from "
        "the Optuna storage of the sweeps.",
    )
    parser.add_argument(
        "--storage",
        default="sqlite:///runs/optuna.db",
        help="Optuna storage URL (default: %(default)s); only read, never created",
    )
    parser.add_argument(
        "--out", default="runs/leaderboard", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--depth-select",
        choices=("val", "test"),
        default="val",
        help="trial per depth in the depth plots: best validation (default) or best test",
    )
    args = parser.parse_args(argv)

    # Warnings (skipped studies) as plain "prog: WARNING: ..." lines on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prog}: %(levelname)s: %(message)s"))
    log.addHandler(handler)
    propagate, log.propagate = log.propagate, False
    try:
        board = _build(args.storage, args.out, args.depth_select)
    except LeaderboardError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: error: cannot write to {args.out}: {exc}", file=sys.stderr)
        return 2
    finally:
        log.removeHandler(handler)
        log.propagate = propagate

    pending = sum(r.final is None for r in board.results)
    print(
        f"{len(board.results)} studies ({pending} without final evaluation, "
        f"{len(board.skipped)} skipped) → {Path(args.out)}"
    )
    for path in board.files.values():
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
