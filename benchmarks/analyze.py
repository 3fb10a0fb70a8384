"""The ``dgl-ssm-analyze`` command: the paper's diagnostics as PNG and CSV.

dgl-ssm-analyze energy --model gcn gcn_ssm --dataset cora --layers 64
dgl-ssm-analyze gradients --model gcn gcn_ssm --dataset random --layers 32
dgl-ssm-analyze jacobian --model gcn gcn_ssm --dataset random --layer 1
dgl-ssm-analyze sensitivity --model gcn kgcn_ssm --dataset ring --ring-size 16 --layers 8
dgl-ssm-analyze figures --quick --out runs/analysis

Every command writes ``<name>.png`` and ``<name>.csv`` into ``--out`` (default
``runs/analysis``). Models are taken at initialisation (seeded with ``--seed``; a plain model
and its SSM twin get the same weights), except for the accuracy-vs-depth figure, which trains.
One-hop models get one self loop per node, k-hop models (``kgcn``, ``kgcn_ssm``) the graph
rewired with ``KHopTransform(k=layers)``; distances and energies are measured on the graph
before rewiring. The command runs on one thread unless ``--threads`` says otherwise: its work
is thousands of small autograd passes, which extra threads slow down (badly on busy machines).
"""

import argparse
import csv
import math
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import dgl
import numpy as np
import torch
import torch.nn.functional as F
from dgl import DGLError

import dgl_ssm
from dgl_ssm import analysis

from .config import DataConfig, ModelConfig, OptimConfig, RunConfig
from .models import display_name
from .records import make_folder

DATASETS = ("cora", "ring", "random")
SENSITIVITY_LABEL = r"mean $\|\partial h_v^{(L)} / \partial x_u\|_F$"
DEFAULT_OUT = "runs/analysis"
STATE_SCALES = (0.5, 0.9, 1.0)
FULL = {"depths": (2, 4, 8, 16, 32, 64, 128), "epochs": 200, "patience": 50, "ring": 32}
QUICK = {"depths": (2, 4, 8, 16, 32, 64), "epochs": 50, "patience": None, "ring": 16}
FIGURES_HELP = (
    "regenerate the paper's analysis figures (Jacobian spectra, Dirichlet energy, accuracy vs "
    "depth, sensitivity vs distance). --quick (depths 2-64, 50 epochs, a 16-node ring) takes "
    "about 1-2 minutes on 2 CPU cores; the full version (depths 2-128, up to 200 epochs with "
    "patience 50, a 32-node ring) about 5-10 minutes, nearly all of it training"
)


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


def load_data(name, args):
    """``cora`` (real features), a bidirected ``ring`` or a ``random`` graph (Gaussian
    features of width ``--feat-dim`` and random labels from ``--seed``)."""
    if name == "cora":
        from .datasets.planetoid import load_planetoid

        graph = load_planetoid("cora", args.data_dir, args.cache_dir)
        bare = dgl.remove_self_loop(graph)
        return Data(
            "cora", bare, graph.ndata["feat"], graph.ndata["label"], graph.ndata["train_mask"]
        )
    generator = torch.Generator().manual_seed(args.seed)
    if name == "ring":
        from .datasets.ring_transfer import ring_graph

        graph = ring_graph(args.ring_size, 0)
        graph = dgl.graph(graph.edges(), num_nodes=args.ring_size)  # the structure only
    elif name == "random":
        if args.num_nodes < 2 or args.num_edges < 1:
            raise ValueError("--num-nodes must be at least 2 and --num-edges at least 1.")
        src = torch.randint(0, args.num_nodes, (args.num_edges,), generator=generator)
        dst = torch.randint(0, args.num_nodes, (args.num_edges,), generator=generator)
        graph = dgl.to_bidirected(
            dgl.remove_self_loop(dgl.graph((src, dst), num_nodes=args.num_nodes))
        )
    else:
        raise ValueError(f"Unknown dataset {name!r}. Valid: {', '.join(DATASETS)}.")
    n = graph.num_nodes()
    feat = torch.randn(n, args.feat_dim, generator=generator)
    labels = torch.randint(0, 5, (n,), generator=generator)
    return Data(name, graph, feat, labels, torch.ones(n, dtype=torch.bool))


