"""Sweep storage → leaderboard tables and plots, from Optuna's trial tables and pandas.

Reads the sweep runner's studies (``<backbone>__<dataset>``; user attrs ``backbone``,
``dataset``, ``metric``, ``direction``, optionally ``protocol`` and ``data_version``; once
evaluated, ``final``: ``mean``, ``std``, ``values`` with None for a failed run, ``seeds``; per
trial, ``value`` (validation) and user attrs ``test``, ``status``, ``config``) and writes:

- ``leaderboard.md``: models × datasets, ``mean ± std (n=…)`` of each study's ``final``, best
  per column in bold, beside the comparable published numbers; the others apart, as context,
  with the reason; unfinished sweeps apart, provisional, never ranked; smoke-size studies marked;
- ``leaderboard.csv`` (the main table in long form) and ``leaderboard.tex`` (booktabs);
- ``depth_<dataset>.png`` (test metric vs number of layers; ``depth_<column header>.png``
  where a dataset has several columns) and ``summary.png``; such a plot an earlier
  leaderboard left in the folder, of a dataset no longer there, is removed.

The same storage gives the same bytes: orderings sorted, fixed float formats, no timestamp,
path or PNG software stamp. A dataset has a column per protocol and data version of its
finished studies, so a column ranks like with like. A published number
(:mod:`dgl_ssm_bench.references`) is *comparable*, and set in the main table, when some
finished study of ours in its column has its data version (where it names one), its protocol
and, for a model this project implements (``Reference.model``: the heterophily GCN is
``gcn_platonov``, not a bare ``gcn``), that model in its variant (``Reference.variant``: a
plain stack, a random Λ, …), as the study's best configuration shows. A final evaluation of a
trial that is no longer the study's best is not ranked.
"""

import argparse
import io
import logging
import math
import re
import sys
from pathlib import Path
from typing import NamedTuple

import optuna
import pandas as pd

from dgl_ssm_bench.arguments import parse_arguments
from dgl_ssm_bench.console import escape_unencodable
from dgl_ssm_bench.files import write_together
from dgl_ssm_bench.metrics import METRICS
from dgl_ssm_bench.names import display_name
from dgl_ssm_bench.references import DATA_NOTES, PROTOCOLS, REFERENCES, SMOKE, Reference

from .pruners import stopped_by_a_pruner
from .storage import DEFAULT_STORAGE, StorageError, one_line, open_storage, redact

log = logging.getLogger(__name__)

PROG = "dgl-ssm-leaderboard"
KEYS = ["backbone", "dataset", "metric", "direction"]  # the user attrs every study must have
STUDY = ["backbone", "dataset", "metric"]  # one study of each: a second is skipped
COLUMN = ["dataset", "metric", "direction"]  # what a column of the table is of, at least
DATASET_METRIC = ["dataset", "metric"]
TRIALS = ["study", "number", "val", "test", "depth"]
DECIMALS, DASH, DPI = 4, "–", 100
ARROWS = {"maximize": "↑", "minimize": "↓"}
DEFAULT_OUT = "runs/leaderboard"
DEPTH_SELECTS = ("val", "test")  # the trial per depth in the depth plots: best val or test
TEX = dict(zip("\\&%$#_{}~^±Λ≈↑↓–", [
    r"\textbackslash{}", r"\&", r"\%", r"\$", r"\#", r"\_", r"\{", r"\}", r"\textasciitilde{}",
    r"\textasciicircum{}", r"$\pm$", r"$\Lambda$", r"$\approx$", r"$\uparrow$", r"$\downarrow$",
    "--"]))  # fmt: skip


class Placement(NamedTuple):
    """Where a published number goes: in column ``header`` beside the studies ``beside`` (names
    of ours it is comparable with), or, with ``beside`` empty, apart as context, for ``reason``."""

    ref: Reference
    header: str
    beside: tuple
    reason: str


class LeaderboardError(Exception):
    """Nothing to tabulate, or the storage cannot be read: the CLI prints it and exits 2."""


class _Skip(Exception):
    """A study that does not follow the sweep contract; the message says what is wrong."""


# (dgl_ssm.checks has is_real and is_int, but importing dgl_ssm loads torch and DGL: seconds
# the leaderboard, which reads numbers from JSON, does without.)
def _number(x, finite=False):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and (
        not finite or math.isfinite(x))  # fmt: skip


def _finite_number(x):  # (Series.map passes no keywords before pandas 3)
    return _number(x, finite=True)


