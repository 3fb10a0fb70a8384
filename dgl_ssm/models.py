"""Named deep GNNs: encoder → L wrapped convs → task head, each with a plain twin.

All models are one class, :class:`DeepGNN`; a named model only fixes the backbone, the update
rule (plain or SSM) and, for kGNNs, the hop mode. A plain model and its SSM twin therefore
have the same trainable parameters: Λ and B are buffers.
"""

import inspect
import math
import warnings

import dgl
import torch
import torch.utils.checkpoint
from torch import nn

from .activations import get_activation
from .backbones import BACKBONES
from .checkpointing import run_in_segments, segment_count
from .checks import (
    CheckedInputs,
    check_choice,
    check_count,
    check_edge_features,
    check_edge_weights,
    check_finite,
    check_flag,
    check_graph,
    check_in_degrees,
    check_node_features,
    check_options,
    check_real,
    check_same_device,
    did_you_mean,
    is_int,
    user_stacklevel,
)
from .multihop import HOP_MODES, PAST_MAX_HOP, MultiHopConv, layer_hop_graphs
from .reset import remember_initial_values, reset_submodules, restore_on_reset
from .ssm import PlainUpdate, SSMUpdate, autocasting, finite_scale
from .wrapper import SSMLayer

TASKS = ("node", "graph")
SSM_OPTIONS = ("state", "state_scale", "input", "input_scale", "shared_ssm", "ssm_seed")
# "sum+max+mean" concatenates the three poolings, as the A-DGN / SWAN graph-property models
# whose published diameter numbers the GPP table cites read a graph out.
READOUTS = ("mean", "sum", "max", "sum+max+mean")


