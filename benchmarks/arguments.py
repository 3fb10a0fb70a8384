"""Command-line parsing shared by every ``dgl-ssm`` command: a mistyped option is named by the
(sub)command it was given to, with the option meant as a hint."""

import argparse
import difflib


def parse_arguments(parser, argv=None):
    """``parser.parse_args(argv)``, except for arguments no parser knows: argparse names them
    under the top parser's usage (``usage: dgl-ssm [-h] {run,perf,reproduce} ...`` for a typo
    in ``dgl-ssm run``), which lists only the commands. They are refused by the chosen
    subcommand's parser instead, its usage and name (``dgl-ssm run: error: …``), with the
    option nearest the first one (``Did you mean '--layers'?``). Exits with code 2."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = _chosen(parser, args)
        # (argparse lists a parser's actions only in private attributes; stable since 3.2)
        options = [flag for action in command._actions for flag in action.option_strings]
        options_typed = unknown[: unknown.index("--")] if "--" in unknown else unknown
        typed = [u.partition("=")[0] for u in options_typed if u.startswith("--")]
        # (difflib, not dgl_ssm.checks.did_you_mean: the leaderboard loads neither torch nor DGL)
        close = difflib.get_close_matches(typed[0], options, n=1) if typed else []
        hint = f" Did you mean {close[0]!r}?" if close else ""
        command.error(f"unrecognized arguments: {' '.join(unknown)}.{hint}")
    return args


def _chosen(parser, args):
    """The parser of the (sub)subcommand ``args`` chose, or ``parser`` if it has none."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)  # (None: an optional one left out)
            return _chosen(action.choices[name], args) if name in action.choices else parser
    return parser