def _final(raw):
    """The columns a ``final`` evaluation fills; ``ValueError`` saying what is malformed."""
    if not isinstance(raw, dict):
        raise ValueError(f"'final' is a {type(raw).__name__}, not a dict")
    mean, std, values, seeds = (raw.get(k) for k in ("mean", "std", "values", "seeds"))
    if mean is None:
        raise ValueError("final evaluation without a mean (every final run failed)")
    for key, value in (("mean", mean), ("std", std)):
        if not (_number(value) or (key == "std" and value is None)):
            raise ValueError(f"'final' has a non-numeric {key!r}")
    # n counts the runs the mean is over: a failed run is None in `values`, counted apart.
    n = sum(_number(v, True) for v in values) if isinstance(values, list) else None
    failed = len(values) - n if isinstance(values, list) else 0
    n = len(seeds) if n is None and isinstance(seeds, list) else n
    std = None if std is None or n == 1 else float(std)  # one run has no spread to show
    return dict(final=True, mean=float(mean), std=std, n=n, failed=failed,
                config=raw.get("config"), final_trial=raw.get("trial"))  # fmt: skip


def _depth(config):
    """``config["model"]["num_layers"]`` as a positive int, or None."""
    try:
        depth = config["model"]["num_layers"]
    except (KeyError, TypeError, IndexError):
        return None
    return depth if isinstance(depth, int) and not isinstance(depth, bool) and depth > 0 else None


def _read_study(storage, summary):
    attrs, name = summary.user_attrs, summary.study_name
    if missing := [k for k in KEYS if not (isinstance(attrs.get(k), str) and attrs[k])]:
        raise _Skip(f"missing user attr(s) {', '.join(missing)} (not a sweep study?)")
    metric, direction = attrs["metric"], attrs["direction"]
    if direction not in ARROWS:
        raise _Skip(f"direction {direction!r} is neither 'maximize' nor 'minimize'")
    if len(summary.directions) != 1:
        raise _Skip("multi-objective study")
    if (theirs := summary.directions[0].name.lower()) != direction:
        raise _Skip(f"user attr direction {direction!r} disagrees with the study's direction "
                    f"{theirs!r}")  # fmt: skip
    if metric in METRICS and (expected := METRICS[metric].direction) != direction:
        raise _Skip(f"metric {metric!r} is to be {expected}d, but direction is {direction!r}")
    row = dict(name=name, **{k: attrs[k] for k in KEYS}, final=False, mean=math.nan, std=None,
               n=None, failed=0, problem=None, config=None, final_trial=None)  # fmt: skip
    row.update({k: attrs[k] if isinstance(attrs.get(k), str) else None
                for k in ("protocol", "data_version")})  # fmt: skip
    if attrs.get("final") is not None:
        try:
            row.update(_final(attrs["final"]))
        except ValueError as exc:
            row["problem"] = str(exc)
            log.warning("study %r: %s; listed with the unfinished sweeps", name, exc)
    table = optuna.load_study(study_name=name, storage=storage).trials_dataframe(
        attrs=("number", "value", "state", "user_attrs")).reindex(columns=[
            "number", "value", "state", "user_attrs_test", "user_attrs_status",
            "user_attrs_config"])  # fmt: skip
    # None may be, for the study to follow a published protocol.
    row["pruned"] = sum(map(stopped_by_a_pruner, table.state, table.user_attrs_status))
    table = table[table.state == "COMPLETE"]
    row["n_complete"] = len(table)
    # Diverged runs and runs without a test score say nothing about the model's quality.
    ok = (table.user_attrs_status.fillna("ok") == "ok") & table.value.map(_finite_number)
    if row["final"] and (stale := _stale(row["final_trial"], table[ok.astype(bool)], direction)):
        row.update(final=False, problem=stale)
        log.warning("study %r: %s; listed with the unfinished sweeps", name, stale)
    table = table[(ok & table.user_attrs_test.map(_finite_number)).astype(bool)]
    trials = [name, table.number, table.value, table.user_attrs_test,
              table.user_attrs_config.map(_depth)]  # fmt: skip
    return row, pd.DataFrame(dict(zip(TRIALS, trials))).astype({"val": float, "test": float})


def _stale(final_trial, complete, direction):
    """Why a final evaluation is not of the study's best trial now (trials run after it, or
    an evaluation interrupted before it was redone), or ""."""
    if complete.empty or not _number(final_trial):  # (a final that names no trial: unknown)
        return ""
    sign = -1.0 if direction == "maximize" else 1.0
    ranked = complete.assign(rank=sign * complete.value.astype(float)).sort_values(
        ["rank", "number"]
    )
    best = int(ranked.number.iloc[0])
    own = ranked[ranked.number == final_trial]
    if not own.empty and own["rank"].iloc[0] <= ranked["rank"].iloc[0]:
        return ""  # its trial is (one of) the best: storages break ties their own way
    return (f"the final evaluation is of trial {final_trial}, but trial {best} is best now: "
            "run the sweep again to evaluate it")  # fmt: skip


