"""The recipes behind ``dgl-ssm analyze``: the paper's diagnostics as PNG and CSV.

Every recipe is a plain named function of explicit arguments that writes ``<stem>.png`` and
``<stem>.csv`` (the numbers plotted) into the output folder, through
:func:`dgl_ssm_bench.files.atomic_write`. Two kinds:

- one diagnostic of chosen models on one graph (:func:`energy_vs_layer`,
  :func:`gradients_vs_layer`, :func:`jacobian_spectrum`, :func:`sensitivity_vs_distance`),
  on inputs from :func:`analysis_data`;
- the paper's figures, :data:`FIGURES`, each a :class:`Figure` (output stem, title, recipe
  and its options), made by :func:`make_figures`.

Models are taken at initialisation, seeded (a plain model and its SSM twin get the same
weights), except for the accuracy-vs-depth figure, which trains. Data comes from the datasets
registry through :func:`dgl_ssm_bench.train.load_data`: Cora as it is, the ring of RingTransfer as
a structure with random features; ``random`` graphs are generated here from the seed.
"""

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import dgl
import numpy as np
import torch
import torch.nn.functional as F

import dgl_ssm
from dgl_ssm import analysis
from dgl_ssm.checks import check_choice, is_int, is_real, unknown_name

from .config import DataConfig, ModelConfig, OptimConfig, RunConfig
from .datasets import BenchmarkData
from .device import resolve_device
from .files import atomic_write, save_png
from .names import display_name
from .train import load_data, prepare_graph, train

DATASETS = ("cora", "ring", "random")
SENSITIVITY_LABEL = r"mean $\|\partial h_v^{(L)} / \partial x_u\|_F$"
STATE_SCALES = (0.5, 0.9, 1.0)
RANDOM_CLASSES = 5


# --- inputs ------------------------------------------------------------------------------


@dataclass
class Data:
    """One graph (without self loops), its node features, labels and training mask."""

    name: str
    graph: dgl.DGLGraph
    feat: torch.Tensor
    labels: torch.Tensor
    train_mask: torch.Tensor

    @property
    def num_classes(self):
        return int(self.labels.max()) + 1

    def to(self, device):
        """The same data on ``device`` (the models built for it go there too)."""
        return Data(self.name, self.graph.to(device), self.feat.to(device),
                    self.labels.to(device), self.train_mask.to(device))  # fmt: skip

    @classmethod
    def from_benchmark(cls, data: BenchmarkData, split=0):
        """A single-graph registry dataset (Cora): its features, labels and training nodes."""
        graph = data.graph
        train_mask = torch.zeros(graph.num_nodes(), dtype=torch.bool)
        train_mask[data.splits[split]["train"]] = True
        return cls(
            data.name,
            dgl.remove_self_loop(graph),
            graph.ndata["feat"],
            graph.ndata["label"],
            train_mask,
        )


def random_graph(num_nodes, num_edges, generator):
    """A bidirected graph of ``num_edges`` uniform draws (self loops dropped)."""
    src = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    dst = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    return dgl.to_bidirected(dgl.remove_self_loop(dgl.graph((src, dst), num_nodes=num_nodes)))


def ring_structure(ring_size):
    """The bidirected ring of the registry's RingTransfer (its edges only)."""
    config = DataConfig(name="ring_transfer", options={"ring_size": ring_size, "num_graphs": 10})
    ring = load_data(RunConfig(data=config)).graphs["train"][0]
    return dgl.graph(ring.edges(), num_nodes=ring_size)


def analysis_data(
    dataset,
    *,
    seed=0,
    data_dir=None,
    cache_dir=None,
    ring_size=16,
    num_nodes=200,
    num_edges=600,
    feat_dim=16,
):
    """``cora`` (real features, from the registry), the ``ring`` of RingTransfer or a
    ``random`` graph; the last two with Gaussian features of width ``feat_dim`` and random
    labels (5 classes) drawn from ``seed``."""
    if dataset == "cora":
        config = DataConfig(name="cora", data_dir=data_dir, cache_dir=cache_dir)
        return Data.from_benchmark(load_data(RunConfig(data=config)))
    generator = torch.Generator().manual_seed(seed)
    if dataset == "ring":
        graph = ring_structure(ring_size)
    elif dataset == "random":
        graph = random_graph(num_nodes, num_edges, generator)
    else:
        raise unknown_name("dataset", dataset, DATASETS)
    n = graph.num_nodes()
    feat = torch.randn(n, feat_dim, generator=generator)
    labels = torch.randint(0, RANDOM_CLASSES, (n,), generator=generator)
    return Data(dataset, graph, feat, labels, torch.ones(n, dtype=torch.bool))


