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