def read_studies(storage):
    """``(studies, trials, skipped)``: the studies that follow the sweep contract, one row each
    indexed by name (user attrs; ``final``: a usable final evaluation, with ``mean``, ``std``,
    ``n``, ``failed``, else the ``problem`` with it; ``n_complete`` trials, ``pruned`` by a
    pruner); their usable trials
    (complete, not diverged, finite val and test; with ``depth``); the others' ``(name, reason)``.
    """
    rows, trials, skipped, seen = [], [], [], {}
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    for summary in sorted(summaries, key=lambda s: s.study_name):
        try:
            row, usable = _read_study(storage, summary)
            if (key := tuple(row[k] for k in STUDY)) in seen:
                raise _Skip(f"same backbone, dataset and metric as study {seen[key]!r}")
        except Exception as exc:  # a malformed study must never take the leaderboard down
            reason = str(exc) if isinstance(exc, _Skip) else f"unreadable: {one_line(exc)}"
            log.warning("skipping study %r: %s", summary.study_name, reason)
            skipped.append((summary.study_name, reason))
            continue
        seen[key] = row["name"]
        rows.append(row)
        trials.append(usable)
    studies = pd.DataFrame(rows, columns=["name", *KEYS, "protocol", "data_version", "final",
                           "mean", "std", "n", "failed", "problem", "n_complete", "pruned",
                           "config", "final_trial"])  # fmt: skip
    trials = pd.concat(trials, ignore_index=True) if trials else pd.DataFrame(columns=TRIALS)
    return studies.set_index("name"), trials, skipped


def best_trials(studies, trials, key, by=("study",)):
    """The best trial by ``key`` ("val" or "test") of each group ``by``; ties: the earlier."""
    sign = trials.study.map(studies.direction).map({"maximize": -1.0, "minimize": 1.0})
    ranked = trials.assign(rank=sign * trials[key]).sort_values([*by, "rank", "number"])
    return ranked.drop_duplicates(list(by))


def depth_curves(studies, trials, select="val"):
    """``{study: {num_layers: test value}}``, the trial per depth chosen by ``select``."""
    best = best_trials(studies, trials.dropna(subset=["depth"]), select, by=("study", "depth"))
    return {s: {int(d): t for d, t in zip(g.depth, g.test)} for s, g in best.groupby("study")}


def _fmt(x):
    text = f"{x:.{DECIMALS}f}"
    return text[1:] if text == "-" + f"{0:.{DECIMALS}f}" else text  # no "-0.0000"


def _text(mean, std):
    return _fmt(mean) if pd.isna(std) else f"{_fmt(mean)} ± {_fmt(std)}"


def _reference_label(ref):
    return f"{ref.label} ({ref.cite}{' ' + ref.version if ref.version else ''})"


def _listed(values):
    return ", ".join(sorted({str(v) for v in values})) or "none"


def place_reference(ref, studies):
    """``(names of the comparable studies, "")`` or ``((), why it is not comparable)``: the
    first that fails of some finished study of the column on its data version (if it names
    one), of those some on its protocol, of those some of its model (if we implement it), of
    those some with no trial pruned."""
    ours = studies[(studies.dataset == ref.dataset) & (studies.metric == ref.metric)]
    if (ours := ours[ours.final.astype(bool)]).empty:
        return (), "no finished study of ours on this dataset"
    if ref.data is not None:
        if (same := ours[ours.data_version == ref.data]).empty:
            return (), (f"other data: published on {ref.data} "
                        f"({DATA_NOTES.get(ref.data, ref.data)}), ours on "
                        f"{_listed(ours.data_version.fillna('not recorded'))}")  # fmt: skip
        ours = same
    if ref.protocol is None:
        return (), (f"protocol not known: {ref.source} does not give the protocol of this number, "
                    "so no study of ours can be shown to match it")  # fmt: skip
    if (same := ours[ours.protocol == ref.protocol]).empty:
        if (ours.protocol == SMOKE).all():
            return (), (f"ours ran at a smoke-size budget (quick suite), not the {ref.protocol} "
                        "protocol")  # fmt: skip
        # None: a space that names no protocol (e.g. one that changed its parent's values),
        # or a study from before protocols were recorded.
        return (), (f"other protocol: published {ref.protocol}, ours "
                    f"{_listed(ours.protocol.fillna('none recorded'))}")  # fmt: skip
    if ref.model is not None:
        if (model := same[same.backbone == ref.model]).empty:
            return (), (f"other model: {ref.architecture or ref.label} is our {ref.model}, and "
                        f"no {ref.model} study of this data and protocol has finished (ours: "
                        f"{_listed(same.backbone)})")  # fmt: skip
        same = model
    if (unpruned := same[same.pruned == 0]).empty:
        return (), (f"pruned: the {ref.protocol} protocol trains every configuration to its "
                    "end, ours stopped some early ("
                    + ", ".join(f"`{name}` {n}" for name, n in same.pruned.items())
                    + " trials pruned; a new study swept without --pruner follows it)")  # fmt: skip
    same = unpruned
    if ref.variant is not None:
        why = {name: ref.variant(config) for name, config in same.config.items()}
        if not (same := same[[not why[name] for name in same.index]]).empty:
            return tuple(same.index), ""
        return (), "other variant: " + "; ".join(f"{why[name]} (`{name}`)" for name in why)
    return tuple(same.index), ""


