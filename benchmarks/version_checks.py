"""The harness's processes do not ask PyPI whether OGB is up to date.

DGL imports OGB (``dgl.data.lrgb``), and OGB starts, at import, threads that ask PyPI whether
``ogb`` and ``outdated`` (the package it asks with) are the newest versions, retrying a second
apart; the interpreter waits for them before it exits. Offline (the usual machine for a long
reproduction), every process that imported DGL waited for them: a process doing only
``import dgl`` took 4.4 s instead of 2.4 s on an idle 2-core machine, 8.5 s instead of 4.5 s on
a busy one. The harness starts such a process per command, per reproduction or sweep worker
and per monitor helper. So both harness packages, on import, mark ``outdated`` absent, which
OGB reads as "no check", when DGL is not yet imported: every process of the harness imports
one of them first, and its spawned workers import the function they run from one. In a
user's own process that imports the harness first, OGB's check is off too (and ``import
outdated`` fails), as the README says; the library (``dgl_ssm``) leaves the check on.
"""

import sys


def skip_online_version_checks():
    """Mark ``outdated`` absent unless it or OGB is loaded already (then the threads run)."""
    if "ogb" not in sys.modules:
        sys.modules.setdefault("outdated", None)
