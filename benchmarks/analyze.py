"""The ``dgl-ssm analyze`` command: the paper's diagnostics as PNG and CSV.

dgl-ssm analyze energy --model gcn gcn_ssm --dataset cora --layers 64
dgl-ssm analyze gradients --model gcn gcn_ssm --dataset random --layers 32
dgl-ssm analyze jacobian --model gcn gcn_ssm --dataset random --layer 1
dgl-ssm analyze sensitivity --model gcn kgcn_ssm --dataset ring --ring-size 16 --layers 8
dgl-ssm analyze figures --quick --out runs/analysis
dgl-ssm analyze figures --quick --only sensitivity_ring
dgl-ssm analyze monitor runs/results.jsonl  # the last monitored run (--index: another)

Every command writes ``<name>.png`` and ``<name>.csv`` into ``--out`` (default
``runs/analysis``; ``monitor`` writes three plots, ``monitor_<quantity>.png``, and one
``monitor.csv``). Models are taken at initialisation (seeded with ``--seed``; a plain model
and its SSM twin get the same weights), except for the accuracy-vs-depth figure, which trains.
One-hop models get one self loop per node, k-hop models (``kgcn``, ``kgcn_ssm``) the graph
rewired with ``KHopTransform(k=layers)``; distances and energies are measured on the graph
before rewiring. The command runs on one thread unless ``--threads`` says otherwise: its work
is thousands of small autograd passes, which extra threads slow down (badly on busy machines).
"""

# The recipes are in dgl_ssm_bench.figures; this module only reads the command line.

import argparse
import sys
from pathlib import Path

from dgl import DGLError

import dgl_ssm
from dgl_ssm import analysis

from . import figures
from .arguments import parse_arguments
from .console import escape_unencodable
from .device import device_argument, resolve_device
from .records import make_folder, read_records
from .threads import threads

DEFAULT_OUT = "runs/analysis"
DEFAULT_LAYERS = {"energy": 64, "gradients": 64, "jacobian": 2}  # else ring size / 2, or 8
FIGURES_HELP = (
    "regenerate the paper's analysis figures (Jacobian spectra, Dirichlet energy, accuracy vs "
    "depth, sensitivity vs distance). --quick (depths 2-64, 50 epochs, a 16-node ring) takes "
    "about 1-2 minutes on 2 CPU cores; the full version (depths 2-128, up to 200 epochs with "
    "patience 50, a 32-node ring) about 5-10 minutes, nearly all of it training"
)


def positive_int(text, least=1):
    """argparse type of a count (layers, width, nodes, ...): an integer of at least 1 (or
    ``least``), so a 0 is named with its option rather than with the function it reaches."""
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        kind = "a positive integer" if least == 1 else f"an integer ≥ {least}"
        raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}")
    return value


def non_negative_int(text):
    return positive_int(text, least=0)