def table_columns(studies):
    """The main table's columns: one per dataset, metric, protocol and data version of the
    finished studies (so a column only ranks like with like; a dataset with none finished
    has one), with its ``header`` (protocol and data version said where a dataset has
    several columns) and its studies' names (an unfinished study in the column of its kind,
    or in its dataset's first)."""
    keys = [*COLUMN, "protocol", "data_version"]
    tagged = studies.assign(protocol=studies.protocol.fillna(""),
                            data_version=studies.data_version.fillna(""))  # fmt: skip
    finished = tagged.final.astype(bool)
    of_finished = tagged[finished].set_index(DATASET_METRIC).index
    unseen = ~tagged.set_index(DATASET_METRIC).index.isin(of_finished)
    shown = pd.concat([tagged[finished][keys], tagged[unseen][COLUMN]])  # untagged: no final
    columns = shown.fillna("").drop_duplicates().sort_values(keys, ignore_index=True)
    several = columns.groupby(["dataset", "metric"]).dataset.transform("size") > 1
    columns["header"] = [
        f"{d} ({m} {ARROWS[x]})" + (f" [{p or 'no protocol'}{', ' + v if v else ''}]" if more
                                    else "")
        for (d, m, x, p, v), more in zip(columns[keys].to_numpy(), several)
    ]  # fmt: skip
    own = {tuple(k): h for k, h in zip(columns[keys].to_numpy(), columns.header)}
    first = columns.drop_duplicates(DATASET_METRIC).set_index(DATASET_METRIC).header
    member = {name: own.get(tuple(row[keys]), first[(row.dataset, row.metric)])
              for name, row in tagged.iterrows()}  # fmt: skip
    columns["studies"] = [tuple(n for n, h in member.items() if h == header)
                          for header in columns.header]  # fmt: skip
    return columns[[*COLUMN, "header", "studies"]]


def build_table(studies, references=REFERENCES):
    """``(cells, headers, placements)``: the main table in long form, one row per cell, in
    order (ours by backbone, then the comparable published numbers; columns sorted by dataset);
    the column headers; each reference of those columns as a :class:`Placement`.
    """
    columns = table_columns(studies)
    header_of = {name: h for h, names in zip(columns.header, columns.studies) for name in names}
    ours = studies[studies.final.astype(bool)].sort_values(STUDY)
    ours = ours.assign(label=ours.backbone.map(display_name), source="ours",
                       smoke=ours.protocol == SMOKE)  # fmt: skip
    twins = ours.groupby("label").backbone.transform("nunique") > 1  # gcn_ssm and gcn-ssm
    ours.loc[twins, "label"] = ours.label + " [" + ours.backbone + "]"
    paper, placements = [], []
    for ref in references:
        column = columns[(columns.dataset == ref.dataset) & (columns.metric == ref.metric)]
        if column.empty:
            continue
        matched, reason = place_reference(ref, studies)
        if not matched:
            placements.append(Placement(ref, column.header.iloc[0], (), reason))
        # In every column that holds a match (a reference of data without versions matches
        # studies of any recorded version):
        for header in dict.fromkeys(header_of[name] for name in matched):
            beside = tuple(name for name in matched if header_of[name] == header)
            placements.append(Placement(ref, header, beside, ""))
            paper.append((_reference_label(ref), header, ref.protocol, ref.data, ref.mean,
                          ref.std))  # fmt: skip
    paper = pd.DataFrame(paper, columns=["label", "header", "protocol", "data_version", "mean",
                                         "std"]).astype({"mean": float, "std": float})  # fmt: skip
    order = {label: i for i, label in enumerate(dict.fromkeys([*ours.label, *paper.label]))}
    paper = paper.drop_duplicates(["label", "header"], keep="last")
    ours = ours.assign(header=ours.index.map(header_of)).drop(columns=COLUMN)
    cells = pd.concat([ours, paper.assign(source="paper", failed=0, smoke=False)])
    cells = cells.merge(columns.drop(columns="studies").reset_index(names="column"), on="header")
    cells = cells.assign(row=cells.label.map(order)).sort_values(["row", "column"])
    rounded = cells["mean"].map(lambda m: round(m, DECIMALS) if math.isfinite(m) else math.nan)
    signed = rounded.where(cells.direction == "minimize", -rounded)  # equal as shown: all best
    # A cell some of whose final runs failed is not ranked: its mean is over the runs that
    # survived, so a model that diverged on most seeds could win on the one it did not.
    signed = signed.where(cells.failed.fillna(0) == 0)
    cells["best"] = signed == signed.groupby(cells.column).transform("min")
    cells["text"] = [_text(m, s) for m, s in zip(cells["mean"], cells["std"])]
    cells["count"] = [
        "" if pd.isna(n) else f"(n={n:.0f}" + (f", {f:.0f} failed" if f else "")
        + (f", {SMOKE}" if smoke else "") + ")"
        for n, f, smoke in zip(cells.n, cells.failed, cells.smoke)
    ]  # fmt: skip
    cells = cells.astype({"text": str, "count": str}).reset_index(drop=True)  # also when empty
    return cells, list(columns.header), placements


