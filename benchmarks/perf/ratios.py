"""Every figure as a ratio against the plain DGL model measured in the same run."""

import statistics

from .results import Ratio
from .timing import Samples, paired_ratios


def ratio(section, numerator, denominator, metric, paired=True):
    """``numerator / denominator`` of two records; ``None`` unless both were measured.

    With ``paired`` (records timed in the same rounds) the value is the median of the
    per-round ratios and the range spans them; otherwise it is the ratio of the medians.
    """
    if numerator is None or denominator is None or not (numerator.ok and denominator.ok):
        return None
    if min(denominator.values) <= 0:  # e.g. a peak below the page granularity of RSS
        return None
    same_rounds = paired and len(numerator.values) == len(denominator.values)
    if same_rounds:
        values = paired_ratios(Samples(numerator.values), Samples(denominator.values))
    else:
        values = [numerator.median / denominator.median]
    return Ratio(
        section=section,
        graph=numerator.graph,
        numerator=numerator.variant,
        denominator=denominator.variant,
        metric=metric,
        value=statistics.median(values),
        low=min(values),
        high=max(values),
        depth=numerator.depth,
        k=numerator.k,
    )


def time_ratios(results, config):
    """SSM/plain per backbone, checkpointed/plain and /SSM, ours/PyG, per graph and depth."""
    ratios = []
    graphs = results.graphs("time")
    for graph in graphs:
        for depth in config.depths:

            def find(variant, graph=graph, depth=depth):
                return results.find("time", graph, variant, "seconds", depth=depth)

            for backbone in config.backbones:
                plain, ssm = find(backbone), find(f"{backbone}_ssm")
                ratios.append(ratio("time", ssm, plain, "seconds"))
            first = config.backbones[0]
            ckpt = find(f"{first}_ssm+ckpt")
            ratios.append(ratio("time", ckpt, find(first), "seconds"))
            ratios.append(ratio("time", ckpt, find(f"{first}_ssm"), "seconds"))
            ratios.append(ratio("time", find("gcn_ssm"), find("pyg:gcn_ssm"), "seconds"))
    return [r for r in ratios if r is not None]


def memory_ratios(results, config):
    """Peak memory of SSM and checkpointed SSM against plain (and checkpointed vs not)."""
    ratios = []
    first = config.backbones[0]
    for graph in results.graphs("memory"):

        def find(variant, graph=graph):
            return results.find("memory", graph, variant, "peak_mb", depth=config.deepest)

        plain, ssm, ckpt = find(first), find(f"{first}_ssm"), find(f"{first}_ssm+ckpt")
        ratios += [ratio("memory", ssm, plain, "peak_mb", paired=False)]
        ratios += [ratio("memory", ckpt, plain, "peak_mb", paired=False)]
        ratios += [ratio("memory", ckpt, ssm, "peak_mb", paired=False)]
    return [r for r in ratios if r is not None]


def khop_ratios(results, config):
    """Edges against the input graph; time and memory against one plain epoch."""
    ratios = []
    first = config.backbones[0]
    for graph in results.graphs("khop"):
        base_edges = results.find("khop", graph, "input", "edges", k=0)
        plain_time = results.find("time", graph, first, "seconds", depth=config.depths[0])
        plain_peak = results.find("memory", graph, first, "peak_mb", depth=config.deepest)
        for k in range(1, config.khop_max_k + 1):
            variant = f"khop(K={k})"
            edges = results.find("khop", graph, variant, "edges", k=k)
            if edges is None:
                break
            ratios.append(_khop_ratio(edges, base_edges, "edges"))
            seconds = results.find("khop", graph, variant, "seconds", k=k)
            ratios.append(_khop_ratio(seconds, plain_time, "seconds", edges))
            peak = results.find("khop", graph, variant, "peak_mb", k=k)
            ratios.append(_khop_ratio(peak, plain_peak, "peak_mb", edges))
    return [r for r in ratios if r is not None]


def _khop_ratio(numerator, denominator, metric, gate=None):
    if gate is not None and not gate.ok:
        return None
    found = ratio("khop", numerator, denominator, metric, paired=False)
    if found is not None:
        found.k = numerator.k
        found.depth = denominator.depth
    return found


def breakdown_ratios(results):
    """One layer's SSM cost against the plain layer's."""
    ratios = []
    for graph in results.graphs("breakdown"):

        def find(variant, graph=graph):
            return results.find("breakdown", graph, variant, "seconds")

        plain_layer = find("plain layer")
        for part in ("ssm layer", "residual layer", "conv", "plain update", "ssm update"):
            ratios.append(ratio("breakdown", find(part), plain_layer, "seconds"))
    return [r for r in ratios if r is not None]


def all_ratios(results, config):
    return (
        time_ratios(results, config)
        + memory_ratios(results, config)
        + khop_ratios(results, config)
        + breakdown_ratios(results)
    )