class DeepGNN(nn.Module):
    r"""A deep GNN: linear encoder, ``num_layers`` wrapped convs, node or graph head.

    .. math::
        H^{(0)} = X W_{in}, \qquad H^{(\ell+1)} = \mathrm{update}\big(H^{(\ell)},
        F_\ell(G_\ell, H^{(\ell)})\big), \qquad \hat y = \mathrm{head}(H^{(L)})

    Use the named subclasses (:class:`GCN`, :class:`GCNSSM`, :class:`KGCNSSM`, …); this
    class holds what they share.

    Parameters
    ----------
    in_feats, hidden, out_feats : int
        Input feature width (may be None with a ``node_encoder``), state width ``d`` and
        number of outputs.
    num_layers : int
        Number of message-passing layers ``L``.
    update : callable
        ``update(layer_index)`` returns the state update of that layer.
    task : {"node", "graph"}, default "node"
        Per-node outputs, or one output per graph of a (batched) graph after ``readout``.
    readout : {"mean", "sum", "max", "sum+max+mean"}, optional
        Pooling for graph tasks (default ``"mean"``); ``"sum+max+mean"`` concatenates the
        three (``3·hidden`` wide), as the graph-property models of A-DGN and SWAN do.
    dropout : float, default 0
        Dropout on the input features and on each conv's input.
    activation : str or callable, default "relu"
        σ, used by the update and (unless ``head_activation`` is given) by the graph head's MLP.
        A module with weights (``nn.PReLU()``) is one module, shared by every layer and the head.
    head_activation : str, optional
        The graph head's activation, when it should differ from σ: a tanh head saturates on
        unnormalised regression targets (GPP's diameter, 1 … 30+) and stops learning, where
        the A-DGN / SWAN graph-property models read out with LeakyReLU.
    norm : {None, "batch", "layer"}, default None
        Normalisation after each update.
    edge_feats : int, optional
        Width of the input edge features, for backbones that use edge features (GatedGCN;
        the others refuse it).
        Without it (and without ``edge_encoder``) those backbones start from a learned edge
        embedding.
    edge_weight_field : str, optional
        Read one weight an edge from ``graph.edata[edge_weight_field]`` (shape ``(E,)``) and
        pass it to every conv as DGL's ``edge_weight`` (GCN, GIN, SAGE, GAT; what it does is
        the conv's: ``GraphConv`` weights the messages and still normalises by the unweighted
        degrees, as in DGL). Read from the graph, so calibration, the monitor and every
        diagnostic that runs the model on the graph see the weights too. Not for k-hop
        models (their hop graphs have edges of their own).
    node_encoder, edge_encoder : torch.nn.Module, optional
        Replace the linear input encoders: any module mapping the raw node (edge) features
        to width ``hidden``, e.g. OGB's ``AtomEncoder(hidden)`` / ``BondEncoder(hidden)``
        for the integer-coded atoms and bonds of molecules (LRGB's Peptides). The features
        are then passed to it as they are (any dtype, any width); ``in_feats`` and
        ``edge_feats`` are not checked against them. ``edge_encoder`` needs a backbone that
        uses edge features.
    hop_mode : {None, "exact", "cumulative"}, optional
        k-hop aggregation over a graph rewired by :class:`~dgl_ssm.KHopTransform`. Each hop's
        graph has a self loop on every node, as GCN's normalisation of ``A_k + I`` needs; a
        backbone that adds the node's own state itself (GIN's ``(1 + ε) h_v``, SAGE's self
        term) then counts it once more. Default: the class's (``None``, one-hop, for the
        named models; ``"exact"`` for :class:`KGCN` and :class:`KGCNSSM`), when left out.
    max_hop : int, optional
        K, the largest hop the model may read (default ``num_layers``); the layers read hops
        up to ``min(num_layers, max_hop)``, and a graph rewired by a
        :class:`~dgl_ssm.KHopTransform` with a smaller ``k`` than that is refused with a
        ``DGLError``.
    past_max_hop : {"empty", "repeat"}
        What ``"exact"`` layers past K read (``num_layers > max_hop``): ``"empty"`` (default)
        reads hop ℓ of a graph rewired with radius K as the paper does, i.e. no other node
        (self loops only: the layer is a node-wise update); ``"repeat"`` reads hop K again.
        With ``max_hop = num_layers`` (the default) both are the same. The cumulative mode
        always sums hops ``1..min(ℓ, K)``.
    delay : int, optional
        ν ≥ 1 of the cumulative mode's delay (DRew's: with ν = 0, hop ℓ would read a state
        from before the first layer).
    hop_field : str
        The edge field of the rewired graph that holds each edge's hop distance (default
        ``"hop"``; the same as the ``hop_field`` of the :class:`~dgl_ssm.KHopTransform` that
        rewired it); k-hop models only.
    allow_zero_in_degree : bool, default False
        Skip the check for nodes without in-edges (GCN, GAT).
    conv_options : dict, optional
        Extra backbone options, e.g. ``{"heads": 4}`` for GAT (also ``feat_drop``,
        ``attn_drop`` and ``negative_slope``, as in ``dgl.nn.GATConv``),
        ``{"aggregator": "pool"}`` for SAGE, ``{"learn_eps": True}`` for GIN.
    checkpoint : bool or int, default False
        Activation checkpointing while training: the stack is cut into segments (``True``:
        about √L of them; an int: that many, 0 as ``False``) and only each segment's input
        is kept; the rest is recomputed in the backward pass (except the last segment's,
        which the backward pass needs at once; so one segment, e.g. ``True`` with 2 layers or
        fewer, recomputes nothing and keeps everything). Memory falls from O(L) to O(√L)
        layer states for at most one more forward pass of compute; BatchNorm's running
        statistics are still updated once per step. Not available with
        ``hop_mode="cumulative"``.

    Examples
    --------
    A model of one's own is a subclass that names its backbone, with any update per layer
    (here an orthogonal Λ drawn per layer):

    >>> import dgl, torch
    >>> from dgl_ssm import DeepGNN, SSMUpdate
    >>> class OrthogonalGCNSSM(DeepGNN):
    ...     backbone = "gcn"
    >>> draw = torch.Generator().manual_seed(0)
    >>> model = OrthogonalGCNSSM(5, 16, 3, num_layers=4,
    ...                          update=lambda i: SSMUpdate(16, "orthogonal", generator=draw))
    >>> model(dgl.add_self_loop(dgl.rand_graph(10, 30)), torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = None
    default_hop_mode = None
    edge_weight_field = None  # (also for models pickled before the option)

    def __init__(
        self,
        in_feats,
        hidden,
        out_feats,
        num_layers,
        *,
        update,
        task="node",
        readout=None,
        dropout=0.0,
        activation="relu",
        head_activation=None,
        norm=None,
        edge_feats=None,
        edge_weight_field=None,
        node_encoder=None,
        edge_encoder=None,
        hop_mode="default",
        max_hop=None,
        past_max_hop="empty",
        delay=None,
        hop_field="hop",
        allow_zero_in_degree=False,
        conv_options=None,
        checkpoint=False,
    ):
        super().__init__()
        if self.backbone not in BACKBONES:  # DeepGNN and its bases name none: a subclass does
            raise TypeError(
                f"{type(self).__name__} has no backbone {self.backbone!r}: build a named model "
                "(GCNSSM, GINSSM, …, or dgl_ssm.build_model(name, …)), or subclass it with "
                f"backbone = one of {', '.join(BACKBONES)}."
            )
        spec = BACKBONES[self.backbone]
        readout = _checked_head(task, readout, head_activation)
        hop_mode = self.default_hop_mode if hop_mode == "default" else hop_mode
        hidden, out_feats, num_layers = (
            check_count(value, name)
            for name, value in [("hidden", hidden), ("out_feats", out_feats),
                                ("num_layers", num_layers)]
        )  # fmt: skip
        if in_feats is not None or node_encoder is None:  # (a node encoder reads its own width)
            in_feats = check_count(in_feats, "in_feats")
        max_hop, delay = _checked_hops(spec, hop_mode, max_hop, delay, past_max_hop, hop_field)
        check_real(dropout, "dropout", "a number in [0, 1)", lambda p: 0 <= p < 1)
        options = _checked_conv_options(spec, conv_options)
        self.conv_options = options  # (shown by print(model): GAT's heads are in no conv's repr)
        edge_feats = _checked_encoders(spec, edge_feats, node_encoder, edge_encoder)
        self.edge_weight_field = _checked_edge_weight_field(spec, edge_weight_field, hop_mode)
        self.in_feats, self.hidden, self.out_feats = in_feats, hidden, out_feats
        self.num_layers, self.task, self.readout = num_layers, task, readout
        self.hop_mode, self.delay, self.hop_field = hop_mode, delay, hop_field
        self.max_hop = num_layers if max_hop is None else max_hop
        self.past_max_hop = past_max_hop
        self.edge_feats = edge_feats
        self.allow_zero_in_degree = check_flag(allow_zero_in_degree, "allow_zero_in_degree")
        self.segments = segment_count(checkpoint, num_layers)
        if self.segments and hop_mode == "cumulative":
            raise ValueError(
                "checkpoint is not available with hop_mode='cumulative' (its layers read "
                "earlier states). Use hop_mode='exact' or checkpoint=False."
            )
        self._spec = spec
        self._checked_inputs = CheckedInputs()

        self.input_dropout = nn.Dropout(dropout)
        self.custom_node_encoder = node_encoder is not None
        self.encoder = nn.Linear(in_feats, hidden) if node_encoder is None else node_encoder
        self.custom_edge_encoder = edge_encoder is not None
        if spec.uses_edge_feats:
            if edge_encoder is not None:
                self.edge_encoder = edge_encoder
            elif edge_feats is None:  # one learnt edge state for every edge
                self.edge_embedding = nn.Parameter(torch.randn(1, hidden) * 0.1)
            else:
                self.edge_encoder = nn.Linear(edge_feats, hidden)
        self.layers = nn.ModuleList(
            SSMLayer(self._make_conv(i, options), hidden, update(i), norm, dropout)
            for i in range(num_layers)
        )
        self.head = _make_head(task, readout, hidden, out_feats, activation, head_activation)
        for encoder in (node_encoder, edge_encoder):
            if _own_init_unknown(encoder):
                restore_on_reset(encoder)  # (OGB's AtomEncoder: Xavier, set in its __init__)
        remember_initial_values(self)

    def _make_conv(self, layer_index, options):
        if self.hop_mode == "cumulative":
            hops = min(layer_index + 1, self.max_hop)
            convs = [self._spec.make_conv(self.hidden, **options) for _ in range(hops)]
            return MultiHopConv(convs, layer_index, self.delay)
        return self._spec.make_conv(self.hidden, **options)

    @property
    def uses_edge_feats(self):
        """Whether the backbone reads edge features (pass them as ``edge_feat``)."""
        return self._spec.uses_edge_feats

    @property
    def needs_edge_feat(self):
        """Whether every call must pass ``edge_feat``: the model was built with ``edge_feats``
        or an ``edge_encoder`` (else a backbone that reads edge features learns one)."""
        return self.edge_feats is not None or self.custom_edge_encoder

    resets_submodules = True  # (its reset_parameters walks them: see reset_submodules)

    def reset_parameters(self):
        """Reinitialise every trainable parameter as when the model was built; Λ and B stay
        as they are (a calibration fitted them to the old weights: calibrate again after a
        reset). A custom encoder without ``reset_parameters`` of its own gets back its values
        from construction (its own initialisation is not known here)."""
        reset_submodules(self)
        if hasattr(self, "edge_embedding"):
            nn.init.normal_(self.edge_embedding, std=0.1)

    def forward(self, graph, feat, edge_feat=None, **unexpected):
        """Return node outputs ``(N, out_feats)`` or graph outputs ``(B, out_feats)``.

        The inputs are checked (shapes, dtypes, NaN/Inf, nodes without in-edges) the first
        time a (graph, features) pair is seen; calls with the same, unchanged objects (a
        full-batch training loop) skip the checks, so no forward pass waits on the device.
        Edge weights are read from the graph (``edge_weight_field``), not passed here.
        """
        if unexpected:
            _refuse_forward_options(self, unexpected)
        check_graph(graph, type(self).__name__)
        weight = next(self.parameters(), None)  # m.double() after a checked call: check again
        dtype_device = None if weight is None else (weight.dtype, weight.device)
        device = None if weight is None else weight.device
        field = self.edge_weight_field
        edge_weight = graph.edata.get(field) if field is not None else None
        self._checked_inputs.once(
            lambda: self._check_inputs(graph, feat, edge_feat, device),
            graph, feat, edge_feat, dtype_device, edge_weight,
        )  # fmt: skip

        state = self.encoder(self.input_dropout(feat))
        if self.custom_node_encoder:
            _check_encoded(state, "node_encoder", graph.num_nodes(), self.hidden)
        edges = self._encode_edges(graph, edge_feat)
        graphs = self._layer_graphs(graph)
        conv_kwargs = self._conv_kwargs(graph)
        if self.hop_mode == "cumulative":
            history = [state]
            for layer, layer_graph in zip(self.layers, graphs):
                history.append(layer(layer_graph, history[-1], history=history))
            return self._head(graph, history[-1])

        def run_layers(start, end, state, edges):
            return self._run_layers(start, end, graphs, state, edges, conv_kwargs)

        if self.segments and self.training and torch.is_grad_enabled():
            state, edges = run_in_segments(run_layers, self.layers, self.segments, state, edges)
        else:
            state, edges = run_layers(0, self.num_layers, state, edges)
        return self._head(graph, state)

    def _check_inputs(self, graph, feat, edge_feat, device):
        weight = next(self.parameters(), None)
        if (
            weight is not None
            and weight.dtype == torch.float16
            and weight.device.type == "cpu"
            and not autocasting(weight.device)  # autocast computes in its own dtype
        ):
            raise TypeError(
                f"{type(self).__name__} has float16 weights on the CPU, where torch has no "
                "float16 matrix product. Keep the model float32 (model.float()) and, for mixed "
                "precision, run under torch.autocast('cpu', dtype=torch.bfloat16), or move it "
                "to a GPU."
            )
        if self.custom_node_encoder:  # its own input format: only the rows are checked
            check_node_features(graph, feat, in_feats=None, device=device)
        else:
            check_node_features(graph, feat, self.in_feats, self.encoder.weight.dtype, device)
        if edge_feat is not None and not self._spec.uses_edge_feats:
            raise ValueError(
                f"The {self._spec.name} backbone reads no edge features, so edge_feat would be "
                "ignored. Call model(graph, feat), or use a backbone that reads them (gatedgcn)."
            )
        if not self.custom_edge_encoder:
            encoder = getattr(self, "edge_encoder", None)
            dtype = encoder.weight.dtype if isinstance(encoder, nn.Linear) else None
            check_edge_features(graph, edge_feat, self.edge_feats, dtype)
        elif (
            not isinstance(edge_feat, torch.Tensor)
            or edge_feat.dim() == 0
            or edge_feat.shape[0] != graph.num_edges()
        ):
            got = "none" if edge_feat is None else tuple(getattr(edge_feat, "shape", ()))
            raise ValueError(
                f"The model has an edge_encoder, so it needs a tensor with one row of edge "
                f"features per edge ({graph.num_edges()}), got {got}."
            )
        elif torch.is_floating_point(edge_feat):  # as node features meet a custom encoder
            check_same_device(graph, edge_feat, what="Edge features", name="edge_feat")
            check_finite(edge_feat, "Edge features", "edge_feat")
        if self.edge_weight_field is not None:
            dtype = next(self.layers.parameters()).dtype
            check_edge_weights(graph, self.edge_weight_field, dtype)
        if self._spec.needs_in_edges and self.hop_mode is None and not self.allow_zero_in_degree:
            check_in_degrees(graph, self._spec.name)
        if self.task == "graph" and (empty := _empty_graphs(graph)):
            raise dgl.DGLError(
                f"Graph(s) {empty} of the batch of {graph.batch_size} have no nodes: the readout "
                "would pool nothing, and the head would output its bias as their prediction. "
                "Leave empty graphs out of the batch."
            )

    def _run_layers(self, start, end, graphs, state, edges, conv_kwargs):
        for i in range(start, end):
            if edges is None:
                state = self.layers[i](graphs[i], state, **conv_kwargs)
            else:
                state, edges = self.layers[i](graphs[i], state, edges, **conv_kwargs)
        return state, edges

    def _conv_kwargs(self, graph):
        """What every conv reads from the graph besides its edges: the edge weights."""
        if self.edge_weight_field is None:
            return {}
        return {"edge_weight": graph.edata[self.edge_weight_field].reshape(-1)}

    def _encode_edges(self, graph, edge_feat):
        if not self._spec.uses_edge_feats:
            return None
        if edge_feat is None:
            if self.needs_edge_feat:
                raise ValueError(
                    f"The model was built with edge_feats={self.edge_feats}, and no edge "
                    "features came: call it as model(graph, feat, edge_feat) (the diagnostics "
                    "and calibrate take edge_feat= too), or build it without edge_feats."
                )
            return self.edge_embedding.expand(graph.num_edges(), -1)
        edges = self.edge_encoder(edge_feat)
        if self.custom_edge_encoder:
            _check_encoded(edges, "edge_encoder", graph.num_edges(), self.hidden)
        return edges

    def _layer_graphs(self, graph):
        if self.hop_mode is None:
            return [graph] * self.num_layers
        return layer_hop_graphs(
            graph,
            self.num_layers,
            self.max_hop,
            self.hop_mode,
            self.past_max_hop,
            self.hop_field,
        )

    def _head(self, graph, state):
        if self.task == "node":
            return self.head(state)
        with graph.local_scope():
            graph.ndata["_state"] = state
            pooled = [dgl.readout_nodes(graph, "_state", op=op) for op in self.readout.split("+")]
        return self.head(torch.cat(pooled, dim=-1))

    def extra_repr(self):
        hops = "" if self.hop_mode is None else f", hop_mode={self.hop_mode}, K={self.max_hop}"
        return (
            f"backbone={self.backbone}, layers={self.num_layers}, hidden={self.hidden}, "
            f"task={self.task}"
            + (f", readout={self.readout}" if self.task == "graph" else "")
            + hops
            + (f", edge_weight_field={self.edge_weight_field!r}" if self.edge_weight_field else "")
            + (f", conv_options={self.conv_options}" if getattr(self, "conv_options", None) else "")
        )


class PlainGNN(DeepGNN):
    """A plain deep GNN, ``H ← σ(F(G, H))`` (``+ H`` with ``residual=True``).

    Parameters
    ----------
    in_feats, hidden, out_feats, num_layers, **kwargs
        As :class:`DeepGNN` (all but ``update``).
    residual : bool, default False
        Add each layer's input to its output, ``H ← H + σ(F(G, H))``: the skip connection an
        SSM model's ``H Λᵀ`` with Λ = I also has, so the plain twin can be given it too.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GCN
    >>> g = dgl.add_self_loop(dgl.rand_graph(10, 30))
    >>> model = GCN(in_feats=5, hidden=16, out_feats=3, num_layers=8, residual=True)
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    def __init__(self, in_feats, hidden, out_feats, num_layers, *, residual=False, **kwargs):
        ssm_options = sorted(set(kwargs) & set(SSM_OPTIONS))
        if ssm_options:
            raise TypeError(
                f"{type(self).__name__} is a plain model and takes no SSM options "
                f"({', '.join(ssm_options)}); use its SSM twin, e.g. {type(self).__name__}SSM."
            )
        _check_options(self, kwargs, extra=("residual",))
        activation = kwargs.get("activation", "relu")
        super().__init__(
            in_feats,
            hidden,
            out_feats,
            num_layers,
            update=lambda _: PlainUpdate(activation, residual),
            **kwargs,
        )


