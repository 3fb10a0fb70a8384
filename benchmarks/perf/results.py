"""What a run produces: raw measurements, ratios derived from them, and target verdicts."""

import statistics
from dataclasses import asdict, dataclass, field

from .allocator import split_label


@dataclass
class Record:
    """One measured quantity of one configuration, with every sample kept.

    ``section``: ``time``, ``memory``, ``khop`` or ``breakdown``; ``metric``: ``seconds``,
    ``peak_mb`` or ``edges``. Time samples are in round order, so two variants timed in the
    same rounds can be paired.
    """

    section: str
    graph: str
    variant: str
    metric: str
    values: list = field(default_factory=list)
    depth: int | None = None
    k: int | None = None
    status: str = "ok"
    note: str = ""

    @property
    def ok(self):
        return self.status == "ok" and bool(self.values)

    @property
    def median(self):
        return statistics.median(self.values) if self.values else None

    @property
    def low(self):
        return min(self.values) if self.values else None

    @property
    def high(self):
        return max(self.values) if self.values else None

    def as_dict(self):
        row = asdict(self)
        row.update(median=self.median, min=self.low, max=self.high, n=len(self.values))
        return row


@dataclass
class Ratio:
    """``numerator / denominator`` of one metric in one configuration.

    ``value`` is the median of the per-round ratios when both were timed in the same rounds
    (else the ratio of the single values); ``low``/``high`` span the per-round ratios.
    """

    section: str
    graph: str
    numerator: str
    denominator: str
    metric: str
    value: float
    low: float | None = None
    high: float | None = None
    depth: int | None = None
    k: int | None = None

    @property
    def label(self):
        return f"{self.numerator} / {self.denominator}"

    def where(self):
        parts = [self.graph]
        if self.depth is not None:
            parts.append(f"{self.depth} layers")
        if self.k is not None:
            parts.append(f"K={self.k}")
        return ", ".join(parts)

    def text(self):
        allocator = split_label(self.graph)[1]
        where = f" ({allocator} allocator)" if allocator else ""
        spread = ""
        if self.low is not None and self.high is not None and self.high > self.low:
            spread = f" [{self.low:.3f}–{self.high:.3f}]"
        return f"{self.value:.3f}{spread}{where}"

    def as_dict(self):
        row = asdict(self)
        row["label"] = self.label
        return row


@dataclass
class Target:
    """A goal on one ratio: ``ratio ≤ threshold`` (or ``≥``). ``ratio`` is None if unmeasured."""

    name: str
    threshold: float
    ratio: Ratio | None
    at_most: bool = True
    note: str = ""

    @property
    def verdict(self):
        if self.ratio is None:
            return "N/A"
        good = (
            self.ratio.value <= self.threshold
            if self.at_most
            else (self.ratio.value >= self.threshold)
        )
        return "PASS" if good else "MISS"

    @property
    def goal(self):
        return f"{'≤' if self.at_most else '≥'} {self.threshold:g}"

    def as_dict(self):
        return {
            "name": self.name,
            "goal": self.goal,
            "verdict": self.verdict,
            "ratio": None if self.ratio is None else self.ratio.as_dict(),
            "note": self.note,
        }


@dataclass
class Results:
    """Everything one run measured, plus free-text notes for the report."""

    records: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    profiles: dict = field(default_factory=dict)

    def graphs(self, section):
        """Graph names with records in ``section``, in the order they were measured."""
        seen = []
        for record in self.records:
            if record.section == section and record.graph not in seen:
                seen.append(record.graph)
        return seen

    def find(self, section, graph, variant, metric, depth=None, k=None):
        for record in self.records:
            if (record.section, record.graph, record.variant, record.metric) == (
                section,
                graph,
                variant,
                metric,
            ) and (record.depth, record.k) == (depth, k):
                return record
        return None
