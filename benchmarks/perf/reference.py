"""The reference GCN-SSM written with PyTorch Geometric's ``GCNConv``, when PyG is installed.

Same sizes and the same update as :class:`dgl_ssm.GCNSSM` with its defaults (Λ = I,
B = 0.1·I, σ = relu): ``H ← H + β·relu(GCNConv(H))`` between a linear encoder and a linear
head. The graph passed in already has self loops, so ``GCNConv`` adds none and normalises by
``D^{-1/2} (A + I) D^{-1/2}`` like DGL's ``GraphConv(norm="both")``.
"""

import torch
from torch import nn


def pyg_available():
    """``None`` when PyG can be imported, else the reason it cannot."""
    try:
        import torch_geometric.nn  # noqa: F401
    except Exception as error:  # ImportError, or a build mismatch with this torch
        return f"{type(error).__name__}: {error}"
    return None


def pyg_version():
    import torch_geometric

    return torch_geometric.__version__


class PygGCNSSM(nn.Module):
    """GCN-SSM of PyG ``GCNConv`` layers: encoder → L SSM steps → node head.

    Parameters
    ----------
    in_feats, hidden, out_feats, num_layers : int
        As for :class:`dgl_ssm.GCNSSM`.
    beta : float
        The input scale β of ``B = β·I``.
    """

    def __init__(self, in_feats, hidden, out_feats, num_layers, beta=0.1):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.beta = beta
        self.encoder = nn.Linear(in_feats, hidden)
        # cached=False: the normalisation is recomputed every call, as GraphConv does.
        self.convs = nn.ModuleList(
            GCNConv(hidden, hidden, add_self_loops=False, normalize=True) for _ in range(num_layers)
        )
        self.head = nn.Linear(hidden, out_feats)

    def forward(self, feat, edge_index):
        state = self.encoder(feat)
        for conv in self.convs:
            state = torch.add(state, torch.relu(conv(state, edge_index)), alpha=self.beta)
        return self.head(state)

    @torch.no_grad()
    def copy_weights_from(self, model):
        """Take the weights of a :class:`dgl_ssm.GCNSSM` of the same sizes (for checks)."""
        self.encoder.load_state_dict(model.encoder.state_dict())
        self.head.load_state_dict(model.head.state_dict())
        for ours, layer in zip(self.convs, model.layers):
            ours.lin.weight.copy_(layer.conv.weight.t())  # GraphConv stores W as (in, out)
            ours.bias.copy_(layer.conv.bias)
        return self


def edge_index(graph):
    """The ``2 × E`` (source, destination) edge index PyG's convs read."""
    src, dst = graph.edges()
    return torch.stack([src, dst]).long()