class SSMGNN(DeepGNN):
    r"""A GNN-SSM: every layer a state-space step with frozen Λ, B (see
    :class:`~dgl_ssm.ssm.SSMUpdate`).

    .. math::
        H^{(\ell+1)} = H^{(\ell)} \Lambda^\top + \sigma\big(F_\ell(G_\ell, H^{(\ell)})\big) B^\top

    Parameters
    ----------
    in_feats, hidden, out_feats, num_layers, **kwargs
        As :class:`DeepGNN` (all but ``update``).
    state, state_scale : str or Tensor, float
        Λ's kind (``"identity"``, ``"orthogonal"``, ``"random"``) and eigenvalue modulus m.
        Default ``m·I`` with m = 1. With ``|m| > 1`` the state grows as ``|m|^L`` through
        the stack (a ``UserWarning`` past 1e3, unless a ``norm`` rescales the state).
    input, input_scale : str or Tensor, float or "auto"
        B's kind and scale β. Default ``0.1·I``. ``"auto"`` scales β with depth:
        :func:`depth_scaled_input_scale` (0.1 up to 64 layers, then ``6.4 / num_layers``),
        which keeps a thousand-layer stack as bounded as a 64-layer one.
    shared_ssm : bool
        One (Λ, B) for every layer (default) or a separately drawn pair per layer. Shared,
        one :class:`~dgl_ssm.ssm.SSMUpdate` sits under every layer, so
        ``torch.func.functional_call`` takes it by one path,
        ``{"layers.0.update.state_matrix": ...}``, with
        ``tie_weights=False``: PyTorch (to 2.x, pytorch/pytorch#164759) leaves a module
        reached by several paths holding the values passed in once the call returns.
    ssm_seed : int
        Seed of the random kinds, so Λ and B do not depend on the global RNG. Default 0.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GCNSSM
    >>> g = dgl.add_self_loop(dgl.rand_graph(10, 30))
    >>> model = GCNSSM(in_feats=5, hidden=16, out_feats=3, num_layers=64)
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    >>> batch = dgl.batch([g, g])  # graph classification: one output per graph
    >>> model = GCNSSM(5, 16, 2, num_layers=8, task="graph", readout="sum")
    >>> model(batch, torch.randn(20, 5)).shape
    torch.Size([2, 2])
    """

    def __init__(
        self,
        in_feats,
        hidden,
        out_feats,
        num_layers,
        *,
        state="identity",
        state_scale=1.0,
        input="identity",
        input_scale=0.1,
        shared_ssm=True,
        ssm_seed=0,
        **kwargs,
    ):
        if "residual" in kwargs:
            raise TypeError(
                f"{type(self).__name__} takes no residual option: its step H Λᵀ + σ(F) Bᵀ "
                "already carries the state (with Λ = I it is a residual path scaled by B). "
                "residual=True belongs to the plain twin (e.g. GCN)."
            )
        _check_options(self, kwargs, SSM_OPTIONS)
        hidden = check_count(hidden, "hidden")  # before Λ and B are drawn
        num_layers = check_count(num_layers, "num_layers")
        if isinstance(input_scale, str):
            if input_scale != "auto":
                raise ValueError(
                    f"input_scale must be a number or 'auto' (β = 0.1 up to 64 layers, then "
                    f"6.4 / num_layers), got {input_scale!r}."
                )
            input_scale = depth_scaled_input_scale(num_layers)
        if not is_int(ssm_seed):
            raise TypeError(f"ssm_seed must be an integer (it seeds Λ and B), got {ssm_seed!r}.")
        generator = torch.Generator().manual_seed(int(ssm_seed))
        activation = kwargs.get("activation", "relu")

        def make_update():
            return SSMUpdate(hidden, state, state_scale, input, input_scale, activation, generator)

        shared = make_update() if check_flag(shared_ssm, "shared_ssm") else None
        if kwargs.get("norm") in (None, "none"):  # (a norm rescales the state every layer)
            _warn_if_the_state_compounds(state, state_scale, num_layers, type(self).__name__)
        # (the scale as SSMUpdate reads it: a number, or a one-element tensor's)
        if isinstance(input, str) and finite_scale(input_scale, "input_scale") == 0:
            warnings.warn(
                f"{type(self).__name__}: input_scale=0 makes B = 0, so no conv adds anything "
                "to the state and the model ignores the graph (encoder, then head). Build it "
                "with input_scale > 0 (default 0.1; dgl_ssm.calibrate rescales the B built).",
                stacklevel=user_stacklevel(),
            )
        super().__init__(
            in_feats,
            hidden,
            out_feats,
            num_layers,
            update=lambda _: shared if shared_ssm else make_update(),
            **kwargs,
        )

    def _load_from_state_dict(self, state_dict, prefix, metadata, strict, missing, unexpected,
                              error_msgs):  # fmt: skip
        # One shared (Λ, B) would silently take the last layer's of a per-layer checkpoint.
        shared = self.layers[0].update
        if all(layer.update is shared for layer in self.layers[1:]):
            for name in ("state_matrix", "input_matrix"):
                keys = [f"{prefix}layers.{i}.update.{name}" for i in range(len(self.layers))]
                values = [state_dict[key] for key in keys if key in state_dict]
                if any(not _same(values[0], value) for value in values[1:]):
                    error_msgs.append(
                        f"{type(self).__name__} shares one (Λ, B) across its layers, but the "
                        f"state dict holds a different {name} per layer (a model built with "
                        "shared_ssm=False, or calibrated per layer): loading would give every "
                        "layer the last one's. Build this model with shared_ssm=False."
                    )
                    break
        super()._load_from_state_dict(
            state_dict, prefix, metadata, strict, missing, unexpected, error_msgs
        )


