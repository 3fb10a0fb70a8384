"""Output any console can show. The commands print "λ", "±", "→"; a console whose encoding
lacks them (cp1252 when a Windows command's output is redirected, an ASCII locale) would raise
``UnicodeEncodeError`` mid-command, after some runs and before others."""

import os
import sys


def escape_unencodable():
    """Have stdout and stderr write a character their encoding lacks as an escape (``\\u03bb``)
    instead of raising. Called by each command and by each worker process a command starts
    (their streams are their own). A UTF-8 console is unchanged, and so is the choice of a
    user who set ``PYTHONIOENCODING``."""
    if "PYTHONIOENCODING" in os.environ:
        return
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # (not a stream a caller put in its place)
            stream.reconfigure(errors="backslashreplace")
