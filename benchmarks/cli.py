"""The ``dgl-ssm-bench`` command.

dgl-ssm-bench run --model gcn_ssm --dataset ring_transfer --ring-size 20 --layers 10 --seeds 3
dgl-ssm-bench run --config ring_transfer     # a shipped config (benchmarks/configs/)
dgl-ssm-bench run --config my.yaml --lr 1e-3 # a file, with flags overriding it
dgl-ssm-bench perf --quick                   # time and memory, SSM vs plain (dgl_ssm_bench.perf)
dgl-ssm-bench reproduce --part gpp --jobs 2  # the paper's experiments, resumable (results/)
"""

import argparse
import signal
import sys
from pathlib import Path

from dgl import DGLError

from dgl_ssm.calibration import INPUT_RULES, LAMBDA_RULES
from dgl_ssm.checks import did_you_mean
from dgl_ssm.models import READOUTS
from dgl_ssm.multihop import HOP_MODES, PAST_MAX_HOP
from dgl_ssm.wrapper import NORMS

from .arguments import parse_arguments
from .config import RunConfig
from .console import escape_unencodable
from .ctrl_c import CtrlC
from .datasets import DATASETS
from .device import device_argument, resolve_device
from .models import model_names
from .monitor import SPECTRA
from .perf import cli as perf_cli
from .records import make_folder
from .threads import threads
from .train import OPTIMIZERS, load_each_dataset_once

CONFIGS = Path(__file__).resolve().parent / "configs"

# flag → (section, field); the flags' own defaults are None, so only given flags override.
MODEL_FLAGS = {
    "model": "name", "hidden": "hidden", "layers": "num_layers", "dropout": "dropout",
    "activation": "activation", "norm": "norm", "readout": "readout",
    "head_activation": "head_activation", "residual": "residual",
    "state": "state", "state_scale": "state_scale", "input": "input",
    "input_scale": "input_scale", "shared_ssm": "shared_ssm", "ssm_seed": "ssm_seed",
    "hop_mode": "hop_mode", "max_hop": "max_hop", "delay": "delay", "checkpoint": "checkpoint",
    "past_max_hop": "past_max_hop", "calibrate": "calibrate",
    "calibrate_lambda": "calibrate_lambda", "calibrate_input": "calibrate_input",
    "calibrate_memory": "calibrate_memory",
}  # fmt: skip
DATA_FLAGS = {"dataset": "name", "data_dir": "data_dir", "cache_dir": "cache_dir",
              "split": "split", "self_loops": "self_loops"}  # fmt: skip
DATA_OPTIONS = {"ring_size": "ring_size", "num_graphs": "num_graphs", "data_seed": "seed",
                "gpp_sizes": "sizes", "gpp_batches": "batches"}  # fmt: skip
OPTIM_FLAGS = {"optimizer": "optimizer", "lr": "lr", "weight_decay": "weight_decay",
               "epochs": "epochs", "patience": "patience", "batch_size": "batch_size",
               "rescale_weight_decay": "rescale_weight_decay"}  # fmt: skip