def _warn_if_the_state_compounds(state, state_scale, num_layers, name):
    """Λ = m·I or m·Q multiplies the state by |m| at every layer, |m|^L through the stack:
    warn when that passes 1e3 (a 256-layer stack at m = 1.5 overflows float32 to NaN)."""
    if not isinstance(state, str) or state not in ("identity", "orthogonal"):
        return
    if abs(state_scale) <= 1:
        return
    growth = num_layers * math.log10(abs(state_scale))
    if growth > 3:
        shown = f"{10**growth:.1e}" if growth < 300 else f"1e{growth:.0f}"
        warnings.warn(
            f"{name}: state_scale={state_scale} multiplies the state by |m|^L = {shown} "
            f"through {num_layers} layers (float32 overflows past 3.4e38). The step is built "
            "for |m| ≤ 1 (default 1); dgl_ssm.calibrate sets m from the measured spectrum, "
            "and a norm (norm='layer') rescales the state every layer.",
            stacklevel=user_stacklevel(),
        )


#: Depth up to which ``input_scale="auto"`` keeps the paper's β = 0.1.
AUTO_INPUT_DEPTH = 64


def depth_scaled_input_scale(num_layers, base=0.1, depth=AUTO_INPUT_DEPTH):
    r"""β for a stack of ``num_layers`` SSM steps: ``base`` up to ``depth`` layers, then
    ``base · depth / num_layers``.

    Each step adds :math:`\beta\,\sigma(F(G, H))` to the state and Λ = I forgets nothing,
    so the state sums L such terms: with a fixed β its norm compounds with depth (GCN-SSM on
    Cora at initialisation, hidden 64: ‖output‖ 11 at 64 layers, 1.0e4 at 256, 4.4e17 at
    1024). Holding :math:`\beta L` at its 64-layer value holds the state where the paper's
    64-layer model has it (‖output‖ 8.4 at 256 layers, 14 at 1024) and keeps the gradient
    norms of the first and last layers within a factor 4 of each other at 1024 layers.

    Examples
    --------
    >>> from dgl_ssm.models import depth_scaled_input_scale
    >>> depth_scaled_input_scale(8), depth_scaled_input_scale(1024)
    (0.1, 0.00625)
    """
    return base * min(1.0, depth / num_layers)


