"""``dgl-ssm``: the one command of the project, above every room.

    dgl-ssm run --config cora_gcn_ssm_64 --seeds 3 # one configuration, several seeds
    dgl-ssm sweep --backbone gcn_ssm --dataset cora
    dgl-ssm leaderboard --suite quick               # the main job
    dgl-ssm analyze jacobian --dataset cora
    dgl-ssm perf --quick
    dgl-ssm reproduce --part gpp --list

Each room registers its subcommands (``dgl_ssm_bench.commands.subcommands``,
``dgl_ssm_sweeps.commands.subcommands``); this module only picks one and hands it the rest of the
command line, so a subcommand loads only its own room. The old names (``dgl-ssm-bench``,
``dgl-ssm-sweep``, ``dgl-ssm-leaderboard``, ``dgl-ssm-analyze``) still work.
"""

import argparse
import importlib.util
import sys
import warnings
from pathlib import Path

from dgl_ssm_bench.commands import subcommands as benchmark_commands
from dgl_ssm_sweeps.commands import subcommands as sweep_commands

PROG = "dgl-ssm"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {**benchmark_commands(), **sweep_commands()}
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="GNN-SSM for DGL: runs, sweeps, leaderboards, diagnostics, benchmarks.",
        epilog=f"'{PROG} COMMAND --help' shows a command's options.",
    )
    parser.add_argument("--version", action=_Versions, nargs=0, help="show the versions and exit")
    choices = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in commands.items():
        choices.add_parser(name, help=command.help, add_help=False)
    args = parser.parse_args(argv[:1])  # the command's name (or --help); the rest is its own
    prog = f"{PROG} {args.command}"
    previous = _one_line_warnings(prog)
    try:
        return commands[args.command].main(argv[1:], prog)
    except KeyboardInterrupt:
        # Every command writes a result only once it is whole (a record per finished run,
        # a table or figure at the end), so stopping loses only the run in progress.
        resume = "; add --resume to run the rest" if args.command == "run" else ""
        print(f"{prog}: interrupted (Ctrl-C); what had finished is kept{resume}.", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous


class _Versions(argparse.Action):
    """``--version``: this package's version and those of the libraries its numbers depend
    on, looked up only when asked for."""

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        found = []
        for name in ("dgl-ssm", "dgl", "torch", "optuna"):
            try:
                found.append(version(name))
            except PackageNotFoundError:
                found.append("not installed")
        ours, dgl, torch, optuna = found
        print(f"{PROG} {ours} (dgl {dgl}, torch {torch}, optuna {optuna})")
        parser.exit()


def _one_line_warnings(prog):
    """Show the project's own warnings (a skipped line of a records file, …) as one line,
    ``dgl-ssm run: warning: …``, not with Python's file, line and source; others as usual.
    Returns the formatter it replaced."""
    ours = tuple(
        str(Path(location))
        for name in ("dgl_ssm", "dgl_ssm_bench", "dgl_ssm_sweeps")
        for location in importlib.util.find_spec(name).submodule_search_locations
    )
    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        # (A library's FutureWarning or DeprecationWarning may point into our code: kept.)
        if issubclass(category, (UserWarning, RuntimeWarning)) and str(filename).startswith(ours):
            return f"{prog}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
    return default


if __name__ == "__main__":
    sys.exit(main())