def model_config(name, layers, hidden, *, activation="relu", state_scale=None, input_scale=None):
    """A :class:`ModelConfig`; the SSM options go to SSM models only."""
    config = ModelConfig(name=name, hidden=hidden, num_layers=layers, activation=activation)
    if dgl_ssm.is_ssm(name):
        config.state_scale = state_scale
        config.input_scale = input_scale
    return config


def model_graph(config, data):
    """The graph a model reads: self loops added, or k-hop rewired (``k = num_layers``)."""
    return prepare_graph(data.graph, RunConfig(model=config))


def build(config, data, seed):
    torch.manual_seed(seed)  # the same seed gives a plain model and its SSM twin equal weights
    model = dgl_ssm.build_model(
        config.name,
        data.feat.shape[1],
        config.hidden,
        data.num_classes,
        config.num_layers,
        **config.model_kwargs(),
    )
    return model.to(data.feat.device)


def label(config):
    """A curve's name: the model's display name, with ‖Λ‖₂ when it was set."""
    name = display_name(config.name)
    if dgl_ssm.is_ssm(config.name) and config.state_scale is not None:
        name += f" (‖Λ‖₂={config.state_scale:g})"
    return name


def default_label(name):
    """A model's display name; SSM models say they have the default Λ and B."""
    return display_name(name) + (" (Λ = I, B = 0.1·I)" if dgl_ssm.is_ssm(name) else "")


# --- outputs -----------------------------------------------------------------------------


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path):
    fig.tight_layout()
    save_png(fig, path)
    pyplot().close(fig)
    print(f"wrote {path}")
    return path


def write_csv(path, header, rows):
    with (
        atomic_write(path) as temporary,
        open(temporary, "w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {path}")
    return path


def curves_rows(curves):
    return [(name, x, y) for name, (xs, ys) in curves.items() for x, y in zip(xs, ys)]


def shown_points(xs, ys, logy=True):
    """Points the axis can show: finite, and > 0 on a log axis (a linear one shows 0 and
    negative values, such as a test accuracy of 0)."""
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and (y > 0 or not logy)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_curves(ax, curves, xlabel, ylabel, title=None, logy=True):
    """Curves ``{label: (xs, ys)}``; values the axis cannot show (non-finite; on a log axis,
    also ≤ 0) are left out and the label says where the curve stops being finite."""
    from matplotlib.ticker import MaxNLocator

    for name, (xs, ys) in curves.items():
        shown_x, shown_y = shown_points(xs, ys, logy)
        bad = [x for x, y in zip(xs, ys) if not math.isfinite(y)]
        note = f" (overflow from ℓ={bad[0]})" if bad else ""
        ax.plot(shown_x, shown_y, marker=".", markersize=3, label=name + note)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)


def curves_figure(path, curves, xlabel, ylabel, title):
    """One panel of curves on a log axis, saved as ``path``."""
    fig, ax = pyplot().subplots(figsize=(6, 4))
    plot_curves(ax, curves, xlabel, ylabel, title)
    return save(fig, path)


def modulus_histogram(ax, samples, title, bins=None, theory=None):
    """Overlaid histograms of eigenvalue moduli ``{label: array}``, with |λ| = 1 marked."""
    top = max(1.2, max(float(np.max(v)) for v in samples.values()) * 1.05)
    bins = np.linspace(0.0, top, 60) if bins is None else bins
    for name, values in samples.items():
        ax.hist(values, bins=bins, alpha=0.55, label=f"{name} (max {np.max(values):.3g})")
    if theory is not None:
        ax.hist(
            theory,
            bins=bins,
            histtype="step",
            color="black",
            linewidth=1.2,
            label="theory |λ(Â)|·|λ(W)|",
        )
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1, label="|λ| = 1")
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 30)  # room for the legend above the bars
    ax.set_xlabel("eigenvalue modulus |λ| of the layer Jacobian")
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")