def _checked_head(task, readout, head_activation):
    """The readout (``"mean"`` by default for graphs), once the head's options fit ``task``."""
    check_choice("task", task, TASKS)
    if task == "node" and readout is not None:  # else the model quietly returns per-node
        raise ValueError(
            f"readout={readout!r} pools a graph's nodes into one output (task='graph'); a "
            "node model (task='node', the default) outputs per node and pools nothing. "
            "Pass task='graph' as well, or drop readout."
        )
    if task == "node" and head_activation is not None:
        raise ValueError(
            "head_activation is the graph head's (task='graph'); a node model's head is one "
            "linear layer, with no activation to set. Drop head_activation."
        )
    return check_choice("readout", "mean" if readout is None else readout, READOUTS)


def _empty_graphs(graph):
    """The indices of the graphs of a batch that have no nodes."""
    return (graph.batch_num_nodes() == 0).nonzero().flatten().tolist()


def _own_init_unknown(encoder):
    """Whether ``encoder`` may draw its weights its own way, which no reset can repeat: it
    has no ``reset_parameters``, and is not one of torch's containers (whose children's
    own ``reset_parameters`` are their initialisation)."""
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    return (encoder is not None and not hasattr(encoder, "reset_parameters")
            and not isinstance(encoder, containers))  # fmt: skip


