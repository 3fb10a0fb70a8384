"""Training dynamics while a model trains: per-layer gradient norms, Dirichlet energies and the
top Jacobian singular values of chosen layers, every few epochs.

The gradient norms and energies come from the training step itself: forward hooks keep each
layer's input and output during the step's forward pass, and after ``loss.backward()`` the
norms of ‖∂loss/∂H⁽ℓ⁾‖ are read from them (the same quantity as
:func:`dgl_ssm.analysis.layer_gradient_norms`, for the training loss) and the energies
computed from them (:func:`dgl_ssm.analysis.dirichlet_energy`). No extra forward or backward
pass is run. The singular values (:func:`dgl_ssm.analysis.top_singular_values`, matrix-free
ARPACK) cost seconds per layer on Cora, more than an epoch; by default they run in a helper
process on the layer as it was at that step, while training goes on, and the entries are
completed when they arrive; while the helper is still busy with earlier layers, an entry
gets no singular values (``"spectra": "skipped"``), so the helper sets its own pace and
training never waits for it (``spectra="inline"`` computes them in the step instead).

Entries go into the run's history (``{"epoch", "grad_norm": [L], "energy": [L+1],
"singular_values": {"<layer>": [k]}}``) and, with ``tensorboard=DIR``, to TensorBoard
(``torch.utils.tensorboard``) as ``grad_norm/layer_<ℓ>``, ``energy/layer_<ℓ>`` and
``singular_value/layer_<ℓ>/<i>``, with the training loss and validation metric.
"""

import copy
import math
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context

import torch

from dgl_ssm.analysis import LayerCall, dirichlet_energy, one_hop_graph, top_singular_values

SPECTRA = ("background", "inline", "off")


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
        Where the singular values are computed.
    spectrum_options : dict, optional
        Options of :func:`~dgl_ssm.analysis.top_singular_values` (default ``tol=1e-3``).
    """

    def __init__(self, every, layers=None, k=3, tensorboard=None, spectra="background",
                 spectrum_options=None):  # fmt: skip
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"--monitor takes a positive number of epochs, got {every!r}.")
        if spectra not in SPECTRA:
            raise ValueError(f"Unknown spectra mode {spectra!r}. Valid: {', '.join(SPECTRA)}.")
        self.every, self.layers, self.k, self.spectra = every, layers, k, spectra
        self.spectrum_options = {"tol": 1e-3, **(spectrum_options or {})}
        self.entries, self._pending, self._pool = [], [], None
        self._writer = None
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

    def due(self, epoch):
        return epoch % self.every == 0

    @contextmanager
    def watching(self, model, epoch):
        """Keep every layer's call and output during one training step (forward and backward
        inside the block), then record the entry for ``epoch``."""
        calls, outputs, model_input = [], [], []

        def keep_graph(_module, args, kwargs):
            model_input.append(args[0] if args else kwargs["graph"])

        def keep_call(_module, args, kwargs):
            kwargs = dict(kwargs)
            graph = args[0] if args else kwargs.pop("graph")
            state = args[1] if len(args) > 1 else kwargs.pop("feat")
            edges = args[2] if len(args) > 2 else kwargs.pop("edge_feat", None)
            calls.append(LayerCall(graph, state, edges, kwargs))

        def keep_output(_module, _args, output):
            state = output[0] if isinstance(output, tuple) else output
            if state.requires_grad:
                state.retain_grad()
            outputs.append(state)

        handles = [model.register_forward_pre_hook(keep_graph, with_kwargs=True)]
        for layer in model.layers:
            handles.append(layer.register_forward_pre_hook(keep_call, with_kwargs=True))
            handles.append(layer.register_forward_hook(keep_output))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        if len(calls) != len(model.layers):  # checkpointed segments re-run their layers
            calls, outputs = calls[: len(model.layers)], outputs[: len(model.layers)]
        self._record(model, epoch, model_input[0], calls, outputs)

    def _record(self, model, epoch, graph, calls, outputs):
        energy_graph = one_hop_graph(graph)  # k-hop models: the graph before rewiring
        states = [calls[0].feat, *outputs]
        entry = {
            "epoch": epoch,
            "grad_norm": [_grad_norm(state) for state in outputs],
            "energy": [dirichlet_energy(energy_graph, state) for state in states],
            "singular_values": {},
        }
        self.entries.append(entry)
        self._scalars(epoch, "grad_norm", entry["grad_norm"], first=1)
        self._scalars(epoch, "energy", entry["energy"], first=0)
        if self.spectra == "off":
            return
        self._collect(wait=False)
        if self.spectra == "background" and self._pending:
            entry["spectra"] = "skipped"
            return
        for index in self.chosen_layers(len(model.layers)):
            call = calls[index]
            job = (
                copy.deepcopy(model.layers[index]).cpu(),
                call.graph.cpu(),
                call.feat.detach().cpu(),
                None if call.edge_feat is None else call.edge_feat.detach().cpu(),
                {key: _detached(value) for key, value in call.kwargs.items()},
                self.k,
                self.spectrum_options,
            )
            if self.spectra == "inline":
                self._store(entry, index, _singular_values(pickle.dumps(job)))
            else:
                # Plain pickle bytes: torch's multiprocessing reductions would share tensors
                # through file descriptors, which fails when the sender moves on.
                future = self._executor().submit(_singular_values, pickle.dumps(job))
                self._pending.append((entry, index, future))
        self._collect(wait=False)

    def log_epoch(self, epoch, loss, val):
        """The training loss and validation metric, for TensorBoard."""
        if self._writer is not None:
            self._writer.add_scalar("train/loss", loss, epoch)
            self._writer.add_scalar("val/metric", val, epoch)

    def close(self):
        """Wait for the singular values still being computed; flush TensorBoard."""
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
                    f"singular_value/layer_{index}/{rank + 1}", value, entry["epoch"]
                )

    def _scalars(self, epoch, name, values, first):
        if self._writer is not None:
            for offset, value in enumerate(values):
                if math.isfinite(value):
                    self._writer.add_scalar(f"{name}/layer_{first + offset}", value, epoch)


def _grad_norm(state):
    grad = state.grad
    return 0.0 if grad is None else float(grad.detach().double().norm())


def _detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, list):
        return [_detached(v) for v in value]
    return value


def _one_thread():
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def _singular_values(job):
    layer, graph, feat, edge_feat, kwargs, k, options = pickle.loads(job)
    values = top_singular_values(
        layer, graph, feat, k=k, edge_feat=edge_feat, layer_kwargs=kwargs, **options
    )
    return [float(v) for v in values]