# --- measurements ------------------------------------------------------------------------


def energy_curves(configs, data, seed, normalized=False, dtype=None):
    """``{label: (layers, Dirichlet energies)}`` of each model at initialisation."""
    curves = {}
    for config in configs:
        model = build(config, data, seed)
        values = analysis.layer_energies(
            model,
            model_graph(config, data),
            data.feat,
            normalized,
            energy_graph=data.graph,
            dtype=dtype,
        )
        curves[label(config)] = (list(range(len(values))), values)
    return curves


def gradient_curves(configs, data, seed):
    """``{label: (layers, ‖∂loss/∂H⁽ℓ⁾‖)}`` of the cross-entropy on the training nodes."""

    def loss_fn(out):
        return F.cross_entropy(out[data.train_mask], data.labels[data.train_mask])

    curves = {}
    for config in configs:
        model = build(config, data, seed)
        graph = model_graph(config, data)
        norms = analysis.layer_gradient_norms(model, graph, data.feat, loss_fn, include_input=True)
        curves[label(config)] = (list(range(len(norms))), norms)
    return curves


def sensitivity_curves(configs, data, seed, num_targets, max_distance=None, targets=None):
    """``{label: (distances, mean sensitivity)}``, distances on the graph before rewiring."""
    curves = {}
    for config in configs:
        model = build(config, data, seed)
        curve = analysis.sensitivity_by_distance(
            model,
            model_graph(config, data),
            data.feat,
            targets,
            max_distance,
            distance_graph=data.graph,
            num_targets=num_targets,
            seed=seed,
        )
        curves[label(config)] = (list(curve), list(curve.values()))
    return curves


def layer_spectrum(config, data, seed, layer, max_dense, k):
    """Eigenvalue moduli and singular values of one layer's Jacobian where the model puts it:
    all of them (dense) when ``n·d ≤ max_dense``, else the top ``k`` and a density."""
    model = build(config, data, seed)
    calls = analysis.layer_inputs(model, model_graph(config, data), data.feat)
    if not 1 <= layer <= len(calls):
        raise ValueError(f"--layer must be in 1..{len(calls)}, got {layer}.")
    call = calls[layer - 1]
    common = dict(edge_feat=call.edge_feat, layer_kwargs=call.kwargs)
    lay = model.layers[layer - 1]
    if call.feat.numel() <= max_dense:
        jac = analysis.dense_layer_jacobian(lay, call.graph, call.feat, max_dim=max_dense, **common)
        moduli = torch.linalg.eigvals(jac).abs().cpu().numpy()
        singular = torch.linalg.svdvals(jac).cpu().numpy()
        return {"eig_modulus": np.sort(moduli)[::-1], "singular_value": singular}, None
    singular = analysis.top_singular_values(lay, call.graph, call.feat, k, **common).cpu().numpy()
    moduli = analysis.top_eigenvalue_moduli(lay, call.graph, call.feat, k, **common).cpu().numpy()
    grid, density = analysis.spectral_density(lay, call.graph, call.feat, **common)
    return {"eig_modulus": moduli, "singular_value": singular}, (
        grid.cpu().numpy(),
        density.cpu().numpy(),
    )


# --- one diagnostic of chosen models on one graph ------------------------------------------


def energy_vs_layer(data, configs, *, out, seed=0, normalized=False, float64=False):
    """``energy_<data>``: Dirichlet energy of every layer's states."""
    curves = energy_curves(configs, data, seed, normalized, torch.float64 if float64 else None)
    stem = Path(out) / f"energy_{data.name}"
    write_csv(stem.with_suffix(".csv"), ["model", "layer", "energy"], curves_rows(curves))
    kind = "normalised Dirichlet energy" if normalized else "Dirichlet energy"
    ylabel = kind + r" $E(H^{(\ell)})$"
    title = f"{data.name}, at initialisation"
    return curves_figure(stem.with_suffix(".png"), curves, r"layer $\ell$", ylabel, title)