def build_parser(prog="dgl-ssm-analyze"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(__doc__ or "").split("\n")[0],  # (None under python -OO)
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").split("\n")[2:]),
    )
    output = argparse.ArgumentParser(add_help=False)  # all a drawing from a record needs
    output.add_argument(
        "--out", type=Path, default=Path(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})"
    )
    io = argparse.ArgumentParser(add_help=False, parents=[output])
    io.add_argument("--seed", type=int, default=0, help="seed of weights, features, targets")
    io.add_argument("--data-dir", help="raw Cora files (default $DGL_SSM_DATA)")
    io.add_argument("--cache-dir", help="processed-data cache (default $DGL_SSM_CACHE)")
    io.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch and BLAS threads (default 1: the diagnostics are thousands of small "
        "autograd passes, where more threads mostly add synchronisation)",
    )

    setup = argparse.ArgumentParser(add_help=False)
    setup.add_argument(
        "--model",
        nargs="+",
        default=["gcn", "gcn_ssm"],
        metavar="NAME",
        help=f"one or more of: {', '.join(dgl_ssm.MODELS)} (default gcn gcn_ssm)",
    )
    setup.add_argument(
        "--layers", type=positive_int, help="message-passing layers (default: see command)"
    )
    setup.add_argument("--hidden", type=positive_int, default=64, help="state width d (default 64)")
    setup.add_argument("--activation", default="relu", help="σ (default relu)")
    setup.add_argument("--state-scale", type=float, help="SSM models: m, eigenvalue modulus of Λ")
    setup.add_argument("--input-scale", type=float, help="SSM models: β, the scale of B")
    setup.add_argument("--dataset", choices=figures.DATASETS, default="cora")
    setup.add_argument(
        "--device", type=device_argument, default="auto",
        help="auto (a GPU when torch and DGL can use one), cpu, cuda or cuda:N",
    )  # fmt: skip
    setup.add_argument(
        "--ring-size", type=positive_int, default=16, help="nodes of the ring (default 16)"
    )
    setup.add_argument(
        "--num-nodes", type=positive_int, default=200, help="random graph (default 200)"
    )
    setup.add_argument("--num-edges", type=int, default=600, help="random graph (default 600)")
    setup.add_argument(
        "--feat-dim",
        type=positive_int,
        default=16,
        help="width of the random features of ring/random (default 16)",
    )

    commands = parser.add_subparsers(dest="command", required=True)
    energy = commands.add_parser(
        "energy", parents=[io, setup], help="Dirichlet energy vs layer (default 64 layers)"
    )
    energy.add_argument("--normalized", action="store_true", help="degree-normalised energy")
    energy.add_argument(
        "--float64",
        action="store_true",
        help="run the models in float64 (resolves energies below float32 rounding)",
    )
    commands.add_parser(
        "gradients", parents=[io, setup], help="‖∂loss/∂H⁽ℓ⁾‖ vs layer (default 64 layers)"
    )
    jac = commands.add_parser(
        "jacobian",
        parents=[io, setup],
        help="spectrum of one layer's Jacobian (default 2 layers, layer 1)",
    )
    jac.add_argument(
        "--layer", type=positive_int, default=1, help="which layer, from 1 (default 1)"
    )
    jac.add_argument(
        "--k", type=positive_int, default=10, help="top values when matrix-free (default 10)"
    )
    jac.add_argument(
        "--max-dense",
        type=non_negative_int,
        default=analysis.DEFAULT_MAX_DIM,
        help="largest n·d for the dense Jacobian (default %(default)s; 0: always matrix-free)",
    )
    sens = commands.add_parser(
        "sensitivity",
        parents=[io, setup],
        help="mean ‖∂h_v⁽ᴸ⁾/∂x_u‖ vs hop distance (default layers: ring size / 2, else 8)",
    )
    sens.add_argument(
        "--targets", type=positive_int, default=16, help="target nodes v (default 16)"
    )
    sens.add_argument("--max-distance", type=int, help="largest distance shown (0 or more)")
    paper = commands.add_parser(
        "figures", parents=[io], help=FIGURES_HELP, description=FIGURES_HELP
    )
    paper.add_argument("--quick", action="store_true", help="a few depths and epochs")
    paper.add_argument(
        "--device", type=device_argument, default="auto",
        help="where the models run and train: auto (a GPU when torch and DGL can use one), "
        "cpu, cuda or cuda:N",
    )  # fmt: skip
    paper.add_argument(
        "--only",
        nargs="+",
        choices=figures.FIGURE_NAMES,
        metavar="NAME",
        help=f"make only these figures (default all): {', '.join(figures.FIGURE_NAMES)}",
    )
    monitor = commands.add_parser(
        "monitor",
        parents=[output],
        help="layer × epoch heatmaps of a run recorded with `dgl-ssm run --monitor EVERY`",
    )
    monitor.add_argument("records", type=Path, help="the run's JSON-lines file")
    monitor.add_argument(
        "--index",
        type=int,
        help="which record of the file (0 the first, -1 the last; default: the last that has "
        "monitor entries, so runs appended after it do not hide it)",
    )
    return parser


