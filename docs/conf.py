"""Sphinx configuration of the API reference (``make docs``; warnings are errors in CI)."""

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dgl_ssm  # noqa: E402

project = "dgl-ssm"
author = "dgl-ssm contributors"
release = version = dgl_ssm.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.mathjax", "numpydoc"]
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
numpydoc_show_class_members = False  # members are listed by autodoc, not twice
numpydoc_class_members_toctree = False
exclude_patterns = ["_build"]
html_theme = "alabaster"

# DGL's own docstrings (inherited by our convs) use "Example"/"Note" headings numpydoc does
# not know; ours use numpydoc's. Silence only theirs.
warnings.filterwarnings("ignore", message=r"Unknown section .* in .*/dgl/", category=UserWarning)


def _defining_module(app, env, node, contnode):
    """Resolve ``dgl_ssm.X`` and ``dgl_ssm.analysis.X`` (how docstrings name what the package
    exports) to where autodoc documents X: the module that defines it."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("dgl_ssm."):
        return None
    obj, parts = dgl_ssm, target.split(".")[1:]
    try:
        for part in parts:
            obj = getattr(obj, part)
    except AttributeError:
        return None
    owner = getattr(obj, "__module__", None)
    if owner is None or not hasattr(obj, "__qualname__"):
        return None
    real = f"{owner}.{obj.__qualname__}"
    if real == target:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], real, node, contnode
    )


def setup(app):
    app.connect("missing-reference", _defining_module)