def _checked_hops(spec, hop_mode, max_hop, delay, past_max_hop, hop_field):
    """``(max_hop, delay)`` checked against the hop mode and the backbone."""
    if hop_mode is not None:
        check_choice("hop_mode", hop_mode, HOP_MODES)
    given = {"max_hop": max_hop is not None, "past_max_hop": past_max_hop != "empty",
             "hop_field": hop_field != "hop"}  # fmt: skip
    if hop_mode is None and any(given.values()):
        names = ", ".join(name for name, set_ in given.items() if set_)
        raise ValueError(
            f"{names} {'applies' if ', ' not in names else 'apply'} to k-hop models only, and "
            "this one reads the graph as it is "
            "(hop_mode=None): they would be ignored. Build it with hop_mode='exact' or "
            "'cumulative' (or use kgcn / kgcn_ssm), or drop them."
        )
    if hop_mode is not None and spec.uses_edge_feats:
        raise ValueError(
            f"k-hop rewiring is not available for {spec.name}: its edge features would "
            "have to change from layer to layer. Use it without hop_mode."
        )
    if not isinstance(hop_field, str) or not hop_field:  # else a KeyError at the first call
        raise TypeError(
            f"hop_field must be a non-empty str (the edge field KHopTransform wrote the hop "
            f"distances to, default 'hop'), got {hop_field!r}."
        )
    max_hop = None if max_hop is None else check_count(max_hop, "max_hop")
    delay = None if delay is None else check_count(delay, "delay", least=1)  # DRew: ν ≥ 1
    if delay is not None and hop_mode != "cumulative":  # only DRew's sum reads the past
        raise ValueError(
            f"delay applies to hop_mode='cumulative' (DRew) only; this model's hop_mode is "
            f"{hop_mode!r}. Build it with hop_mode='cumulative', or without delay."
        )
    check_choice("past_max_hop", past_max_hop, PAST_MAX_HOP)
    return max_hop, delay


def _checked_conv_options(spec, conv_options):
    """A copy of ``conv_options``, once each is an option of the backbone's conv."""
    conv_options = check_options(conv_options, "conv_options", "{'heads': 4}")
    accepted = list(inspect.signature(spec.make_conv).parameters)[1:]
    unknown = sorted(set(conv_options) - set(accepted))
    if unknown:
        raise ValueError(
            f"The {spec.name} backbone takes no conv option {', '.join(unknown)}; it "
            f"accepts: {', '.join(accepted) or 'none'}."
        )
    return conv_options


def _checked_encoders(spec, edge_feats, node_encoder, edge_encoder):
    """``edge_feats`` checked, once the encoders are modules and edge inputs fit the
    backbone."""
    for name, value in [("edge_encoder", edge_encoder), ("edge_feats", edge_feats)]:
        if value is not None and not spec.uses_edge_feats:
            raise ValueError(
                f"The {spec.name} backbone uses no edge features, so it takes no {name}. "
                f"Use a backbone that does (gatedgcn), or drop {name}."
            )
    for name, module in [("node_encoder", node_encoder), ("edge_encoder", edge_encoder)]:
        if module is not None and not isinstance(module, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}.")
    return None if edge_feats is None else check_count(edge_feats, "edge_feats")


