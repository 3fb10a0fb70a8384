"""Training dynamics while a model trains: per-layer gradient norms, Dirichlet energies and the
top Jacobian singular values of chosen layers, every few epochs.

The gradient norms and energies come from the training step itself, in train mode (with
its dropout): forward hooks compute each state's energy
(:func:`dgl_ssm.analysis.dirichlet_energy`) and tensor hooks read ‖∂loss/∂H⁽ℓ⁾‖ during the
backward pass (what :func:`dgl_ssm.analysis.layer_gradient_norms` computes, for the
training loss, with ``eval_mode=False``). No extra forward or backward pass is run.

The singular values (:func:`dgl_ssm.analysis.top_singular_values`, matrix-free ARPACK) are
those of the layer in eval mode at the state the step gave it. They cost seconds per layer
on Cora, more than an epoch; by default they run in a helper
process on the layer as it was at that step, while training goes on, and the entries are
completed when they arrive; while the helper is still busy with earlier layers, an entry
gets no singular values (``"spectra": "skipped"``), so the helper sets its own pace and
training never waits for it (``spectra="inline"`` computes them in the step instead).

Entries go into the run's history (``{"epoch", "grad_norm": [L], "energy": [L+1],
"singular_values": {"<i>": [k]}}``): ``grad_norm[ℓ-1]`` and ``energy[ℓ]`` belong to the
state H⁽ℓ⁾ (H⁽⁰⁾ is the encoder output), and layer ``i`` (0-based, as ``--monitor-layers``
counts) maps H⁽ⁱ⁾ to H⁽ⁱ⁺¹⁾. With ``tensorboard=DIR`` they also go to TensorBoard
(``torch.utils.tensorboard``) as ``grad_norm/H<ℓ>``, ``energy/H<ℓ>`` and
``singular_value/layer<i>/<rank>``, with the training loss and validation metric.
"""

import copy
import math
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from functools import partial
from multiprocessing import get_context

import torch

from dgl_ssm.analysis import LayerCall, dirichlet_energy, one_hop_graph, top_singular_values
from dgl_ssm.analysis._common import call_parts, hop_field_of, node_state
from dgl_ssm.checks import check_choice

from .console import escape_unencodable
from .orphans import on_parent_exit
from .threads import blas_limits, set_threads

SPECTRA = ("background", "inline", "off")
_LIMITS = None  # the helper's thread limits, kept alive