def build_parser(prog="dgl-ssm-bench"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="The benchmark suite's commands, now also dgl-ssm's (dgl-ssm --help has "
        "them all). `dgl-ssm-bench leaderboard` runs a suite, quick by default, then the tables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train one configuration over one or more seeds")
    run.add_argument("--config", help="YAML file, or the name of a shipped config")

    model = run.add_argument_group("model")
    model.add_argument("--model", help=f"one of: {', '.join(model_names())}")
    model.add_argument("--hidden", type=int)
    model.add_argument("--layers", type=int, help="number of message-passing layers")
    model.add_argument("--dropout", type=float)
    model.add_argument("--activation", help="relu, tanh, identity, gelu, …")
    model.add_argument("--norm", choices=[*NORMS, "none"])
    model.add_argument("--readout", choices=READOUTS)
    model.add_argument(
        "--head-activation", help="graph tasks: the head's activation (default: --activation)"
    )
    model.add_argument("--residual", action="store_true", default=None, help="plain models")
    model.add_argument("--state", help="Λ kind: identity, orthogonal, random")
    model.add_argument("--state-scale", type=float,
                       help="m: Λ = m·I or m × a random orthogonal Q (|eig| = |m|)")  # fmt: skip
    model.add_argument("--input", help="B kind: identity, orthogonal, random")
    model.add_argument(
        "--input-scale", type=_number_or_auto, help="β, the scale of B, or auto (0.1·min(1, 64/L))"
    )
    model.add_argument(
        "--per-layer-ssm", dest="shared_ssm", action="store_false", default=None,
        help="draw Λ, B per layer instead of sharing them",
    )  # fmt: skip
    model.add_argument("--ssm-seed", type=int)
    model.add_argument("--hop-mode", choices=HOP_MODES)
    model.add_argument("--max-hop", type=int, help="K: rewiring radius and largest hop read")
    model.add_argument("--delay", type=int, help="ν of the cumulative mode's delay")
    model.add_argument(
        "--past-max-hop", choices=PAST_MAX_HOP,
        help="layers past K read hop ℓ (empty, the paper's) or hop K again",
    )  # fmt: skip
    model.add_argument(
        "--checkpoint", type=int, nargs="?", const=True,
        help="activation checkpointing (optionally the number of segments; 0: off)",
    )  # fmt: skip
    model.add_argument(
        "--calibrate", type=float, nargs="?", const=1.0, metavar="TARGET",
        help="SSM models: before training, set Λ and B so that every layer's top Jacobian "
        "eigenvalue has modulus TARGET (default 1: the edge of chaos), and scale each layer's "
        "weight decay to its shrunk B; see dgl_ssm.calibrate",
    )  # fmt: skip
    model.add_argument(
        "--calibrate-lambda", choices=list(LAMBDA_RULES),
        help="with --calibrate: take the λ nearest the model's own (default) or the one that "
        "centres the layers' top eigenvalues on TARGET",
    )  # fmt: skip
    model.add_argument(
        "--calibrate-input", choices=list(INPUT_RULES),
        help="with --calibrate: when the state norm drifts, halve B until it stays within 2× "
        "(default), or then take the largest B that keeps it there (bisection)",
    )  # fmt: skip
    model.add_argument(
        "--calibrate-memory", type=float, metavar="BOUND",
        help="with --calibrate: keep the stack's memory of its input (Π λ/TARGET over the "
        "layers) at least 1/BOUND, shrinking B where λ is lowest; for --per-layer-ssm, whose "
        "layers can otherwise each take a small λ and forget (default: no such bound)",
    )  # fmt: skip
    model.add_argument(
        "--conv-option", action="append", default=[], metavar="KEY=VALUE",
        help="backbone option, e.g. heads=4 (GAT) or aggregator=pool (SAGE)",
    )  # fmt: skip

    data = run.add_argument_group("data")
    data.add_argument("--dataset", help=f"one of: {', '.join(DATASETS)}")
    data.add_argument("--data-dir", help="local raw data (default $DGL_SSM_DATA)")
    data.add_argument("--cache-dir", help="processed-data cache (default $DGL_SSM_CACHE)")
    data.add_argument("--split", type=int, help="fixed split to start from")
    data.add_argument("--ring-size", type=int)
    data.add_argument("--num-graphs", type=int)
    data.add_argument("--data-seed", type=int, help="seed of generated datasets")
    data.add_argument("--gpp-sizes", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"))
    data.add_argument(
        "--gpp-batches", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
        help="node counts each GPP split spans, 25 + b for b below it (default PNA's 10 5 5)",
    )  # fmt: skip
    data.add_argument("--no-self-loops", dest="self_loops", action="store_false", default=None)

    optim = run.add_argument_group("optimisation")
    optim.add_argument("--optimizer", choices=list(OPTIMIZERS))
    optim.add_argument("--lr", type=float)
    optim.add_argument("--weight-decay", type=float)
    optim.add_argument("--epochs", type=int)
    optim.add_argument("--patience", type=int)
    optim.add_argument("--batch-size", type=int)
    decay_rule = optim.add_mutually_exclusive_group()
    decay_rule.add_argument(
        "--same-weight-decay", dest="rescale_weight_decay", action="store_false", default=None,
        help="with --calibrate: keep one weight decay for every layer (default: each weight of a "
        "calibrated layer × (B factor)^(2k), k from its conv's output-scaling symmetry; "
        "^k with adamw's decoupled decay; see dgl_ssm.CalibrationReport.param_groups)",
    )  # fmt: skip
    decay_rule.add_argument(
        "--uniform-weight-decay", dest="rescale_weight_decay", action="store_const",
        const="uniform", help="with --calibrate: every weight of a calibrated layer × (B factor)² "
        "(× B factor with adamw), as if the conv were linear in all its weights (the rule "
        "before the symmetries)",
    )  # fmt: skip

    runs = run.add_argument_group("runs")
    runs.add_argument("--seed", type=int, help="first seed (default 0)")
    runs.add_argument("--seeds", type=int, default=1, help="number of seeds")
    runs.add_argument("--device", type=device_argument, help="auto, cpu, cuda or cuda:N")
    runs.add_argument(
        "--threads", type=int,
        help="torch and BLAS threads (default: torch's, one per core; 1 when runs share cores)",
    )  # fmt: skip
    runs.add_argument("--output", default="runs/results.jsonl", help="JSON-lines file")
    runs.add_argument(
        "--resume", action="store_true",
        help="skip the seeds whose run is in --output already (same config, same data)",
    )  # fmt: skip
    runs.add_argument("--no-progress", action="store_true")
    runs.add_argument(
        "--monitor", type=int, metavar="EVERY",
        help="every EVERY epochs, record per-layer gradient norms, Dirichlet energies and the "
        "top-3 Jacobian singular values of --monitor-layers into the record's history",
    )  # fmt: skip
    runs.add_argument(
        "--monitor-layers", type=int, nargs="+", metavar="L",
        help="layers (0-based) whose singular values are tracked (default: first, middle, last)",
    )  # fmt: skip
    runs.add_argument(
        "--monitor-spectra", choices=SPECTRA,
        help="where the singular values are computed: a helper process on CPU time training "
        "leaves idle, so some recorded epochs have none (default); in the training step, "
        "every recorded epoch, at its cost; or not at all",
    )  # fmt: skip
    runs.add_argument("--tensorboard", metavar="DIR", help="also write the curves to TensorBoard")

    perf = commands.add_parser(
        "perf", help="time and memory of SSM vs plain twins (same as python -m dgl_ssm_bench.perf)"
    )
    perf_cli.build_parser(perf)
    add_reproduce_parser(commands)
    return parser


def add_reproduce_parser(commands):
    from .reproduce import BUDGETS, PARTS

    reproduce = commands.add_parser(
        "reproduce",
        help="run the paper's experiments (resumable), then rebuild tables and plots",
        description="Runs every configuration of the chosen parts that has no record in "
        "OUT/<part>.jsonl yet, appending one record per finished run, then rebuilds "
        "OUT/README.md (README.<budget>.md for another --budget than cpu) and the plots from "
        "the records alone.",
    )
    reproduce.add_argument("--part", action="append", choices=PARTS,
                           help="part to run (repeatable; default: all)")  # fmt: skip
    reproduce.add_argument("--budget", choices=BUDGETS, default="cpu",
                           help="the published protocol, or this machine's stated cut")  # fmt: skip
    reproduce.add_argument("--jobs", type=int, default=1, help="runs side by side")
    reproduce.add_argument("--threads", type=int, help="torch threads per run (cores ÷ jobs)")
    reproduce.add_argument("--out", default="results/reproduction",
                           help="records and tables (default: %(default)s, from the current "
                                "folder: the checkout's)")  # fmt: skip
    reproduce.add_argument("--only-required", action="store_true",
                           help="skip the cells the acceptance list does not need")  # fmt: skip
    reproduce.add_argument("--rows", nargs="+", metavar="ROW",
                           help="only these rows (models), e.g. GCN-SSM GIN-SSM")  # fmt: skip
    reproduce.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                           help="only these seeds, e.g. 3 4 5")  # fmt: skip
    reproduce.add_argument("--columns", nargs="+", metavar="COLUMN",
                           help="only these columns, as --list prints them, e.g. defaults "
                                "'calibrated, weight decay rescaled'")  # fmt: skip
    only = reproduce.add_mutually_exclusive_group()  # (--list used to win silently)
    only.add_argument("--list", action="store_true", help="list pending runs and stop")
    only.add_argument("--report", action="store_true",
                      help="only rebuild the tables and plots from the records")  # fmt: skip
    reproduce.add_argument("--data-dir", help="local raw data (default $DGL_SSM_DATA)")
    reproduce.add_argument("--cache-dir", help="processed-data cache (default $DGL_SSM_CACHE)")
    reproduce.add_argument("--device", type=device_argument, help="auto, cpu, cuda or cuda:N")