def _esc(text):
    return str(text).replace("|", "\\|")


def _md_table(header, rows, right=()):
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return ["| " + " | ".join(row) + " |" for row in (header, rule, *rows)] + [""]


def _grid(cells, headers, text, empty):
    """The wide table: row labels × column headers, ``text`` of each cell, ``empty`` elsewhere."""
    grid = cells.pivot(index="label", columns="header", values=text)
    return grid.reindex(index=cells.label.unique(), columns=headers).fillna(empty)


def _published(title, intro, placements, header, cells):
    protocols = sorted({p.ref.protocol for p in placements if p.ref.protocol})
    legend = "; ".join(f"`{t}`: {PROTOCOLS.get(t, t)}" for t in protocols)
    rows = []
    for place in placements:
        ref = place.ref
        data = (ref.data_note or DASH) + (f" ({ref.data})" if ref.data else "")
        about = [_reference_label(ref), place.header, ref.architecture or ref.label, data,
                 ref.protocol]  # fmt: skip
        rows.append([*(_esc(c or DASH) for c in about), *cells(place)])
    head = ["Published", "Column", "Architecture", "Data", "Protocol", *header]
    return [f"## {title}", "", intro, "", *_md_table(head, rows, (5,) if len(header) > 1 else ()),
            _esc(f"Protocols: {legend}."), ""]  # fmt: skip


