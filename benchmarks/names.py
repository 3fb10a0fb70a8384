"""The printed names of models (``gcn_ssm`` → ``GCN-SSM``), without loading any model code."""

# Name pieces with a conventional spelling; anything else is upper-cased.
_TOKENS = {
    "gcn": "GCN",
    "gin": "GIN",
    "gat": "GAT",
    "sage": "SAGE",
    "ssm": "SSM",
    "gatedgcn": "GatedGCN",
    "gcnii": "GCNII",
    "gps": "GPS",
    "mlp": "MLP",
    "drew": "DRew",
    "graphcon": "GraphCON",
    "kipf": "Kipf",
    "platonov": "Platonov",
}


def display_name(model):
    """The printed name of a registered model name.

    Examples
    --------
    >>> [display_name(m) for m in ("gcn_ssm", "kgcn_ssm", "gatedgcn", "sage", "gcn_platonov")]
    ['GCN-SSM', 'kGCN-SSM', 'GatedGCN', 'SAGE', 'GCN-Platonov']
    """
    parts = []
    for token in model.split("_"):
        low = token.lower()
        if low in _TOKENS:
            parts.append(_TOKENS[low])
        elif low.startswith("k") and low[1:] in _TOKENS:  # k-hop variant: kgcn → kGCN
            parts.append("k" + _TOKENS[low[1:]])
        else:
            parts.append(token.upper())
    return "-".join(parts)
