"""The paper's datasets behind one name: ``get_dataset(name, data_dir=..., **options)``.

Real datasets are read by DGL's/OGB's own loaders from a local directory (``data_dir`` or
``$DGL_SSM_DATA``) or downloaded as usual; synthetic ones are generated from a seed.
"""

import inspect

from dgl_ssm.checks import is_int, unknown_name

from .base import BenchmarkData


def _planetoid(name):
    def load(data_dir=None, cache_dir=None):
        from .planetoid import planetoid_data

        return planetoid_data(name, data_dir, cache_dir)

    return load


def _heterophilous(name):
    def load(data_dir=None, cache_dir=None):
        from .heterophilous import load_heterophilous

        return load_heterophilous(name, data_dir, cache_dir)

    return load


def _gpp(task):
    def load(cache_dir=None, seed=0, sizes=(5120, 640, 1280), min_nodes=25, batches=(10, 5, 5)):
        from .gpp import load_gpp

        return load_gpp(task, seed=seed, sizes=tuple(sizes), cache_path=cache_dir,
                        min_nodes=min_nodes, batches=tuple(batches))  # fmt: skip

    return load


def _ring_transfer(ring_size=20, num_graphs=2000, seed=0):
    from .ring_transfer import load_ring_transfer

    return load_ring_transfer(ring_size, num_graphs, seed)


def _ogbn_arxiv(data_dir=None, cache_dir=None):
    from .ogb_data import load_ogbn_arxiv

    return load_ogbn_arxiv(data_dir, cache_dir)


def _peptides(task):
    def load(data_dir=None, cache_dir=None):
        from .ogb_data import load_peptides

        return load_peptides(task, data_dir, cache_dir)

    return load


DATASETS = {
    "cora": _planetoid("cora"),
    "citeseer": _planetoid("citeseer"),
    "pubmed": _planetoid("pubmed"),
    "minesweeper": _heterophilous("minesweeper"),
    "tolokers": _heterophilous("tolokers"),
    "roman_empire": _heterophilous("roman_empire"),
    "amazon_ratings": _heterophilous("amazon_ratings"),
    "questions": _heterophilous("questions"),
    "ring_transfer": _ring_transfer,
    "gpp_diameter": _gpp("diameter"),
    "gpp_sssp": _gpp("sssp"),
    "gpp_eccentricity": _gpp("eccentricity"),
    "ogbn_arxiv": _ogbn_arxiv,
    "peptides_func": _peptides("func"),
    "peptides_struct": _peptides("struct"),
}


LOCATIONS = ("data_dir", "cache_dir")

# How many fixed train/val/test splits each single-graph dataset ships (checked before the
# data loads); datasets of many graphs have none: their split is the graphs themselves.
FIXED_SPLITS = {"cora": 1, "citeseer": 1, "pubmed": 1, "ogbn_arxiv": 1, "minesweeper": 10,
                "tolokers": 10, "roman_empire": 10, "amazon_ratings": 10,
                "questions": 10}  # fmt: skip


# The datasets whose task is one output per graph (a readout); the others are per node. Known
# before the data loads, so a graph head's options are checked with the rest of a run's.
GRAPH_LEVEL = {"gpp_diameter", "peptides_func", "peptides_struct"}


# The metric each dataset is scored by, known before the data loads, so a sweep can check
# a stored study's direction before a suite runs (each loader gives its own; a test checks
# they agree).
METRIC = {"cora": "accuracy", "citeseer": "accuracy", "pubmed": "accuracy",
          "minesweeper": "roc_auc", "tolokers": "roc_auc", "questions": "roc_auc",
          "roman_empire": "accuracy", "amazon_ratings": "accuracy", "ring_transfer": "accuracy",
          "gpp_diameter": "log10_mse", "gpp_sssp": "log10_mse", "gpp_eccentricity": "log10_mse",
          "ogbn_arxiv": "accuracy", "peptides_func": "ap", "peptides_struct": "mae"}  # fmt: skip


def dataset_metric(name):
    """The metric dataset ``name`` is scored by (a key of ``dgl_ssm_bench.metrics.METRICS``)."""
    _loader(name)  # unknown names list the valid ones
    return METRIC[name]


def dataset_level(name):
    """``"graph"`` or ``"node"``: the level of dataset ``name``'s task."""
    _loader(name)  # unknown names list the valid ones
    return "graph" if name in GRAPH_LEVEL else "node"


def num_splits(name):
    """The number of fixed splits of dataset ``name``, or ``None`` for many-graph datasets."""
    _loader(name)  # unknown names list the valid ones
    return FIXED_SPLITS.get(name)


def dataset_options(name):
    """The options a dataset accepts (``data_dir``, ``ring_size``, ``seed``, …)."""
    return list(inspect.signature(_loader(name)).parameters)


def get_dataset(name, **options):
    """Load the dataset registered as ``name``.

    Options a dataset does not take are refused with the list it does take. ``None`` values,
    and the locations ``data_dir`` / ``cache_dir`` where a dataset needs none (generated
    ones), are dropped, so callers can pass every option they have.
    """
    loader = _loader(name)
    accepted = dataset_options(name)
    options = {
        k: v for k, v in options.items() if v is not None and (k in accepted or k not in LOCATIONS)
    }
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"Dataset {name!r} takes no option {', '.join(unknown)}; it accepts: "
            f"{', '.join(accepted) or 'none'}."
        )
    defaults = {key: p.default for key, p in inspect.signature(loader).parameters.items()}
    for key, value in options.items():  # a YAML "6" or 6.5 failed deep inside, or crashed DGL
        default = defaults.get(key)
        if is_int(default) and not is_int(value):
            raise ValueError(
                f"Dataset {name!r}: option {key} must be an integer (default {default}), got "
                f"{value!r}{' (a string: drop the quotes)' if isinstance(value, str) else ''}."
            )
    seed = options.get("seed")
    if seed is not None and not (is_int(seed) and 0 <= seed < 2**32):  # numpy's seed range
        raise ValueError(
            f"The seed of a generated dataset (--data-seed, data.options.seed) must be an "
            f"integer from 0 to 2**32 - 1, got {seed!r}."
        )
    return loader(**options)


def data_version(name):
    """Which version of the data ``name`` loads, for datasets that have had several; else None.

    Graph property prediction: ``"<generator>-v<cache version>"`` of
    :mod:`dgl_ssm_bench.datasets.gpp` (``"pna-v2"``: the PNA multitask generator's rules, in
    A-DGN's 25–35-node variant; ``"legacy-v1"``: the loose recipe of before). RingTransfer:
    ``"drew-v<version>"`` of :mod:`dgl_ssm_bench.datasets.ring_transfer` (``"drew-v2"``:
    classes balanced within each split, as DRew's generator; ``"drew-v1"``: over the whole set
    only). Results on different versions are different benchmarks and must not be set side by
    side.
    """
    _loader(name)  # unknown names list the valid ones
    if name.startswith("gpp_"):
        from . import gpp

        generator = getattr(gpp, "GENERATOR", "legacy")
        return f"{generator}-v{getattr(gpp, 'CACHE_VERSION', 1)}"
    if name == "ring_transfer":
        from . import ring_transfer

        return f"drew-v{ring_transfer.VERSION}"
    return None


def _loader(name):
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise unknown_name("dataset", name, DATASETS) from None


__all__ = [
    "DATASETS",
    "BenchmarkData",
    "data_version",
    "dataset_level",
    "dataset_metric",
    "dataset_options",
    "get_dataset",
    "num_splits",
]