def model_config(name, layers, hidden, args, state_scale=None):
    """A :class:`ModelConfig`; SSM options go to SSM models only."""
    config = ModelConfig(name=name, hidden=hidden, num_layers=layers, activation=args.activation)
    if dgl_ssm.is_ssm(name):
        config.state_scale = state_scale if state_scale is not None else args.state_scale
        config.input_scale = args.input_scale
    return config


def model_graph(config, data):
    """The graph a model reads: self loops added, or k-hop rewired (``k = num_layers``)."""
    from .train import prepare_graph

    return prepare_graph(data.graph, RunConfig(model=config))


def build(config, data, seed):
    torch.manual_seed(seed)  # the same seed gives a plain model and its SSM twin equal weights
    return dgl_ssm.build_model(
        config.name,
        data.feat.shape[1],
        config.hidden,
        data.num_classes,
        config.num_layers,
        **config.model_kwargs(),
    )


def label(config):
    name = display_name(config.name)
    if dgl_ssm.is_ssm(config.name) and config.state_scale is not None:
        name += f" (‖Λ‖₂={config.state_scale:g})"
    return name


# --- outputs -----------------------------------------------------------------------------


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    pyplot().close(fig)
    print(f"wrote {path}")
    return path


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {path}")
    return path


def positive(xs, ys):
    """Points that a log axis can show (finite and > 0)."""
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and y > 0]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_curves(ax, curves, xlabel, ylabel, title=None, logy=True):
    """Curves ``{label: (xs, ys)}``; values a log axis cannot show are left out and the
    label says where the curve stops being finite."""
    from matplotlib.ticker import MaxNLocator

    for name, (xs, ys) in curves.items():
        shown_x, shown_y = positive(xs, ys)
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


# --- commands ----------------------------------------------------------------------------


def energy_curves(configs, data, seed, normalized=False, dtype=None):
    curves = {}
    for config in configs:
        model = build(config, data, seed)
        graph = model_graph(config, data)
        values = analysis.layer_energies(
            model, graph, data.feat, normalized, energy_graph=data.graph, dtype=dtype
        )
        curves[label(config)] = (list(range(len(values))), values)
    return curves


def curves_rows(curves):
    return [(name, x, y) for name, (xs, ys) in curves.items() for x, y in zip(xs, ys)]


def cmd_energy(args, data, configs):
    dtype = torch.float64 if args.float64 else None
    curves = energy_curves(configs, data, args.seed, args.normalized, dtype)
    stem = args.out / f"energy_{data.name}"
    kind = "normalised Dirichlet energy" if args.normalized else "Dirichlet energy"
    write_csv(stem.with_suffix(".csv"), ["model", "layer", "energy"], curves_rows(curves))
    fig, ax = pyplot().subplots(figsize=(6, 4))
    plot_curves(
        ax, curves, r"layer $\ell$", kind + r" $E(H^{(\ell)})$", f"{data.name}, at initialisation"
    )
    save(fig, stem.with_suffix(".png"))


def cmd_gradients(args, data, configs):
    curves = {}
    for config in configs:
        model = build(config, data, args.seed)
        graph = model_graph(config, data)

        def loss_fn(out):
            return F.cross_entropy(out[data.train_mask], data.labels[data.train_mask])

        norms = analysis.layer_gradient_norms(model, graph, data.feat, loss_fn, include_input=True)
        curves[label(config)] = (list(range(len(norms))), norms)
    stem = args.out / f"gradients_{data.name}"
    write_csv(stem.with_suffix(".csv"), ["model", "layer", "grad_norm"], curves_rows(curves))
    fig, ax = pyplot().subplots(figsize=(6, 4))
    plot_curves(
        ax,
        curves,
        r"layer $\ell$",
        r"$\|\partial\,\mathrm{loss} / \partial H^{(\ell)}\|_F$",
        f"{data.name}, cross-entropy, at initialisation",
    )
    save(fig, stem.with_suffix(".png"))