def gradients_vs_layer(data, configs, *, out, seed=0):
    """``gradients_<data>``: ‖∂loss/∂H⁽ℓ⁾‖ of the cross-entropy at every layer."""
    curves = gradient_curves(configs, data, seed)
    stem = Path(out) / f"gradients_{data.name}"
    write_csv(stem.with_suffix(".csv"), ["model", "layer", "grad_norm"], curves_rows(curves))
    ylabel = r"$\|\partial\,\mathrm{loss} / \partial H^{(\ell)}\|_F$"
    title = f"{data.name}, cross-entropy, at initialisation"
    return curves_figure(stem.with_suffix(".png"), curves, r"layer $\ell$", ylabel, title)


def sensitivity_vs_distance(data, configs, *, out, seed=0, targets=16, max_distance=None):
    """``sensitivity_<data>``: mean ‖∂h_v⁽ᴸ⁾/∂x_u‖ by hop distance over ``targets`` nodes v."""
    curves = sensitivity_curves(configs, data, seed, targets, max_distance)
    stem = Path(out) / f"sensitivity_{data.name}"
    header = ["model", "distance", "mean_sensitivity"]
    write_csv(stem.with_suffix(".csv"), header, curves_rows(curves))
    title = f"{data.name}, L = {configs[0].num_layers} layers, at initialisation"
    xlabel = "hop distance d(u, v)"
    return curves_figure(stem.with_suffix(".png"), curves, xlabel, SENSITIVITY_LABEL, title)


