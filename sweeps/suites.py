"""Named suites of studies: ``tiny`` (an installation check in seconds), ``quick`` (minutes on
a laptop) and ``paper`` (the full protocol)."""

# Each SSM model beside its plain twin: kGCN-SSM's rewiring is measured by kGCN, not by GCN.
TWINS = ("gcn", "gcn_ssm", "kgcn", "kgcn_ssm")
QUICK_DATASETS = ("ring_transfer", "gpp_sssp", "cora")

SUITES = {
    # One study of one short trial: checks an installation end to end (sweep, final runs,
    # tables, plots) in well under a minute. Reproduces nothing.
    "tiny": {
        "trials": 1,
        "studies": [{"backbone": "gcn_ssm", "dataset": "ring_transfer",
                     "space": "tiny_ring_transfer"}],
    },
    # Every study small enough that the whole suite runs in minutes on 2 CPU cores: a smoke
    # test of the pipeline (spaces quick_*.yaml, protocol "smoke"), not a reproduction.
    "quick": {
        "trials": 3,
        "studies": [
            {"backbone": model, "dataset": dataset, "space": f"quick_{dataset}"}
            for dataset in QUICK_DATASETS
            for model in TWINS
        ],
    },
    # The paper's experiments with their full spaces (sweeps/spaces/<dataset>.yaml): a GPU
    # and hours to days; `--workers` and a PostgreSQL storage spread it over machines.
    "paper": {
        "trials": 50,
        "studies": [
            {"backbone": model, "dataset": dataset}
            for dataset in (
                "gpp_eccentricity", "gpp_sssp", "gpp_diameter", "ring_transfer", "cora",
                "roman_empire", "amazon_ratings", "minesweeper", "peptides_func",
                "peptides_struct",
            )
            for model in TWINS
        ] + [
            # The published heterophily GCN (Platonov et al. 2023) with its own protocol
            # (spaces gcn_platonov__<dataset>.yaml: a 10-point grid), to check the harness
            # against their numbers; Tolokers only for that check.
            {"backbone": "gcn_platonov", "dataset": dataset, "trials": 10}
            for dataset in ("roman_empire", "amazon_ratings", "minesweeper", "tolokers")
        ],
    },
}  # fmt: skip


def suite_storage(name):
    """Where suite ``name`` keeps its studies by default: a SQLite file of its own, so the
    suites never meet in one storage (their studies share names, not spaces)."""
    return f"sqlite:///runs/{name}/optuna.db"


def suite_output(name):
    """Where suite ``name`` writes its leaderboard by default."""
    return f"runs/{name}/leaderboard"


def suite_studies(name):
    """The ``(backbone, dataset, space, trials)`` of every study in suite ``name``."""
    from dgl_ssm.checks import check_choice  # here: the command line loads no torch to start

    check_choice("suite", name, SUITES)
    suite = SUITES[name]
    return [
        (s["backbone"], s["dataset"], s.get("space"), s.get("trials", suite["trials"]))
        for s in suite["studies"]
    ]