def config_from_args(args):
    """The run's config: the YAML file (if any), then every given flag on top."""
    config = RunConfig.from_yaml(_config_path(args.config)) if args.config else RunConfig()
    from_file = {name: getattr(config.model, name) for name in ("max_hop", "past_max_hop")}
    for flags, section in ((MODEL_FLAGS, config.model), (DATA_FLAGS, config.data),
                           (OPTIM_FLAGS, config.optim)):  # fmt: skip
        for flag, name in flags.items():
            value = getattr(args, flag)
            if value is not None:
                _set(section, name, None if value == "none" else value, flag)
    for flag, name in DATA_OPTIONS.items():
        if getattr(args, flag) is not None:
            config.data.options[name] = getattr(args, flag)
    for option in args.conv_option:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--conv-option takes KEY=VALUE (e.g. heads=4), got {option!r}.")
        config.model.conv_options[key] = _parse_value(value)
    for name in ("seed", "device"):
        if getattr(args, name) is not None:
            _set(config, name, getattr(args, name), name)
    # A config file's k-hop settings are its k-hop model's: --model naming a one-hop model
    # leaves them behind (dgl_ssm refuses options a model would ignore), unless flags set them.
    if args.model is not None and not config.model.is_khop:
        for name, value in from_file.items():
            if getattr(config.model, name) == value:
                setattr(config.model, name, None)
    return config


