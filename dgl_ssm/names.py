"""One error for every "unknown name" (models, datasets, …): the valid names and a guess."""

import difflib


def unknown_name(kind, name, valid):
    """A ``ValueError`` saying ``name`` is not a known ``kind``, with a close match if any."""
    valid = list(valid)
    close = difflib.get_close_matches(str(name), valid, n=1) or difflib.get_close_matches(
        str(name).lower(),
        valid,
        n=1,  # GCN_SSM for gcn_ssm: the names are lower case
    )
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown {kind} {name!r}.{hint} Valid names: {', '.join(valid)}.")
