"""Reference models that are not deep-GNN stacks, to check the harness against the literature."""

from dgl.nn import GraphConv
from torch import nn

from dgl_ssm.checks import check_node_features


class KipfGCN(nn.Module):
    """The GCN of Kipf & Welling (2017): ``Â relu(Â X W₁) W₂`` with dropout before each conv.

    No encoder and no head: the first conv maps the input width to ``hidden`` and the last
    maps it to the classes, as in the paper (Cora: 16 hidden, dropout 0.5 → 81.5 %).
    """

    def __init__(self, in_feats, hidden, out_feats, num_layers=2, dropout=0.5, task="node"):
        super().__init__()
        if task != "node":
            raise ValueError("gcn_kipf is a node classifier; use gcn or gcn_ssm for graph tasks.")
        widths = [in_feats] + [hidden] * (num_layers - 1) + [out_feats]
        self.in_feats = in_feats
        self.convs = nn.ModuleList(GraphConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = nn.Dropout(dropout)
        self.activation = nn.ReLU()

    def reset_parameters(self):
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, graph, feat):
        check_node_features(graph, feat, self.in_feats)
        h = feat
        for i, conv in enumerate(self.convs):
            h = conv(graph, self.dropout(h))
            if i < len(self.convs) - 1:
                h = self.activation(h)
        return h


BASELINES = {"gcn_kipf": KipfGCN}