def render_markdown(studies, trials, cells, headers, placements, skipped):
    """The Markdown leaderboard: main table, published numbers, running and skipped studies."""
    out = ["# Leaderboard", ""]
    if smoke := list(studies.index[studies.protocol == SMOKE]):
        some = (
            f"{len(smoke)} of the {len(studies)} studies"
            if len(smoke) < len(studies)
            else "The one study"
            if len(studies) == 1
            else f"All {len(studies)} studies"
        )
        out += [
            f"**Smoke-size budget, not a reproduction.** {some} ran a smoke space (protocol "
            f"`{SMOKE}`: the tiny and quick suites' few short trials on small data), "
            "and their cells say so: they check that the pipeline runs end to end, and reproduce "
            "no published number; none is compared with them. Studies: "
            + ", ".join(f"`{_esc(name)}`" for name in smoke) + ".", "",
        ]  # fmt: skip
    out += [
        "Test metric per model (rows) and dataset (columns). Ours: mean ± std over n seeds of "
        "the best configuration (chosen on validation) re-run, from each study's `final`. "
        "Published (cited in the row label): set beside ours only where comparable, i.e. same "
        "data version and protocol and, for a model this project implements, our study of that "
        "model in the same variant; the others are listed below as context. A dataset whose "
        "studies ran under several protocols or data versions has a column for each, named in "
        "[brackets]. ± only where published and n > 1. **Bold**: best in the column among all "
        "rows (↑ higher / ↓ lower is better; equal at 4 decimals → all bold; a cell with failed "
        f"final runs is not ranked). {DASH}: no result.", "",
    ]  # fmt: skip
    shown = cells.text.where(~cells.best, "**" + cells.text + "**") + " " + cells["count"]
    grid = _grid(cells.assign(md=shown.str.strip()), headers, "md", DASH)
    out += _md_table(["Model", *map(_esc, headers)],
                     [[_esc(label), *row] for label, row in zip(grid.index, grid.to_numpy())],
                     right=range(1, len(headers) + 1))  # fmt: skip
    out += ["Accuracy, ROC-AUC and AP are fractions in [0, 1]: heterophily numbers published in "
            "% are divided by 100. v1/v2: the arXiv version of the paper.", ""]  # fmt: skip
    if placed := [p for p in placements if p.beside]:
        out += _published(
            "Published numbers in the table",
            "What each published row is, and the studies of ours it is comparable with (same "
            "data version and protocol; the same model where we implement it).",
            placed, ["Beside"], lambda place: [_esc(", ".join(f"`{n}`" for n in place.beside))],
        )  # fmt: skip
    if context := [p for p in placements if not p.beside]:
        out += _published(
            "Published numbers shown as context",
            "Not comparable with any study here, so not in the table above, never bold, and "
            "not to be read as a gap between ours and theirs. The last column says why.",
            context, ["Value", "Why not comparable"],
            lambda place: [_text(place.ref.mean, place.ref.std), _esc(place.reason)],
        )  # fmt: skip
    if not (pending := studies[~studies.final.astype(bool)]).empty:
        best = best_trials(studies, trials, "val").set_index("study")
        rows = [[*map(_esc, (name, display_name(s.backbone), s.dataset,
                             f"{s.metric} {ARROWS[s.direction]}")),
                 *((_fmt(best.test[name]), f"{best.number[name]:.0f}") if name in best.index
                   else (DASH, DASH)),
                 str(s.n_complete), _esc("not yet" if pd.isna(s.problem) else s.problem)]
                for name, s in pending.iterrows()]  # fmt: skip
        out += ["## Sweeps without a final evaluation", "",
                "Not ranked above: the test value of the trial with the best validation value, "
                "one seed (n=1), before the final re-run over seeds. Provisional.", "",
                *_md_table(["Study", "Model", "Dataset", "Metric", "Best trial test (n=1)",
                            "Trial", "Complete", "Final"], rows, right=(4, 5, 6))]  # fmt: skip
    if skipped:
        out += ["## Skipped studies", "", *(f"- `{n}`: {_esc(r)}" for n, r in skipped), ""]
    return "\n".join(out)


def render_csv(cells):
    """The main table in long form, one line per (model, column), sorted; a smoke-size study
    says so in ``protocol``."""

    def text(values):
        return values.map(lambda v: v if isinstance(v, str) else "")

    return pd.DataFrame({
        "model": cells.label, "source": cells.source, "dataset": cells.dataset,
        "metric": cells.metric, "direction": cells.direction,
        "protocol": text(cells.protocol), "data_version": text(cells.data_version),
        "mean": cells["mean"].map(repr),
        "std": cells["std"].map(lambda s: "" if pd.isna(s) else repr(s)),
        "n": cells.n.map(lambda n: "" if pd.isna(n) else f"{n:.0f}"),
        "best": cells.best.map({True: "true", False: "false"}),
    }).sort_values(["dataset", "metric", "protocol", "data_version", "source", "model"]).to_csv(
        index=False, lineterminator="\n")  # fmt: skip


def tex_escape(text):
    r"""Escape LaTeX specials and spell the few non-ASCII symbols we print.

    >>> print(tex_escape("gpp_sssp 0.1 ± 0.2"))
    gpp\_sssp 0.1 $\pm$ 0.2
    """
    return "".join(TEX.get(ch, ch) for ch in text)


def render_latex(cells, headers):
    """The main table as a booktabs ``tabular``, set by pandas' Styler."""
    # A math minus, not a hyphen, in front of negative numbers; $n$ in the counts.
    text = cells.text.map(lambda t: re.sub(r"(^| )-(?=\d)", r"\1$-$", tex_escape(t)))
    text = text.where(~cells.best, "\\textbf{" + text + "}")
    text = (text + " " + cells["count"].str.replace("n=", "$n$=")).str.strip()
    grid = _grid(cells.assign(tex=text), headers, "tex", tex_escape(DASH))
    grid = grid.set_axis(list(map(tex_escape, headers)), axis=1)
    grid.insert(0, "Model", list(map(tex_escape, grid.index)))
    styler = grid.reset_index(drop=True).style.hide(axis="index")
    lines = styler.to_latex(column_format="l" + "r" * len(headers), hrules=True).splitlines()
    rule = lines.index("\\midrule")  # under the header, and one between ours and the paper's
    ours = int((cells.drop_duplicates("label").source == "ours").sum())
    if 0 < ours < len(grid):
        lines.insert(rule + 1 + ours, "\\midrule")
    if grid.empty:
        del lines[rule]
    head = ["% dgl-ssm leaderboard: test metric, mean $\\pm$ std over n seeds;"
            " bold = best per column.",
            "% Needs \\usepackage{booktabs}."]  # fmt: skip
    if cells.smoke.any():
        head.append("% Cells marked smoke: a smoke-size budget (quick suite), not a reproduction.")
    return "\n".join([*head, *lines, ""])