def jacobian_spectrum(data, configs, *, out, seed=0, layer=1, max_dense=None, k=10):
    """``jacobian_<data>``: the spectrum of one layer's Jacobian (dense: every eigenvalue
    modulus; matrix-free: the top ``k`` and the singular-value density)."""
    max_dense = analysis.DEFAULT_MAX_DIM if max_dense is None else max_dense
    rows, spectra, densities, top = [], {}, {}, {}
    for config in configs:
        values, density = layer_spectrum(config, data, seed, layer, max_dense, k)
        name = label(config)
        spectra[name], top[name] = values["eig_modulus"], float(values["singular_value"][0])
        for kind, array in values.items():
            rows += [(name, kind, i, float(v)) for i, v in enumerate(array)]
        if density is not None:
            densities[name] = density
            rows += [(name, "sv_density", float(s), float(p)) for s, p in zip(*density)]
    stem = Path(out) / f"jacobian_{data.name}"
    write_csv(stem.with_suffix(".csv"), ["model", "kind", "index_or_sigma", "value"], rows)
    title = f"{data.name}, layer {layer}, at initialisation"
    fig, ax = pyplot().subplots(figsize=(6, 4))
    if not densities:
        modulus_histogram(ax, spectra, title)
    else:
        for name, (grid, density) in densities.items():
            ax.plot(grid, density, label=f"{name} (σ₁ = {top[name]:.3g})")
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1, label="σ = 1")
        ax.set_xlabel("singular value σ of the layer Jacobian")
        ax.set_ylabel("density (stochastic Lanczos quadrature)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    return save(fig, stem.with_suffix(".png"))


# --- the paper's figures -----------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How big the paper's figures are: training depths and epochs, ring size."""

    depths: tuple[int, ...]
    epochs: int
    patience: int | None
    ring: int


FULL = Settings(depths=(2, 4, 8, 16, 32, 64, 128), epochs=200, patience=50, ring=32)
QUICK = Settings(depths=(2, 4, 8, 16, 32, 64), epochs=50, patience=None, ring=16)


@dataclass
class Session:
    """What the paper's figures share: the output folder, the seed, the size, the device the
    models run on, and Cora (loaded from the registry once, when a figure first asks for it)."""

    out: Path
    seed: int = 0
    settings: Settings = FULL
    data_dir: str | None = None
    cache_dir: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def cora_config(self):
        return DataConfig(name="cora", data_dir=self.data_dir, cache_dir=self.cache_dir)

    @cached_property
    def cora(self) -> BenchmarkData:
        return load_data(RunConfig(data=self.cora_config))


def jacobian_linear_conv(session, stem, nodes=64, dim=16):
    """(a) H W, (b) Â H W, (c) relu(Â H W) on a random graph: the Jacobian spectra. On the
    CPU whatever the session's device: 64 nodes, checked against NumPy's eigenvalues."""
    from dgl.nn import GraphConv

    generator = torch.Generator().manual_seed(session.seed)
    bare = random_graph(nodes, 3 * nodes, generator)
    graph = dgl.add_self_loop(bare)
    torch.manual_seed(session.seed)
    conv = GraphConv(dim, dim, bias=False)
    weight = conv.weight.detach()
    feat = torch.randn(nodes, dim, generator=generator)
    layers = {
        "(a) linear layer H W": lambda g, h: h @ weight.to(h.dtype),
        "(b) linear graph conv Â H W": dgl_ssm.SSMLayer(conv, dim, dgl_ssm.PlainUpdate("identity")),
        "(c) nonlinear graph conv relu(Â H W)": dgl_ssm.SSMLayer(
            conv, dim, dgl_ssm.PlainUpdate("relu")
        ),
    }
    adj = np.eye(nodes)
    s, d = (t.numpy() for t in bare.edges())
    adj[d, s] = 1.0
    deg = adj.sum(1)
    a_hat = adj / np.sqrt(np.outer(deg, deg))
    theory = np.outer(
        np.abs(np.linalg.eigvalsh(a_hat)), np.abs(np.linalg.eigvals(weight.double().numpy()))
    ).ravel()

    fig, axes = pyplot().subplots(1, 3, figsize=(15, 4), sharex=True)
    spectra = {
        name: torch.linalg.eigvals(analysis.dense_layer_jacobian(layer, graph, feat)).abs().numpy()
        for name, layer in layers.items()
    }
    top = max(1.3, 1.05 * max(float(v.max()) for v in spectra.values()))
    rows, bins = [], np.linspace(0.0, top, 66)
    for ax, (name, moduli) in zip(axes, spectra.items()):
        rows += [(name, float(m)) for m in moduli]
        below = np.mean(moduli < 0.5)
        modulus_histogram(
            ax,
            {f"{100 * below:.1f}% of |λ| < 0.5": moduli},
            name,
            bins,
            theory if name.startswith("(b)") else None,
        )
    fig.suptitle(
        f"Layer Jacobian spectra ({nodes}-node random graph, d = {dim}, n·d = {nodes * dim})",
        fontsize=11,
    )
    write_csv(session.out / f"{stem}.csv", ["layer", "eig_modulus"], rows)
    return save(fig, session.out / f"{stem}.png")


def jacobian_models(session, stem, pairs, nodes=64, dim=16):
    """Eigenvalue moduli of the first layer's Jacobian, plain vs SSM (Λ = I, B = 0.1·I), one
    panel per pair of model names."""
    generator = torch.Generator().manual_seed(session.seed)
    bare = random_graph(nodes, 3 * nodes, generator)
    feat = torch.randn(nodes, dim, generator=generator)
    one_class = torch.zeros(nodes, dtype=torch.long)
    data = Data("random", bare, feat, one_class, torch.ones(nodes, dtype=torch.bool))
    data = data.to(session.device)
    fig, axes = pyplot().subplots(1, len(pairs), figsize=(6 * len(pairs), 4), squeeze=False)
    rows = []
    for ax, names in zip(axes[0], pairs):
        spectra = {}
        for name in names:
            config = model_config(name, 4, dim, state_scale=1.0, input_scale=0.1)
            values, _ = layer_spectrum(config, data, session.seed, 1, 4096, 10)
            spectra[default_label(name)] = values["eig_modulus"]
            rows += [(default_label(name), float(m)) for m in values["eig_modulus"]]
        top = max(1.3, max(float(v.max()) for v in spectra.values()) * 1.05)
        title = " vs ".join(display_name(n) for n in names)
        modulus_histogram(ax, spectra, title, np.linspace(0.0, top, 66))
    fig.suptitle(
        f"Layer Jacobian spectra ({nodes}-node random graph, d = {dim}, first layer at init)",
        fontsize=11,
    )
    write_csv(session.out / f"{stem}.csv", ["model", "eig_modulus"], rows)
    return save(fig, session.out / f"{stem}.png")


def energy_cora(session, stem, backbones, layers=64, hidden=64):
    """Dirichlet energy vs layer on Cora (float64): each plain backbone and its SSM twin at
    every ‖Λ‖₂ in :data:`STATE_SCALES`, one panel per backbone."""
    data = Data.from_benchmark(session.cora).to(session.device)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(backbones), figsize=(6.5 * len(backbones), 4.5), squeeze=False)
    rows = []
    for ax, backbone in zip(axes[0], backbones):
        configs = [model_config(backbone, layers, hidden)]
        configs += [
            model_config(f"{backbone}_ssm", layers, hidden, state_scale=m) for m in STATE_SCALES
        ]
        curves = energy_curves(configs, data, session.seed, dtype=torch.float64)
        rows += [(backbone, *row) for row in curves_rows(curves)]
        plot_curves(
            ax,
            curves,
            r"layer $\ell$",
            r"Dirichlet energy $E(H^{(\ell)})$",
            f"{display_name(backbone)} on Cora: {layers} layers, hidden {hidden}, "
            "at init (float64)",
        )
    write_csv(session.out / f"{stem}.csv", ["backbone", "model", "layer", "energy"], rows)
    return save(fig, session.out / f"{stem}.png")