def main(argv=None, prog="dgl-ssm-analyze"):
    escape_unencodable()
    args = parse_arguments(build_parser(prog), argv)
    try:
        if getattr(args, "max_distance", None) is not None and args.max_distance < 0:
            raise ValueError("--max-distance must be at least 0 (hops from the target).")
        with threads(getattr(args, "threads", None)):  # (monitor draws; it takes no --threads)
            run(args)
    except (ValueError, TypeError, OSError, RuntimeError, DGLError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


def run(args):
    out = make_folder(args.out)  # before any work: a bad --out is found now, not at the end
    if args.command == "monitor":
        if not Path(args.records).is_file():
            raise FileNotFoundError(
                f"{args.records}: "
                + ("a folder, not a file" if Path(args.records).is_dir() else "no such file")
                + ". Give the JSONL file a monitored run wrote "
                "(dgl-ssm run --monitor EVERY --output FILE)."
            )
        records = read_records(args.records)
        if not records:
            raise FileNotFoundError(f"No records in {args.records}.")
        monitored = [i for i, record in enumerate(records) if figures.has_monitor_entries(record)]
        if args.index is None:
            if not monitored:
                raise ValueError(
                    f"None of the {len(records)} record(s) in {args.records} has monitor "
                    "entries: run with `dgl-ssm run --monitor EVERY`."
                )
            index = monitored[-1]
            print(f"record {index} of {args.records} (records 0..{len(records) - 1}; the last "
                  "with monitor entries, --index chooses another)")  # fmt: skip
        elif not -len(records) <= args.index < len(records):
            raise ValueError(f"--index {args.index}: {args.records} has {len(records)} record(s).")
        else:
            index = args.index % len(records)
            if index not in monitored:
                those = "none has" if not monitored else (
                    f"record {monitored[0]} has" if len(monitored) == 1
                    else f"records {', '.join(map(str, monitored))} have")  # fmt: skip
                raise ValueError(f"Record {args.index} of {args.records} has no monitor entries "
                                 f"({those}): run with `dgl-ssm run --monitor EVERY`.")  # fmt: skip
        figures.monitor_figures(records[index], out=out)
        return
    if args.command == "figures":
        figures.make_figures(
            out,
            seed=args.seed,
            quick=args.quick,
            only=args.only,
            data_dir=args.data_dir,
            cache_dir=args.cache_dir,
            device=resolve_device(args.device),
        )
        return
    scales = dict(state_scale=args.state_scale, input_scale=args.input_scale)
    given = [f"--{key.replace('_', '-')}" for key, value in scales.items() if value is not None]
    if given and not any(dgl_ssm.is_ssm(name) for name in args.model):
        raise ValueError(  # (they go to the SSM models among several, and only there)
            f"{' and '.join(given)} set Λ and B of SSM models, and --model names none "
            f"({', '.join(args.model)}): add one (e.g. gcn_ssm), or drop {given[0]}."
        )
    if args.dataset == "random" and (args.num_nodes < 2 or args.num_edges < 1):
        raise ValueError("--num-nodes must be at least 2 and --num-edges at least 1.")
    data = figures.analysis_data(
        args.dataset,
        seed=args.seed,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        ring_size=args.ring_size,
        num_nodes=args.num_nodes,
        num_edges=args.num_edges,
        feat_dim=args.feat_dim,
    ).to(resolve_device(args.device))
    layers = args.layers
    if layers is None:
        default = args.ring_size // 2 if args.dataset == "ring" else 8
        layers = DEFAULT_LAYERS.get(args.command, default)
    if layers < 1 or args.hidden < 1:
        raise ValueError("--layers and --hidden must be positive.")
    configs = [
        figures.model_config(name, layers, args.hidden, activation=args.activation, **scales)
        for name in args.model
    ]
    for config in configs:
        config.model_kwargs()  # unknown names fail here, listing the valid ones
    common = dict(out=out, seed=args.seed)
    if args.command == "energy":
        figures.energy_vs_layer(
            data, configs, normalized=args.normalized, float64=args.float64, **common
        )
    elif args.command == "gradients":
        figures.gradients_vs_layer(data, configs, **common)
    elif args.command == "jacobian":
        figures.jacobian_spectrum(
            data, configs, layer=args.layer, max_dense=args.max_dense, k=args.k, **common
        )
    else:
        figures.sensitivity_vs_distance(
            data, configs, targets=args.targets, max_distance=args.max_distance, **common
        )


if __name__ == "__main__":
    sys.exit(main())
