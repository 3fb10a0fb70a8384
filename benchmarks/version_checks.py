"""The harness's processes do not ask PyPI whether OGB is up to date.

DGL imports OGB (``dgl.data.lrgb``), and OGB starts, at import, threads that ask PyPI whether
``ogb`` and ``outdated`` (the package it asks with) are the newest versions, retrying a second
apart; the interpreter waits for them before it exits. Offline (the usual machine for a long
reproduction), every process that imported DGL waited for them: a process doing only
``import dgl`` took 5.0 s instead of 2.9 s on an idle 2-core machine, 8.5 s instead of 4.5 s on
a busy one. The harness starts such a process per command, per reproduction worker and per
monitor helper. The harness is an application, so its processes skip the check: ``outdated``
is marked absent before DGL is imported, which OGB reads as "no check". The library
(``dgl_ssm``) leaves its user's process as it finds it.
"""

import sys


def skip_online_version_checks():
    """Mark ``outdated`` absent unless it or OGB is loaded already (then the threads run)."""
    if "ogb" not in sys.modules:
        sys.modules.setdefault("outdated", None)