def _png(size, draw, *args):
    """PNG bytes of a figure ``draw(fig, *args)`` drew, in matplotlib's default style."""
    import matplotlib.style
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"):  # ignore the user's matplotlibrc
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        draw(fig, *args)
        buffer = io.BytesIO()  # no software/version stamp: the bytes depend on the data only
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _draw_depth(fig, column, curves, colors, references, select):
    """Test metric vs number of layers, a line per backbone (``curves``: backbone → ``{depth:
    test}``), and the comparable published numbers of those backbones' models, dashed."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    dataset, metric, direction = column
    ax = fig.add_subplot()
    depths = sorted({d for c in curves.values() for d in c})
    for backbone, curve in curves.items():
        xs = sorted(curve)
        ax.plot(xs, [curve[x] for x in xs], marker="o", color=colors[backbone],
                label=display_name(backbone))  # fmt: skip
    for ref in references:
        ax.axhline(ref.mean, color=colors[ref.model], linestyle="--", linewidth=1,
                   label=_reference_label(ref))  # fmt: skip
    if depths[-1] >= 8 * depths[0]:  # depths spanning ≥ 8× read better on a log axis
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if len(depths) <= 12:  # label every depth tried, unless they would overlap
        ax.set_xticks(depths)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("number of layers")
    ax.set_ylabel(f"test {metric} ({ARROWS[direction]} better)")
    chosen = "best validation" if select == "val" else "best test"
    ax.set_title(f"{dataset}: test {metric} vs depth\n(trial with {chosen} per depth)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def _draw_summary(fig, panels, tallest, colors):
    """One panel per column: every row's value with its ± std as an error bar, cut at the
    values the metric can take (accuracy, ROC-AUC, AP in [0, 1]; MAE ≥ 0): two seeds at 1.0
    and 0.6 have std 0.28, and a bar to 1.08 would draw a score no run can reach."""
    ncols = min(3, len(panels))
    axes = fig.subplots(math.ceil(len(panels) / ncols), ncols, squeeze=False).ravel()
    for ax, (header, rows) in zip(axes, panels):
        for y, row in enumerate(rows.itertuples()):
            ours = row.source == "ours"
            color = colors.get(row.backbone, "0.4") if ours else "0.4"
            ax.errorbar(row.mean, -y, xerr=_error_bar(row.mean, row.std, row.metric),
                        fmt="o" if ours else "D", color=color,
                        markerfacecolor=color if ours else "white", capsize=3)  # fmt: skip
        ax.set_yticks([-y for y in range(len(rows))])
        labels = ax.set_yticklabels(list(rows.label), fontsize="small")
        for label in (label for label, best in zip(labels, rows.best) if best):
            label.set_fontweight("bold")
        ax.set_ylim(-tallest + 0.5, 0.5)  # same row spacing in every panel
        ax.set_title(header, fontsize="medium")
        ax.grid(True, axis="x", alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)


def _error_bar(mean, std, metric):
    """``[[below], [above]]`` the mean for Matplotlib's ``xerr``: ± std within the metric's
    bounds (a metric not in :data:`METRICS`, none), or None without a std."""
    if pd.isna(std):
        return None
    low, high = METRICS[metric].bounds if metric in METRICS else (-math.inf, math.inf)
    if not low <= mean <= high:  # (no value of this metric: drawn as it is)
        return std
    return [[min(std, mean - low)], [min(std, high - mean)]]


def _build(storage_url, out_dir, depth_select="val"):
    if depth_select not in ("val", "test"):
        raise ValueError(f"depth_select must be 'val' or 'test', not {depth_select!r}")
    storage = open_storage(storage_url, read_only=True)
    try:
        studies, trials, skipped = read_studies(storage)
    except Exception as exc:  # e.g. the server went away between connect and read
        message = redact(f"cannot read storage: {one_line(exc)}", storage_url)
        raise LeaderboardError(message) from None
    finally:
        storage.remove_session()
        storage.engine.dispose()  # close the file/socket now, not at interpreter exit
    if studies.empty:
        raise LeaderboardError(
            f"none of the {len(skipped)} studies in the storage follows the sweep contract "
            "(user attrs backbone, dataset, metric, direction)" if skipped
            else "the storage holds no studies: nothing to tabulate")  # fmt: skip

    cells, headers, placements = build_table(studies)
    colors = {b: f"C{i % 10}" for i, b in enumerate(sorted(set(studies.backbone)))}
    outputs = {
        "leaderboard.md": render_markdown(studies, trials, cells, headers, placements, skipped),
        "leaderboard.csv": render_csv(cells),
        "leaderboard.tex": render_latex(cells, headers),
    }
    outputs = {name: text.encode() for name, text in outputs.items()}
    curves = depth_curves(studies, trials, depth_select)
    columns = table_columns(studies)
    for dataset, metric, direction, header, names in columns.to_numpy():
        twice = (columns.dataset == dataset).sum() > 1  # two metrics, protocols or data
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", header if twice else dataset).strip("_")
        mine = studies.loc[list(names)]
        if mine := {b: curves[s] for b, s in sorted(zip(mine.backbone, mine.index)) if s in curves}:
            refs = [p.ref for p in placements if p.header == header and p.beside
                    and not p.ref.version and p.ref.model in mine]  # fmt: skip
            args = (dataset, metric, direction), mine, colors, refs, depth_select
            outputs[f"depth_{name}.png"] = _png((6.4, 4.2), _draw_depth, *args)
    if panels := [(h, cells[cells.header == h]) for h in headers if (cells.header == h).any()]:
        tallest = max(len(rows) for _, rows in panels)
        size = (5.2 * min(3, len(panels)), (0.28 * tallest + 1.4) * math.ceil(len(panels) / 3))
        outputs["summary.png"] = _png(size, _draw_summary, panels, tallest, colors)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = write_together(Path(out_dir), outputs)
    for plot in [*Path(out_dir).glob("depth_*.png"), Path(out_dir) / "summary.png"]:
        if plot.name not in outputs:  # an earlier leaderboard's: it would read as current
            plot.unlink(missing_ok=True)
    return written, studies, skipped


def build_leaderboard(storage_url, out_dir, *, depth_select="val"):
    """Read every sweep study of an Optuna storage (only read: a missing SQLite file is an
    error, never created); write the leaderboard tables and plots into ``out_dir``.

    ``depth_select``: the trial per depth in the depth plots, best validation value ("val",
    an honest estimate) or best test value ("test", an optimistic envelope). Returns
    ``{file name: path}``; raises :class:`LeaderboardError` or :class:`~.storage.StorageError`.
    """
    return _build(storage_url, out_dir, depth_select)[0]


def write_error(out_dir, error):
    """What went wrong writing the leaderboard into ``out_dir`` (an ``OSError``), naming the
    file the user knows, not a temporary one it was to replace."""
    if Path(out_dir).is_file():
        return f"cannot write the leaderboard to {out_dir}: it is a file, not a folder"
    target = error.filename2 or error.filename  # a rename names the temp file first
    where = f" ({target})" if target else ""
    return f"cannot write the leaderboard to {out_dir}: {error.strerror or error}{where}"


def main(argv=None, prog=PROG):
    """``dgl-ssm-leaderboard --storage URL --out DIR``: returns the exit code (2: bad input)."""
    escape_unencodable()
    parser = argparse.ArgumentParser(prog=prog, description="Build the leaderboard (Markdown, "
                                     "CSV, LaTeX tables and PNG plots) from the Optuna storage "
                                     "of the sweeps.")  # fmt: skip
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL "
                        "(default: %(default)s); only read, never created")  # fmt: skip
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="output folder (default: %(default)s)")  # fmt: skip
    parser.add_argument("--depth-select", choices=DEPTH_SELECTS, default="val",
                        help="trial per depth in the depth plots: best validation (default) "
                        "or best test")  # fmt: skip
    args = parse_arguments(parser, argv)
    return write_leaderboard(args.storage, args.out, args.depth_select, prog)


def write_leaderboard(storage, out, depth_select="val", prog=PROG):
    """The command's work once its options are parsed: build the leaderboard from ``storage``
    into ``out``, say what was written, or one line of error; returns the exit code (2: bad
    input)."""
    # Warnings (skipped studies) as plain "prog: WARNING: ..." lines on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prog}: %(levelname)s: %(message)s"))
    log.addHandler(handler)
    propagate, log.propagate = log.propagate, False
    try:
        files, studies, skipped = _build(storage, out, depth_select)
    except (LeaderboardError, StorageError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: error: {write_error(out, exc)}", file=sys.stderr)
        return 2
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
    pending = int((~studies.final.astype(bool)).sum())
    print(f"{len(studies)} studies ({pending} without final evaluation, {len(skipped)} skipped) "
          f"→ {Path(out)}")  # fmt: skip
    print("\n".join(f"  {path}" for path in files.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
