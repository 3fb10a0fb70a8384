"""Issue 6's targets, each checked against a ratio measured in the run (printed, not asserted)."""

from .allocator import COMPACT, TCMALLOC, retimed_label, split_label
from .results import Target

SSM_OVERHEAD = 1.10  # GCN-SSM / GCN time per epoch at TARGET_DEPTH layers
TARGET_DEPTH = 64
CHECKPOINT_MEMORY = 0.25  # checkpointed / not: at least 4× lower peak memory
CHECKPOINT_TIME = 1.6
REFERENCE = 1.0  # ours / PyG time per epoch


def evaluate_targets(ratios, config, large_graph):
    """The targets with their measured ratio (``None`` → N/A when not measured).

    ``large_graph`` names the graph the checkpointing targets are read on. When depth 64 was
    not timed (``--quick``), the time targets are read at the deepest timed depth and say so.
    """

    def pick(section, numerator, denominator, graph, depth=None):
        found = _pick(section, numerator, denominator, graph, depth)
        for allocator in (TCMALLOC, COMPACT):  # timed only under another allocator
            if found is None and section == "time":
                found = _pick(
                    section, numerator, denominator, retimed_label(graph, allocator), depth
                )
        return found

    def _pick(section, numerator, denominator, graph, depth=None):
        for found in ratios:
            if (found.section, found.numerator, found.denominator, found.graph) == (
                section,
                numerator,
                denominator,
                graph,
            ) and (depth is None or found.depth == depth):
                return found
        return None

    graphs = []
    for found in ratios:
        plain_name = split_label(found.graph)[0]
        if found.section == "time" and plain_name not in graphs:
            graphs.append(plain_name)
    depth = TARGET_DEPTH if TARGET_DEPTH in config.depths else max(config.depths)
    note = "" if depth == TARGET_DEPTH else f"read at {depth} layers ({TARGET_DEPTH} not timed)"
    targets = []
    for graph in graphs:
        for backbone in config.backbones[:1]:
            targets.append(
                Target(
                    f"{backbone}_ssm / {backbone} time per epoch, {depth} layers, {graph}",
                    SSM_OVERHEAD,
                    pick("time", f"{backbone}_ssm", backbone, graph, depth),
                    note=note,
                )
            )
    first = config.backbones[0]
    deepest = config.deepest
    for denominator in (first, f"{first}_ssm"):
        targets.append(
            Target(
                f"checkpointed / {denominator} peak memory, {deepest} layers, {large_graph} "
                "(≥ 4× lower)",
                CHECKPOINT_MEMORY,
                pick("memory", f"{first}_ssm+ckpt", denominator, large_graph),
            )
        )
    for denominator in (first, f"{first}_ssm"):
        targets.append(
            Target(
                f"checkpointed / {denominator} time per epoch, {deepest} layers, {large_graph}",
                CHECKPOINT_TIME,
                pick("time", f"{first}_ssm+ckpt", denominator, large_graph, deepest),
            )
        )
    ref_depths = [d for d in config.reference_depths if d in config.depths]
    ref_depth = TARGET_DEPTH if TARGET_DEPTH in ref_depths else max(ref_depths, default=None)
    at = f"{ref_depth} layers" if ref_depth else "no reference depth timed"
    for graph in graphs:
        targets.append(
            Target(
                f"ours / PyG GCN-SSM time per epoch, {at}, {graph} (aim)",
                REFERENCE,
                pick("time", "gcn_ssm", "pyg:gcn_ssm", graph, ref_depth),
            )
        )
    return targets