def _same(a, b):
    """Equal tensors, NaN equal to NaN (a broken Λ saved once is still one Λ)."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)


def _checked_edge_weight_field(spec, field, hop_mode):
    """``field`` once the backbone's conv takes edge weights and the model reads its edges."""
    if field is None:
        return None
    if not isinstance(field, str) or not field:
        raise TypeError(
            f"edge_weight_field names the edge field of the weights (e.g. 'w' for "
            f"graph.edata['w']), got {field!r}."
        )
    if not spec.takes_edge_weight:
        takes = ", ".join(name for name, b in BACKBONES.items() if b.takes_edge_weight)
        raise ValueError(
            f"The {spec.name} backbone's conv takes no edge weights, so it takes no "
            f"edge_weight_field. Use one that does ({takes}), or pass them as edge features."
        )
    if hop_mode is not None:
        raise ValueError(
            "A k-hop model reads hop graphs built from the rewired graph, whose edges carry no "
            "weights: edge_weight_field is for one-hop models."
        )
    return field


def _make_head(task, readout, hidden, out_feats, activation, head_activation):
    """A linear layer per node, or for graphs an MLP on the pooled states."""
    if task == "node":
        return nn.Linear(hidden, out_feats)
    return nn.Sequential(
        nn.Linear(hidden * len(readout.split("+")), hidden),
        get_activation(activation if head_activation is None else head_activation),
        nn.Linear(hidden, out_feats),
    )


def _refuse_forward_options(model, options):
    """The ``TypeError`` for keywords a model's forward does not take (DGL's convs take
    ``edge_weight=``; these models read the weights from the graph)."""
    name = type(model).__name__
    if "edge_weight" in options:
        if model._spec.takes_edge_weight and model.hop_mode is None:
            raise TypeError(
                f"{name} reads edge weights from the graph, not from forward: store them as "
                "graph.edata['w'] = weights and build the model with edge_weight_field='w'."
            )
        raise TypeError(
            f"{name} takes no edge weights (its convs, or its k-hop graphs, have none)"
            + (": edge features go third, model(graph, feat, edge_feat)."
               if model._spec.uses_edge_feats else ".")
        )  # fmt: skip
    raise TypeError(
        f"{name}.forward takes (graph, feat, edge_feat=None), got the unknown keyword(s) "
        f"{', '.join(map(repr, options))}."
    )


def _check_options(model, kwargs, extra=()):
    """Refuse a keyword no model takes (a typo such as ``num_layer``), naming the model class
    the user built rather than :class:`DeepGNN`, with a close match when there is one."""
    shared = [
        name
        for name, parameter in inspect.signature(DeepGNN.__init__).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "update"  # ours to set
    ]
    valid = sorted({*shared, *extra})
    sizes = ["in_feats", "hidden", "out_feats", "num_layers"]  # guessed, not listed
    for key in kwargs:
        if key not in valid:
            hint = did_you_mean(key, valid + sizes)
            raise TypeError(
                f"{type(model).__name__} got an unknown option {key!r}.{hint} Options: "
                f"{', '.join(valid)}."
            )


class GCN(PlainGNN):
    """Deep GCN (Kipf & Welling) of ``GraphConv`` layers; arguments: :class:`PlainGNN`.

    Examples
    --------
    The plain twin of :class:`GCNSSM`: the same arguments, the same trainable parameters.

    >>> import dgl, torch
    >>> from dgl_ssm import GCN, GCNSSM
    >>> g = dgl.add_self_loop(dgl.to_bidirected(dgl.rand_graph(10, 15)))
    >>> model = GCN(in_feats=5, hidden=16, out_feats=3, num_layers=64)
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    >>> count = lambda m: sum(p.numel() for p in m.parameters())
    >>> count(model) == count(GCNSSM(in_feats=5, hidden=16, out_feats=3, num_layers=64))
    True
    """

    backbone = "gcn"


