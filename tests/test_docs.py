"""The API reference's link hook (docs/conf.py): docstrings name what the package exports,
``dgl_ssm.KHopTransform``, while autodoc documents it where it is defined,
``dgl_ssm.khop.KHopTransform``. Built in a child process, as ``make docs`` builds it."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE = """\
Reference
=========

.. autoclass:: dgl_ssm.khop.KHopTransform
   :no-members:

.. autofunction:: dgl_ssm.analysis.energy.dirichlet_energy

Links: :class:`dgl_ssm.KHopTransform`, :func:`dgl_ssm.analysis.dirichlet_energy`,
:func:`dgl_ssm.no_such_function`, :class:`dgl_ssm.khop.KHopTransform`.
"""


def test_exported_names_link_to_where_autodoc_documents_them(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "index.rst").write_text(PAGE)
    built = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-n", "-q", "-c", str(DOCS),
         str(source), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    unresolved = [
        line.split("target not found: ")[1].split(" [")[0]  # (Sphinx 8 adds " [ref.func]")
        for line in built.stderr.splitlines()
        if "target not found: " in line
    ]
    # The nitpicky build (-n) reports each link it could not resolve: of ours, only the one
    # that names nothing the package has, not the two exported names.
    assert [target for target in unresolved if target.startswith("dgl_ssm")] == [
        "dgl_ssm.no_such_function"
    ]
    html = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    links = html[html.index("Links:") :]
    assert links.count('href="#dgl_ssm.khop.KHopTransform"') == 2  # exported name, full name
    assert links.count('href="#dgl_ssm.analysis.energy.dirichlet_energy"') == 1