def sensitivity_curves(configs, data, seed, num_targets, max_distance=None, targets=None):
    curves = {}
    for config in configs:
        model = build(config, data, seed)
        graph = model_graph(config, data)
        curve = analysis.sensitivity_by_distance(
            model,
            graph,
            data.feat,
            targets,
            max_distance,
            distance_graph=data.graph,
            num_targets=num_targets,
            seed=seed,
        )
        curves[label(config)] = (list(curve), list(curve.values()))
    return curves


def cmd_sensitivity(args, data, configs):
    curves = sensitivity_curves(configs, data, args.seed, args.targets, args.max_distance)
    stem = args.out / f"sensitivity_{data.name}"
    write_csv(
        stem.with_suffix(".csv"), ["model", "distance", "mean_sensitivity"], curves_rows(curves)
    )
    fig, ax = pyplot().subplots(figsize=(6, 4))
    layers = configs[0].num_layers
    plot_curves(
        ax,
        curves,
        "hop distance d(u, v)",
        SENSITIVITY_LABEL,
        f"{data.name}, L = {layers} layers, at initialisation",
    )
    save(fig, stem.with_suffix(".png"))


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
        moduli = torch.linalg.eigvals(jac).abs().numpy()
        singular = torch.linalg.svdvals(jac).numpy()
        return {"eig_modulus": np.sort(moduli)[::-1], "singular_value": singular}, None
    singular = analysis.top_singular_values(lay, call.graph, call.feat, k, **common).numpy()
    moduli = analysis.top_eigenvalue_moduli(lay, call.graph, call.feat, k, **common).numpy()
    grid, density = analysis.spectral_density(lay, call.graph, call.feat, **common)
    return {"eig_modulus": moduli, "singular_value": singular}, (grid.numpy(), density.numpy())


def cmd_jacobian(args, data, configs):
    rows, spectra, densities, top = [], {}, {}, {}
    for config in configs:
        values, density = layer_spectrum(
            config, data, args.seed, args.layer, args.max_dense, args.k
        )
        name = label(config)
        spectra[name], top[name] = values["eig_modulus"], float(values["singular_value"][0])
        for kind, array in values.items():
            rows += [(name, kind, i, float(v)) for i, v in enumerate(array)]
        if density is not None:
            densities[name] = density
            rows += [(name, "sv_density", float(s), float(p)) for s, p in zip(*density)]
    stem = args.out / f"jacobian_{data.name}"
    write_csv(stem.with_suffix(".csv"), ["model", "kind", "index_or_sigma", "value"], rows)
    plt = pyplot()
    title = f"{data.name}, layer {args.layer}, at initialisation"
    if not densities:
        fig, ax = plt.subplots(figsize=(6, 4))
        modulus_histogram(ax, spectra, title)
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, (grid, density) in densities.items():
            ax.plot(grid, density, label=f"{name} (σ₁ = {top[name]:.3g})")
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1, label="σ = 1")
        ax.set_xlabel("singular value σ of the layer Jacobian")
        ax.set_ylabel("density (stochastic Lanczos quadrature)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    save(fig, stem.with_suffix(".png"))


# --- the paper's figures -----------------------------------------------------------------


def fig_jacobian_linear(out, seed, nodes=64, dim=16):
    """(a) H W, (b) Â H W, (c) relu(Â H W) on a random graph: the Jacobian spectra."""
    from dgl.nn import GraphConv

    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(0, nodes, (3 * nodes,), generator=generator)
    dst = torch.randint(0, nodes, (3 * nodes,), generator=generator)
    bare = dgl.to_bidirected(dgl.remove_self_loop(dgl.graph((src, dst), num_nodes=nodes)))
    graph = dgl.add_self_loop(bare)
    torch.manual_seed(seed)
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

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharex=True)
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
    write_csv(out / "jacobian_linear_conv.csv", ["layer", "eig_modulus"], rows)
    return save(fig, out / "jacobian_linear_conv.png")