class TrainingMonitor:
    """Records training dynamics every ``every`` epochs (see the module docstring).

    Parameters
    ----------
    every : int
        Record at epochs 0, every, 2·every, …
    layers : list of int, optional
        Layers (0-based) whose top-``k`` Jacobian singular values are recorded; default the
        first, the middle and the last.
    k : int
        How many singular values per layer.
    tensorboard : str, optional
        A TensorBoard log directory.
    spectra : {"background", "inline", "off"}
        Where the singular values are computed: in a helper process that runs only on CPU
        time training leaves idle (an epoch whose turn comes while it is busy records
        ``"skipped"``: on a CPU whose cores training keeps busy, most do), in the training
        step itself (every recorded epoch, at its cost), or not at all.
    spectrum_options : dict, optional
        Options of :func:`~dgl_ssm.analysis.top_singular_values` (default ``tol=1e-3``).
    """

    def __init__(self, every, layers=None, k=3, tensorboard=None, spectra="background",
                 spectrum_options=None):  # fmt: skip
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"--monitor takes a positive number of epochs, got {every!r}.")
        check_choice("spectra mode", spectra, SPECTRA)
        self.every, self.layers, self.k, self.spectra = every, layers, k, spectra
        self.spectrum_options = {"tol": 1e-3, **(spectrum_options or {})}
        self.entries, self._pending, self._pool = [], [], None
        self._writer, self._closed = None, False
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self._writer = SummaryWriter(log_dir=str(tensorboard))

    def chosen_layers(self, num_layers):
        if self.layers is None:
            return sorted({0, num_layers // 2, num_layers - 1})
        bad = [i for i in self.layers if not 0 <= i < num_layers]
        if bad:
            raise ValueError(f"--monitor-layers {bad}: the model has layers 0..{num_layers - 1}.")
        return sorted(set(self.layers))

    @property
    def closed(self):
        return self._closed

    def due(self, epoch):
        return epoch % self.every == 0

    @contextmanager
    def watching(self, model, epoch):
        """Record the entry for ``epoch`` from the training step (forward and backward)
        run inside the block.

        Only numbers are kept: each state's energy is taken in its forward hook and its
        gradient norm in a tensor hook during the backward pass, so activation checkpointing
        still frees the states (its recomputation, which re-runs the layers during the
        backward pass, is not recorded again); the inputs of the layers whose singular values
        are wanted are the only tensors held.
        """
        if self._closed:
            raise RuntimeError("This TrainingMonitor is closed: it records one run.")
        layers = list(model.layers)
        chosen = set(self.chosen_layers(len(layers))) if self.spectra != "off" else set()
        entry = {"epoch": epoch, "grad_norm": [0.0] * len(layers),
                 "energy": [math.nan] * (len(layers) + 1), "singular_values": {}}  # fmt: skip
        calls, seen, graphs = {}, set(), []
        hop_field = hop_field_of(model)

        def keep_graph(_module, args, kwargs):
            if not graphs:  # k-hop models: energies on the graph before rewiring
                graphs.append(one_hop_graph(args[0] if args else kwargs["graph"], hop_field))

        def before(index):
            def hook(_module, args, kwargs):
                if index in seen:
                    return
                graph, state, edges, kwargs = call_parts(args, kwargs)
                if index == 0:
                    entry["energy"][0] = dirichlet_energy(graphs[0], state, as_tensor=True)
                if index in chosen:  # a copy of the history the model goes on appending to
                    kept = {k: list(v) if isinstance(v, list) else v for k, v in kwargs.items()}
                    calls[index] = LayerCall(graph, state.detach(), edges, kept)

            return hook

        def after(index):
            def hook(_module, _args, output):
                if index in seen:
                    return
                seen.add(index)
                state = node_state(output)
                entry["energy"][index + 1] = dirichlet_energy(graphs[0], state, as_tensor=True)
                if state.requires_grad:
                    state.register_hook(partial(_keep_norm, entry["grad_norm"], index))

            return hook

        handles = [model.register_forward_pre_hook(keep_graph, with_kwargs=True)]
        for index, layer in enumerate(layers):
            handles.append(layer.register_forward_pre_hook(before(index), with_kwargs=True))
            handles.append(layer.register_forward_hook(after(index)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        # Read once the step is done: in the hooks, each number would wait for a GPU.
        entry["energy"], entry["grad_norm"] = _as_floats(entry["energy"] + entry["grad_norm"],
                                                         split=len(layers) + 1)  # fmt: skip
        self.entries.append(entry)
        self._scalars(epoch, "grad_norm", entry["grad_norm"], first=1)
        self._scalars(epoch, "energy", entry["energy"], first=0)
        if chosen:
            self._spectra(model, entry, calls)

    def _spectra(self, model, entry, calls):
        self._collect(wait=False)
        if self.spectra == "background" and self._pending:
            entry["spectra"] = "skipped"  # the helper is still busy: it sets the pace
            return
        for index, call in sorted(calls.items()):
            try:
                job = pickle.dumps((
                    copy.deepcopy(model.layers[index]).cpu(), _graph_on_cpu(call.graph),
                    call.feat.cpu(),
                    None if call.edge_feat is None else call.edge_feat.detach().cpu(),
                    {key: _detached(value) for key, value in call.kwargs.items()},
                    self.k, self.spectrum_options,
                ))  # fmt: skip
                # Plain pickle bytes: torch's multiprocessing reductions would share tensors
                # through file descriptors, which fails once the sender has moved on.
                if self.spectra == "inline":
                    self._store(entry, index, _singular_values(job))
                else:
                    self._pending.append(
                        (entry, index, self._executor().submit(_singular_values, job))
                    )
            except Exception as error:  # the run goes on; the entry says why it has none
                entry["spectra"] = f"failed: {type(error).__name__}: {error}"
                if isinstance(error, BrokenProcessPool):
                    self._pool = None  # a new helper next time
                return

    def log_epoch(self, epoch, loss, val):
        """The training loss and validation metric, for TensorBoard."""
        if self._writer is not None:
            self._writer.add_scalar("train/loss", loss, epoch)
            self._writer.add_scalar("val/metric", val, epoch)

    def close(self):
        """Wait for the singular values still being computed; flush TensorBoard. The
        monitor records nothing more afterwards."""
        self._closed = True
        self._collect(wait=True)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._writer is not None:
            self._writer.close()
        return self.entries

    def _executor(self):
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"),
                                             initializer=_one_thread)  # fmt: skip
        return self._pool

    def _collect(self, wait):
        still = []
        for entry, index, future in self._pending:
            if wait or future.done():
                try:
                    self._store(entry, index, future.result())
                except Exception as error:  # the run goes on; the entry says why it has none
                    entry["spectra"] = f"failed: {type(error).__name__}: {error}"
            else:
                still.append((entry, index, future))
        self._pending = still

    def _store(self, entry, index, values):
        entry["singular_values"][str(index)] = values
        if self._writer is not None:
            for rank, value in enumerate(values):
                self._writer.add_scalar(
                    f"singular_value/layer{index}/{rank + 1}", value, entry["epoch"]
                )

    def _scalars(self, epoch, name, values, first):
        if self._writer is not None:  # tagged by state: grad_norm/H3 is ‖∂loss/∂H⁽³⁾‖
            for offset, value in enumerate(values):
                if math.isfinite(value):
                    self._writer.add_scalar(f"{name}/H{first + offset}", value, epoch)


def _keep_norm(norms, index, grad):
    norms[index] = grad.detach().double().norm()


def _as_floats(values, split):
    """Floats of ``values`` (numbers and 0-d tensors, the tensors read from their device in
    one copy), as two lists cut at ``split``."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    read = iter(torch.stack(tensors).cpu().tolist() if tensors else [])
    floats = [next(read) if isinstance(v, torch.Tensor) else float(v) for v in values]
    return floats[:split], floats[split:]


def _graph_on_cpu(graph):
    """A layer's graph on the CPU: a list of hop graphs for a cumulative k-hop layer."""
    return [g.cpu() for g in graph] if isinstance(graph, list) else graph.cpu()


def _detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, list):
        return [_detached(v) for v in value]
    return value


def _one_thread():
    # The helper shares the machine with training: it runs only on CPU time training leaves
    # idle (SCHED_IDLE; elsewhere the lowest priority), since a helper taking a core from
    # training's threads made a 64-layer epoch on 2 cores 3× slower. One thread for torch
    # and for the BLAS under scipy's ARPACK (its environment variables are read at import).
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        with suppress(AttributeError, OSError):  # (no os.nice on Windows: normal priority)
            os.nice(19)
    set_threads(1)
    escape_unencodable()
    # It waits on a queue it holds itself: with the run killed outright, it would wait forever.
    on_parent_exit(lambda: os._exit(1))
    global _LIMITS
    _LIMITS = blas_limits(1)


def _singular_values(job):
    layer, graph, feat, edge_feat, kwargs, k, options = pickle.loads(job)
    values = top_singular_values(
        layer, graph, feat, k=k, edge_feat=edge_feat, layer_kwargs=kwargs, **options
    )
    return [float(v) for v in values]