def accuracy_vs_depth(session, stem, models=("gcn", "gcn_ssm")):
    """Test accuracy on Cora against depth, trained (hidden 64, dropout 0.5)."""
    settings = session.settings
    rows, curves = [], {}
    for name in models:
        xs, ys = [], []
        for depth in settings.depths:
            config = RunConfig(
                model=ModelConfig(name=name, hidden=64, num_layers=depth, dropout=0.5),
                data=session.cora_config,
                optim=OptimConfig(
                    lr=0.01,
                    weight_decay=5e-4,
                    epochs=settings.epochs,
                    patience=settings.patience,
                ),
                seed=session.seed,
                device=str(session.device),
            )
            start = time.perf_counter()
            result = train(config, data=session.cora)
            accuracy = result.test if result.test is not None else float("nan")
            print(
                f"  {display_name(name):8s} depth {depth:3d}: test accuracy {accuracy:.3f} "
                f"({result.status}, {time.perf_counter() - start:.0f} s)"
            )
            xs.append(depth)
            ys.append(accuracy)
            rows.append((name, depth, accuracy, result.val, result.best_epoch, result.status))
        curves[default_label(name)] = (xs, ys)
    write_csv(
        session.out / f"{stem}.csv",
        ["model", "layers", "test_accuracy", "val_accuracy", "best_epoch", "status"],
        rows,
    )
    fig, ax = pyplot().subplots(figsize=(6, 4))
    plot_curves(
        ax,
        curves,
        "depth (number of layers)",
        "test accuracy",
        f"Cora, hidden 64, dropout 0.5, {settings.epochs} epochs"
        + (f" (patience {settings.patience})" if settings.patience else ""),
        logy=False,
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(settings.depths), [str(d) for d in settings.depths])
    ax.set_ylim(0, 1)
    return save(fig, session.out / f"{stem}.png")