def fig_jacobian_models(out, seed, pairs, stem, title, nodes=64, dim=16):
    """Eigenvalue moduli of the first layer's Jacobian, plain vs SSM, one panel per pair."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(0, nodes, (3 * nodes,), generator=generator)
    dst = torch.randint(0, nodes, (3 * nodes,), generator=generator)
    bare = dgl.to_bidirected(dgl.remove_self_loop(dgl.graph((src, dst), num_nodes=nodes)))
    data = Data(
        "random",
        bare,
        torch.randn(nodes, dim, generator=generator),
        torch.zeros(nodes, dtype=torch.long),
        torch.ones(nodes, dtype=torch.bool),
    )
    args = argparse.Namespace(activation="relu", state_scale=1.0, input_scale=0.1)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(6 * len(pairs), 4), squeeze=False)
    rows = []
    for ax, names in zip(axes[0], pairs):
        spectra = {}
        for name in names:
            config = model_config(name, 4, dim, args)
            values, _ = layer_spectrum(config, data, seed, 1, 4096, 10)
            shown = display_name(name) + (" (Λ = I, B = 0.1·I)" if dgl_ssm.is_ssm(name) else "")
            spectra[shown] = values["eig_modulus"]
            rows += [(shown, float(m)) for m in values["eig_modulus"]]
        top = max(1.3, max(float(v.max()) for v in spectra.values()) * 1.05)
        modulus_histogram(
            ax, spectra, " vs ".join(display_name(n) for n in names), np.linspace(0.0, top, 66)
        )
    fig.suptitle(
        f"{title} ({nodes}-node random graph, d = {dim}, first layer at init)", fontsize=11
    )
    write_csv(out / f"{stem}.csv", ["model", "eig_modulus"], rows)
    return save(fig, out / f"{stem}.png")


def energy_configs(backbone, layers, hidden, args):
    configs = [model_config(backbone, layers, hidden, args)]
    configs += [model_config(f"{backbone}_ssm", layers, hidden, args, m) for m in STATE_SCALES]
    return configs


def fig_energy(out, data, backbones, seed, layers=64, hidden=64):
    args = argparse.Namespace(activation="relu", state_scale=None, input_scale=None)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(backbones), figsize=(6.5 * len(backbones), 4.5), squeeze=False)
    rows = []
    for ax, backbone in zip(axes[0], backbones):
        configs = energy_configs(backbone, layers, hidden, args)
        curves = energy_curves(configs, data, seed, dtype=torch.float64)
        rows += [(backbone, *row) for row in curves_rows(curves)]
        plot_curves(
            ax,
            curves,
            r"layer $\ell$",
            r"Dirichlet energy $E(H^{(\ell)})$",
            f"{display_name(backbone)} on Cora: {layers} layers, hidden {hidden}, "
            "at init (float64)",
        )
    stem = "energy_cora_" + "_".join(backbones)
    write_csv(out / f"{stem}.csv", ["backbone", "model", "layer", "energy"], rows)
    return save(fig, out / f"{stem}.png")


def fig_accuracy(out, data_dir, cache_dir, seed, settings):
    from .datasets import get_dataset
    from .train import train

    data = get_dataset("cora", data_dir=data_dir, cache_dir=cache_dir)
    rows, curves = [], {}
    for name in ("gcn", "gcn_ssm"):
        xs, ys = [], []
        for depth in settings["depths"]:
            config = RunConfig(
                model=ModelConfig(name=name, hidden=64, num_layers=depth, dropout=0.5),
                data=DataConfig(name="cora", data_dir=data_dir, cache_dir=cache_dir),
                optim=OptimConfig(
                    lr=0.01,
                    weight_decay=5e-4,
                    epochs=settings["epochs"],
                    patience=settings["patience"],
                ),
                seed=seed,
                device="cpu",
            )
            start = time.perf_counter()
            result = train(config, data=data)
            accuracy = result.test if result.test is not None else float("nan")
            print(
                f"  {display_name(name):8s} depth {depth:3d}: test accuracy {accuracy:.3f} "
                f"({result.status}, {time.perf_counter() - start:.0f} s)"
            )
            xs.append(depth)
            ys.append(accuracy)
            rows.append((name, depth, accuracy, result.val, result.best_epoch, result.status))
        curves[display_name(name) + (" (Λ = I, B = 0.1·I)" if name == "gcn_ssm" else "")] = (xs, ys)
    write_csv(
        out / "accuracy_vs_depth_cora.csv",
        ["model", "layers", "test_accuracy", "val_accuracy", "best_epoch", "status"],
        rows,
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_curves(
        ax,
        curves,
        "depth (number of layers)",
        "test accuracy",
        f"Cora, hidden 64, dropout 0.5, {settings['epochs']} epochs"
        + (f" (patience {settings['patience']})" if settings["patience"] else ""),
        logy=False,
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(settings["depths"]), [str(d) for d in settings["depths"]])
    ax.set_ylim(0, 1)
    return save(fig, out / "accuracy_vs_depth_cora.png")


def fig_sensitivity_ring(out, seed, size, hidden=32):
    layers = size // 2
    args = argparse.Namespace(
        activation="relu",
        state_scale=None,
        input_scale=None,
        ring_size=size,
        seed=seed,
        feat_dim=16,
    )
    data = load_data("ring", args)
    configs = [
        model_config(n, layers, hidden, args) for n in ("gcn", "kgcn", "gcn_ssm", "kgcn_ssm")
    ]
    curves = sensitivity_curves(configs, data, seed, num_targets=4, targets=[0, size // 4])
    write_csv(
        out / "sensitivity_ring.csv", ["model", "distance", "mean_sensitivity"], curves_rows(curves)
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_curves(
        ax,
        curves,
        "hop distance d(u, v) on the ring",
        SENSITIVITY_LABEL,
        f"Ring of {size} nodes, L = {layers} layers (k-hop: K = {layers}), at init\n"
        f"mean over targets v ∈ {{0, {size // 4}}} and all u at each distance",
    )
    return save(fig, out / "sensitivity_ring.png")


def cmd_figures(args):
    settings = QUICK if args.quick else FULL
    out, seed = args.out, args.seed
    steps = [
        (
            "Jacobian spectra: linear, linear conv, nonlinear conv",
            lambda: fig_jacobian_linear(out, seed),
        ),
        (
            "Jacobian spectra: GCN vs GCN-SSM",
            lambda: fig_jacobian_models(
                out, seed, [("gcn", "gcn_ssm")], "jacobian_gcn_vs_gcn_ssm", "Layer Jacobian spectra"
            ),
        ),
        (
            "Jacobian spectra: GIN and GatedGCN",
            lambda: fig_jacobian_models(
                out,
                seed,
                [("gin", "gin_ssm"), ("gatedgcn", "gatedgcn_ssm")],
                "jacobian_gin_gatedgcn",
                "Layer Jacobian spectra",
            ),
        ),
        (
            "Sensitivity vs distance on a ring",
            lambda: fig_sensitivity_ring(out, seed, settings["ring"]),
        ),
    ]
    cora = None

    def cora_data():
        nonlocal cora
        if cora is None:
            cora = load_data("cora", args)
        return cora

    steps += [
        ("Dirichlet energy on Cora: GCN", lambda: fig_energy(out, cora_data(), ["gcn"], seed)),
        (
            "Dirichlet energy on Cora: GIN and GatedGCN",
            lambda: fig_energy(out, cora_data(), ["gin", "gatedgcn"], seed),
        ),
        (
            "Accuracy vs depth on Cora (training)",
            lambda: fig_accuracy(out, args.data_dir, args.cache_dir, seed, settings),
        ),
    ]
    total = time.perf_counter()
    for title, step in steps:
        start = time.perf_counter()
        print(f"{title} …", flush=True)
        step()
        print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    print(f"figures: {time.perf_counter() - total:.0f} s in all")


# --- the command line --------------------------------------------------------------------


def build_parser(prog="dgl-ssm-analyze"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]),
    )
    io = argparse.ArgumentParser(add_help=False)
    io.add_argument(
        "--out", type=Path, default=Path(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})"
    )
    io.add_argument("--seed", type=int, default=0, help="seed of weights, features, targets")
    io.add_argument("--data-dir", help="raw Cora files (default $DGL_SSM_DATA)")
    io.add_argument("--cache-dir", help="processed-data cache (default $DGL_SSM_CACHE)")
    io.add_argument(
        "--threads",
        type=int,
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
    setup.add_argument("--layers", type=int, help="message-passing layers (default: see command)")
    setup.add_argument("--hidden", type=int, default=64, help="state width d (default 64)")
    setup.add_argument("--activation", default="relu", help="σ (default relu)")
    setup.add_argument("--state-scale", type=float, help="SSM models: m, eigenvalue modulus of Λ")
    setup.add_argument("--input-scale", type=float, help="SSM models: β, the scale of B")
    setup.add_argument("--dataset", choices=DATASETS, default="cora")
    setup.add_argument("--ring-size", type=int, default=16, help="nodes of the ring (default 16)")
    setup.add_argument("--num-nodes", type=int, default=200, help="random graph (default 200)")
    setup.add_argument("--num-edges", type=int, default=600, help="random graph (default 600)")
    setup.add_argument(
        "--feat-dim",
        type=int,
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
    jac.add_argument("--layer", type=int, default=1, help="which layer, from 1 (default 1)")
    jac.add_argument("--k", type=int, default=10, help="top values when matrix-free (default 10)")
    jac.add_argument(
        "--max-dense",
        type=int,
        default=analysis.DEFAULT_MAX_DIM,
        help="largest n·d for the dense Jacobian (default %(default)s)",
    )
    sens = commands.add_parser(
        "sensitivity",
        parents=[io, setup],
        help="mean ‖∂h_v⁽ᴸ⁾/∂x_u‖ vs hop distance (default layers: ring size / 2, else 8)",
    )
    sens.add_argument("--targets", type=int, default=16, help="target nodes v (default 16)")
    sens.add_argument("--max-distance", type=int, help="largest distance shown")
    figures = commands.add_parser(
        "figures", parents=[io], help=FIGURES_HELP, description=FIGURES_HELP
    )
    figures.add_argument("--quick", action="store_true", help="a few depths and epochs")
    return parser


DEFAULT_LAYERS = {"energy": 64, "gradients": 64, "jacobian": 2}


def main(argv=None, prog="dgl-ssm-analyze"):
    args = build_parser(prog).parse_args(argv)
    try:
        if args.threads < 1:
            raise ValueError("--threads must be at least 1.")
        with threads(args.threads):
            run(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, DGLError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


def run(args):
    make_folder(args.out)  # before any work: a bad --out is found now, not at the end
    if args.command == "figures":
        cmd_figures(args)
        return
    data = load_data(args.dataset, args)
    if args.layers is None:
        default = args.ring_size // 2 if args.dataset == "ring" else 8
        args.layers = DEFAULT_LAYERS.get(args.command, default)
    if args.layers < 1 or args.hidden < 1:
        raise ValueError("--layers and --hidden must be positive.")
    configs = [model_config(name, args.layers, args.hidden, args) for name in args.model]
    for config in configs:
        config.model_kwargs()  # unknown names fail here, listing the valid ones
    commands = {
        "energy": cmd_energy,
        "gradients": cmd_gradients,
        "jacobian": cmd_jacobian,
        "sensitivity": cmd_sensitivity,
    }
    commands[args.command](args, data, configs)


@contextmanager
def threads(count):
    """Run with ``count`` torch (and, with threadpoolctl, BLAS) threads, then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = nullcontext()
    else:
        limits = threadpool_limits(count)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(previous)


if __name__ == "__main__":
    sys.exit(main())