def _set(section, name, value, flag):
    """Assign a flag's value; the config's check fails with the flag's name in the line."""
    try:
        setattr(section, name, value)
    except ValueError as error:  # "<Section>: <field> = <value>: <what is allowed>."
        allowed = str(error).split(": ", 2)[-1]
        raise ValueError(f"--{flag.replace('_', '-')} {value!r}: {allowed}") from None


def _config_path(name):
    path = Path(name)
    if path.exists():
        return path
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name  # cora_kipf.yaml too
    shipped = CONFIGS / f"{stem}.yaml"
    if shipped.exists():
        return shipped
    shipped = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    hint = did_you_mean(stem, shipped)
    raise FileNotFoundError(
        f"No config file {name!r}.{hint} Shipped configs: {', '.join(shipped)}."
    )


def _number_or_auto(text):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _parse_value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv=None, prog="dgl-ssm-bench"):
    escape_unencodable()
    return run_command(parse_arguments(build_parser(prog), argv), argv, prog)


def run_command(args, argv=None, prog="dgl-ssm-bench"):
    """Carry out parsed ``run``, ``perf`` or ``reproduce`` arguments; errors become one line
    on stderr (``dgl-ssm run: error: …``) and exit code 2."""
    if args.command == "perf":  # (its record's command line starts with prog)
        perf_cli.run_from_args(args, argv=argv, prog=prog, name=f"{prog} perf")
        return 0
    prog = f"{prog} {args.command}"
    if args.command == "reproduce":
        return reproduce_command(args, prog)
    from .run import run_seeds

    try:
        config = config_from_args(args)
        if args.seeds < 1:
            raise ValueError("--seeds must be at least 1.")
        if args.gpp_sizes is not None and min(args.gpp_sizes) < 1:
            raise ValueError("--gpp-sizes needs at least 1 graph in each split (TRAIN VAL TEST).")
        monitor = _monitor_factory(args, config.model.num_layers)
        # Each Ctrl-C raises at once, as usual; one a finalizer swallowed is raised again after
        # the epoch (see dgl_ssm_bench.ctrl_c). SIGTERM keeps its default: it ends the run.
        with threads(args.threads), CtrlC.installed([signal.SIGINT], once=False) as ctrl_c:
            with ctrl_c.interruptible():
                records = run_seeds(config, args.seeds, output=args.output,
                                    progress=not args.no_progress, monitor=monitor,
                                    resume=args.resume, on_epoch=ctrl_c.check)  # fmt: skip
        print(f"{len(records)} record(s) appended to {args.output}")
    except (ValueError, TypeError, OSError, ImportError, RuntimeError, DGLError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


def _monitor_factory(args, num_layers):
    """``seed → TrainingMonitor`` from --monitor, --monitor-layers and --tensorboard (each seed
    gets its own TensorBoard run, DIR/seed_<seed>), or None without --monitor."""
    if args.monitor is None:
        if args.monitor_layers or args.tensorboard or args.monitor_spectra:
            raise ValueError(
                "--monitor-layers, --monitor-spectra and --tensorboard need --monitor EVERY."
            )
        return None
    from .monitor import TrainingMonitor

    # check the options now, not after the data is loaded
    TrainingMonitor(args.monitor, args.monitor_layers, spectra="off").chosen_layers(num_layers)
    if args.tensorboard is not None:
        if Path(args.tensorboard).exists() and not Path(args.tensorboard).is_dir():
            raise ValueError(
                f"--tensorboard {args.tensorboard} is a file; give a folder (each seed's run "
                "goes in DIR/seed_<seed>)."
            )
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ImportError(
                "--tensorboard needs the tensorboard package: pip install tensorboard "
                '(or pip install ".[bench]").'
            ) from None

    def make(seed):
        board = None if args.tensorboard is None else Path(args.tensorboard) / f"seed_{seed}"
        spectra = args.monitor_spectra or "background"
        return TrainingMonitor(args.monitor, args.monitor_layers, tensorboard=board,
                               spectra=spectra)  # fmt: skip

    return make


def _only(cells, flag, wanted, key):
    """The cells whose ``key(cell)`` is one of ``wanted`` (in any case); a value no cell has is
    an error naming the flag and listing the values there are."""
    known = {str(key(c)).lower(): str(key(c)) for c in cells}
    if unknown := [w for w in wanted if str(w).lower() not in known]:
        there_are = ", ".join(map(repr, dict.fromkeys(known.values())))  # quoted: names hold commas
        hint = did_you_mean(str(unknown[0]), list(dict.fromkeys(known.values())))
        raise ValueError(f"{flag}: no {', '.join(map(repr, unknown))} in the chosen parts.{hint} "
                         f"There are: {there_are}.")  # fmt: skip
    chosen = {str(w).lower() for w in wanted}
    return [c for c in cells if str(key(c)).lower() in chosen]


def reproduce_command(args, prog="dgl-ssm-bench"):
    from .reproduce import PARTS, config_key, execute, plan, report
    from .reproduce.claims import holder

    try:
        if args.jobs < 1 or (args.threads is not None and args.threads < 1):
            raise ValueError("--jobs and --threads must be at least 1.")
        parts = args.part or list(PARTS)
        cells = plan(parts, args.budget)
        if args.rows:
            cells = _only(cells, "--rows", args.rows, lambda c: c.row)
        if args.seeds:
            cells = _only(cells, "--seeds", args.seeds, lambda c: c.config.seed)
        if args.columns:
            cells = _only(cells, "--columns", args.columns, lambda c: c.column)
        cells = [c for c in cells if c.required or not args.only_required]
        if not cells:  # each filter matched, but not together
            raise ValueError("no run of the chosen parts matches --rows, --seeds, --columns "
                             "and --only-required together; --list without some of them "
                             "shows what there is.")  # fmt: skip
        locations = {"data_dir": args.data_dir, "cache_dir": args.cache_dir}
        locations = {k: v for k, v in locations.items() if v is not None}
        for cell in cells:
            if args.device:
                cell.config.device = args.device
            resolve_device(cell.config.device)
        if (args.list or args.report) and not Path(args.out).is_dir():
            # --list would call every run pending, and --report have nothing to report.
            raise FileNotFoundError(
                f"--out {args.out}: {'a file' if Path(args.out).exists() else 'no such folder'}"
                ", so no records to "
                f"{'list against' if args.list else 'report'}. The records are in the "
                "checkout's results/reproduction: run from the checkout, or pass --out with the "
                "folder that holds them."
            )
        if args.list:  # with the process running it, if one is
            waiting = execute.pending(cells, args.out)
            for cell in waiting:
                running = holder(args.out, cell.part, config_key(cell.config))
                print(f"{cell.part}\t{cell.row}\t{cell.column}\tseed {cell.config.seed}"
                      + (f"\trunning in {running}" if running else ""))  # fmt: skip
            if not waiting:  # said on stderr: stdout stays one line per pending run
                print(f"nothing pending: all {len(cells)} runs asked for are recorded in "
                      f"{args.out}", file=sys.stderr)  # fmt: skip
            if optional := sum(not cell.required for cell in waiting):
                print(f"{optional} of the {len(waiting)} pending runs are optional: no claim "
                      "needs them (--only-required leaves them out)", file=sys.stderr)  # fmt: skip
            return 0
        left = []
        if not args.report:
            make_folder(args.out)  # unwritable: fail before work
            load_each_dataset_once(
                [
                    execute.located(c.config.to_dict(), locations)
                    for c in execute.pending(cells, args.out)
                ],
                "no run was started (--part chooses the parts to run)",
            )
            execute.run_cells(cells, args.out, args.jobs, args.threads, locations)
            left = execute.pending(cells, args.out)
        for path in report.write_report(args.out, args.budget, need_records=args.report):
            print(f"wrote {path}")
    except (ValueError, FileNotFoundError, ImportError, RuntimeError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    if left:  # failed runs, or runs whose workers died: not a success
        print(f"{prog}: {len(left)} of the {len(cells)} runs asked for are still not recorded "
              "(see FAILED above); the same command runs them again, and --list names them.",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