def sensitivity_ring(session, stem, hidden=32, feat_dim=16):
    """Sensitivity vs distance on the ring, L = ring size / 2 layers (k-hop: K = L), averaged
    over targets 0 and ring size / 4: GCN, kGCN and their SSM twins."""
    size, seed = session.settings.ring, session.seed
    layers = size // 2
    data = analysis_data("ring", seed=seed, ring_size=size, feat_dim=feat_dim).to(session.device)
    names = ("gcn", "kgcn", "gcn_ssm", "kgcn_ssm")
    configs = [model_config(name, layers, hidden) for name in names]
    curves = sensitivity_curves(configs, data, seed, num_targets=4, targets=[0, size // 4])
    header = ["model", "distance", "mean_sensitivity"]
    write_csv(session.out / f"{stem}.csv", header, curves_rows(curves))
    title = (
        f"Ring of {size} nodes, L = {layers} layers (k-hop: K = {layers}), at init\n"
        f"mean over targets v ∈ {{0, {size // 4}}} and all u at each distance"
    )
    xlabel = "hop distance d(u, v) on the ring"
    return curves_figure(session.out / f"{stem}.png", curves, xlabel, SENSITIVITY_LABEL, title)


@dataclass(frozen=True)
class Figure:
    """One of the paper's figures: ``recipe(session, name, **options)`` writes
    ``<name>.png`` and ``<name>.csv`` into ``session.out``."""

    name: str
    title: str
    recipe: Callable[..., Path]
    options: dict[str, Any] = field(default_factory=dict)

    def make(self, session):
        return self.recipe(session, self.name, **self.options)


FIGURES = (
    Figure("jacobian_linear_conv", "Jacobian spectra: linear, linear conv, nonlinear conv",
           jacobian_linear_conv),
    Figure("jacobian_gcn_vs_gcn_ssm", "Jacobian spectra: GCN vs GCN-SSM", jacobian_models,
           {"pairs": (("gcn", "gcn_ssm"),)}),
    Figure("jacobian_gin_gatedgcn", "Jacobian spectra: GIN and GatedGCN", jacobian_models,
           {"pairs": (("gin", "gin_ssm"), ("gatedgcn", "gatedgcn_ssm"))}),
    Figure("sensitivity_ring", "Sensitivity vs distance on a ring", sensitivity_ring),
    Figure("energy_cora_gcn", "Dirichlet energy on Cora: GCN", energy_cora,
           {"backbones": ("gcn",)}),
    Figure("energy_cora_gin_gatedgcn", "Dirichlet energy on Cora: GIN and GatedGCN", energy_cora,
           {"backbones": ("gin", "gatedgcn")}),
    Figure("accuracy_vs_depth_cora", "Accuracy vs depth on Cora (training)", accuracy_vs_depth),
)  # fmt: skip
FIGURE_NAMES = tuple(figure.name for figure in FIGURES)


def monitor_figures(record, *, out, stem="monitor"):
    """Layer × epoch heatmaps of a monitored run's record (``dgl-ssm run --monitor EVERY``):
    log10 ‖∂loss/∂H⁽ℓ⁾‖ and log10 Dirichlet energy, and the tracked layers' top singular
    values against epoch (``<stem>_grad_norm.png``, ``<stem>_energy.png``,
    ``<stem>_singular_values.png``), and one CSV of them all, ``<stem>.csv`` (long format:
    quantity, epoch, layer, value)."""
    entries = _monitor_entries(record)
    plt = pyplot()
    epochs = [e["epoch"] for e in entries]
    # Each cell spans its epoch ± half the monitor's step (EVERY), so it sits on its epoch.
    half = (epochs[-1] - epochs[0]) / (len(epochs) - 1) / 2 if len(epochs) > 1 else 0.5
    rows, paths = [], []
    for name, first, title in (("grad_norm", 1, "log10 ‖∂loss/∂H⁽ℓ⁾‖"),
                               ("energy", 0, "log10 Dirichlet energy of H⁽ℓ⁾")):  # fmt: skip
        grid = np.array([e[name] for e in entries], dtype=float).T  # layers × epochs
        rows += [(name, ep, first + layer, grid[layer, j]) for layer in range(grid.shape[0])
                 for j, ep in enumerate(epochs)]  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(grid > 0, np.log10(grid), np.nan)
        fig, ax = plt.subplots(figsize=(6, 4))
        image = ax.imshow(logs, aspect="auto", origin="lower", interpolation="nearest",
                          extent=(epochs[0] - half, epochs[-1] + half, first - 0.5,
                                  first + grid.shape[0] - 0.5))  # fmt: skip
        fig.colorbar(image, ax=ax)
        ax.set(xlabel="epoch", ylabel="layer ℓ", title=title)
        paths.append(save(fig, out / f"{stem}_{name}.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    layers = sorted({int(k) for e in entries for k in e.get("singular_values", {})})
    for layer in layers:
        points = [(e["epoch"], e["singular_values"][str(layer)]) for e in entries
                  if str(layer) in e.get("singular_values", {})]  # fmt: skip
        for rank in range(max(len(v) for _, v in points)):
            xs = [ep for ep, v in points if len(v) > rank]
            ys = [v[rank] for _, v in points if len(v) > rank]
            rows += [("singular_value", x, layer, y) for x, y in zip(xs, ys)]
            ax.plot(xs, ys, marker="o", label=f"layer {layer}, σ{rank + 1}")
    ax.set(xlabel="epoch", ylabel="top singular values of the layer Jacobian")
    if layers:
        ax.legend(fontsize=7)
    paths.append(save(fig, out / f"{stem}_singular_values.png"))
    paths.append(write_csv(out / f"{stem}.csv", ["quantity", "epoch", "layer", "value"], rows))
    return paths


def make_figures(
    out, *, seed=0, quick=False, only=None, data_dir=None, cache_dir=None, device="cpu"
):
    """Make the paper's figures (``only``: those of these names, in :data:`FIGURES` order)
    on ``device`` (a ``torch.device``, or a ``--device`` name: auto, cpu, cuda, cuda:N) and
    return their PNG paths."""
    for name in only or ():
        check_choice("figure", name, FIGURE_NAMES)
    if not isinstance(device, torch.device):
        device = resolve_device(device)  # "mps", say, is refused before any work
    settings = QUICK if quick else FULL
    session = Session(Path(out), seed, settings, data_dir, cache_dir, device)
    paths, total = [], time.perf_counter()
    for figure in FIGURES:
        if only and figure.name not in only:
            continue
        start = time.perf_counter()
        print(f"{figure.title} …", flush=True)
        paths.append(figure.make(session))
        print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    print(f"figures: {time.perf_counter() - total:.0f} s in all")
    return paths


def has_monitor_entries(record):
    """Whether ``record`` (a run's, as read from its JSONL file) holds monitor entries."""
    history = record.get("history") if isinstance(record, dict) else None
    return isinstance(history, list) and any(_is_monitor_entry(h) for h in history)


def _is_monitor_entry(item):
    return isinstance(item, dict) and "grad_norm" in item


def _monitor_entries(record):
    """The record's monitor entries, checked whole before anything is drawn or written (a
    malformed one failed deep inside, some plots already written)."""
    history = record.get("history")
    if history is not None and not isinstance(history, list):
        raise ValueError(f"This record's history is {type(history).__name__}, not a list.")
    entries = [h for h in history or [] if _is_monitor_entry(h)]
    if not entries:
        raise ValueError(
            "This record has no monitor entries: run it with `dgl-ssm run --monitor EVERY`."
        )

    def numbers(value):  # (None: a NaN, as JSON writes it)
        return isinstance(value, list) and all(x is None or is_real(x) for x in value)

    shapes, last = {}, None
    for i, entry in enumerate(entries):
        epoch = entry.get("epoch")
        fault = None
        if not is_int(epoch) or (last is not None and epoch <= last):
            fault = f"epoch {epoch!r} is not an integer greater than the last ({last})"
        for name in ("grad_norm", "energy"):
            value = entry.get(name)
            if not numbers(value):
                fault = fault or f"{name} is not a list of numbers"
            elif len(value) != shapes.setdefault(name, len(value)):
                fault = fault or f"{name} has {len(value)} layers, not {shapes[name]} as before"
        values = entry.get("singular_values", {})
        if not isinstance(values, dict) or not all(
            str(k).isdigit() and numbers(v) for k, v in values.items()
        ):
            fault = fault or "singular_values is not {layer: [numbers]}"
        if fault:
            raise ValueError(
                f"Monitor entry {i} of this record (epoch {epoch!r}) is malformed: {fault}. "
                "Was the record edited? Run it again with `dgl-ssm run --monitor EVERY`."
            )
        last = epoch
    return entries
