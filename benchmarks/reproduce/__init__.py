"""Reproduce the paper's experiments at its protocol, or at a stated CPU cut, resumably.

``dgl-ssm-bench reproduce --part gpp --jobs 2`` runs every configuration of a part
(:mod:`.plan`) that has no record yet, appends one JSON line per finished run to
``results/reproduction/<part>.jsonl`` (:mod:`.records`), and rebuilds the tables and plots
from the records (:mod:`.report`). Killing it loses only the runs in flight; two at once
over the same records share the runs between them (:mod:`.claims`).
"""

from .plan import BUDGETS, PARTS, Cell, plan
from .records import SCHEMA, config_key, read_records

__all__ = ["BUDGETS", "PARTS", "SCHEMA", "Cell", "config_key", "plan", "read_records"]