class GCNSSM(SSMGNN):
    """GCN-SSM: a deep GCN whose layers are SSM steps; arguments: :class:`SSMGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GCNSSM
    >>> g = dgl.add_self_loop(dgl.to_bidirected(dgl.rand_graph(10, 15)))
    >>> model = GCNSSM(in_feats=5, hidden=16, out_feats=3, num_layers=64)
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "gcn"


class GIN(PlainGNN):
    """Deep GIN of ``GINConv`` layers with 2-layer MLPs; arguments: :class:`PlainGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GIN
    >>> g = dgl.rand_graph(10, 30)
    >>> model = GIN(5, 16, 3, num_layers=4, conv_options={"learn_eps": True})  # ε trained
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "gin"


class GINSSM(SSMGNN):
    """GIN-SSM: a deep GIN whose layers are SSM steps; arguments: :class:`SSMGNN`.

    Examples
    --------
    A graph-level model on a batch of two graphs:

    >>> import dgl, torch
    >>> from dgl_ssm import GINSSM
    >>> batch = dgl.batch([dgl.rand_graph(6, 12), dgl.rand_graph(4, 8)])
    >>> model = GINSSM(5, 16, 1, num_layers=8, task="graph", readout="sum")
    >>> model(batch, torch.randn(10, 5)).shape
    torch.Size([2, 1])
    """

    backbone = "gin"


class GatedGCN(PlainGNN):
    """Deep GatedGCN (edge features in, edge features out); arguments: :class:`PlainGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GatedGCN
    >>> model = GatedGCN(5, 16, 3, num_layers=8)  # no edge features: one learned embedding
    >>> model(dgl.rand_graph(10, 30), torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "gatedgcn"


class GatedGCNSSM(SSMGNN):
    """GatedGCN-SSM: node states follow the SSM step; arguments: :class:`SSMGNN`.

    Examples
    --------
    With 3 features an edge (without ``edge_feats``, it learns one embedding for all):

    >>> import dgl, torch
    >>> from dgl_ssm import GatedGCNSSM
    >>> g = dgl.rand_graph(10, 30)
    >>> model = GatedGCNSSM(5, 16, 3, num_layers=8, edge_feats=3)
    >>> model(g, torch.randn(10, 5), torch.randn(30, 3)).shape
    torch.Size([10, 3])
    """

    backbone = "gatedgcn"


class GAT(PlainGNN):
    """Deep GAT, heads concatenated (``conv_options={"heads": 4}``); see :class:`PlainGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GAT
    >>> g = dgl.rand_graph(10, 30)  # nodes without in-edges are allowed, as DGL lets one
    >>> model = GAT(5, 16, 3, num_layers=8, conv_options={"heads": 2}, allow_zero_in_degree=True)
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "gat"


class GATSSM(SSMGNN):
    """GAT-SSM: a deep GAT whose layers are SSM steps; arguments: :class:`SSMGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GATSSM
    >>> g = dgl.add_self_loop(dgl.rand_graph(10, 30))
    >>> model = GATSSM(5, 16, 3, num_layers=8, conv_options={"heads": 4})  # 4 heads of 4
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "gat"


class SAGE(PlainGNN):
    """Deep GraphSAGE (mean aggregator by default); arguments: :class:`PlainGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import SAGE
    >>> g = dgl.rand_graph(10, 30)
    >>> model = SAGE(5, 16, 3, num_layers=8, residual=True)  # a plain model's own knob
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "sage"


class SAGESSM(SSMGNN):
    """SAGE-SSM: a deep GraphSAGE whose layers are SSM steps; see :class:`SSMGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import SAGESSM
    >>> g = dgl.rand_graph(10, 30)
    >>> model = SAGESSM(5, 16, 3, num_layers=8, conv_options={"aggregator": "pool"})
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "sage"


class KGCN(PlainGNN):
    """k-hop GCN: layer ℓ aggregates the nodes at distance ℓ (needs a
    :class:`~dgl_ssm.KHopTransform`-rewired graph); arguments: :class:`PlainGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import KHopTransform, KGCN
    >>> g = KHopTransform(k=4)(dgl.to_bidirected(dgl.rand_graph(10, 15)))
    >>> model = KGCN(in_feats=5, hidden=16, out_feats=3, num_layers=4)
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "gcn"
    default_hop_mode = "exact"


class KGCNSSM(SSMGNN):
    """kGCN-SSM: k-hop rewiring plus SSM steps; layer ℓ reads hop ℓ by default (past K: see
    ``past_max_hop``), or every hop up to ``min(ℓ, K)`` with ``hop_mode="cumulative"``;
    arguments: :class:`SSMGNN`.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import KHopTransform, KGCNSSM
    >>> g = KHopTransform(k=4)(dgl.to_bidirected(dgl.rand_graph(10, 15)))
    >>> model = KGCNSSM(in_feats=5, hidden=16, out_feats=3, num_layers=4)
    >>> model(g, torch.randn(10, 5)).shape
    torch.Size([10, 3])
    """

    backbone = "gcn"
    default_hop_mode = "exact"


def _check_encoded(out, name, rows, hidden):
    """Refuse a custom encoder's output that the layers cannot take: they read one row of
    width ``hidden`` per node (edge)."""
    shape = tuple(getattr(out, "shape", ()))
    if not isinstance(out, torch.Tensor) or shape != (rows, hidden):
        raise ValueError(
            f"The {name} must map its input to a ({rows}, {hidden}) tensor (one row per "
            f"{'node' if name == 'node_encoder' else 'edge'}, width hidden={hidden}); it "
            f"returned {type(out).__name__} of shape {shape}. Make its output width {hidden}, "
            "e.g. end it with nn.Linear(..., hidden)."
        )


# --- the named models' docstrings -------------------------------------------------------------


def _parameter_entries(cls):
    """The entries of ``cls``'s own docstring's Parameters section: ``[(name line, text)]``."""
    lines = inspect.cleandoc(cls.__doc__).splitlines()
    start = lines.index("Parameters") + 2  # past the heading and its underline
    entries = []
    for i in range(start, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and set(lines[i + 1]) == {"-"}:  # the next section's heading
            break
        if line and not line.startswith(" "):
            entries.append([line, []])
        elif entries:
            entries[-1][1].append(line)
    return [(name, "\n".join(text).rstrip()) for name, text in entries]


def _with_parameters(cls):
    """``cls``'s docstring with every argument it takes described in it, from its base's
    Parameters (:class:`PlainGNN` or :class:`SSMGNN`) and :class:`DeepGNN`'s, placed before
    its Examples: ``help(GCNSSM)`` then says what ``hidden`` or ``dropout`` mean, as
    ``help(dgl.nn.GraphConv)`` does, and one text serves every named model."""
    base = PlainGNN if issubclass(cls, PlainGNN) else SSMGNN
    own = [(n, t) for n, t in _parameter_entries(base) if "**kwargs" not in n]
    shared = [(n, t) for n, t in _parameter_entries(DeepGNN) if not n.startswith("update ")]
    after = 1 + next(i for i, (name, _) in enumerate(shared) if name.startswith("num_layers "))
    entries = shared[:after] + own + shared[after:]  # the sizes first, then the model's own
    section = "\n".join(f"{name}\n{text}" for name, text in entries)
    doc = inspect.cleandoc(cls.__doc__)
    head, examples, tail = doc.partition("\nExamples\n--------\n")
    return f"{head.rstrip()}\n\nParameters\n----------\n{section}\n{examples}{tail}"


if DeepGNN.__doc__ is not None:  # (``python -OO`` strips docstrings)
    for _named in (GCN, GCNSSM, GIN, GINSSM, GatedGCN, GatedGCNSSM, GAT, GATSSM, SAGE, SAGESSM,
                   KGCN, KGCNSSM):  # fmt: skip
        _named.__doc__ = _with_parameters(_named)
