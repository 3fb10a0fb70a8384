"""The models a run times, and one training epoch of each (forward, backward, step)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dgl_ssm import build_model

from .reference import PygGCNSSM, edge_index

PYG = "pyg"


@dataclass(frozen=True)
class Variant:
    """One model configuration: a registered name, checkpointing, or the PyG reference.

    ``key`` names it in tables: ``gcn``, ``gcn_ssm``, ``gcn_ssm+ckpt``, ``pyg:gcn_ssm``.
    """

    model: str
    checkpoint: bool = False
    library: str = "dgl"

    @property
    def key(self):
        if self.library == PYG:
            return f"pyg:{self.model}"
        return self.model + ("+ckpt" if self.checkpoint else "")

    def build(self, in_feats, hidden, out_feats, depth, seed=0):
        """The model, initialised from ``seed``: twins get identical trainable weights."""
        torch.manual_seed(seed)
        if self.library == PYG:
            return PygGCNSSM(in_feats, hidden, out_feats, depth)
        return build_model(
            self.model, in_feats, hidden, out_feats, depth, checkpoint=self.checkpoint
        )

    def inputs(self, data):
        """The forward arguments of this variant's model on ``data``."""
        if self.library == PYG:
            return data.feat, edge_index(data.graph)
        return data.graph, data.feat


def twins(backbone):
    """The plain model and its SSM twin of a backbone, e.g. ``gcn`` and ``gcn_ssm``."""
    return Variant(backbone), Variant(f"{backbone}_ssm")


def make_epoch(variant, data, depth, hidden, seed=0):
    """Build ``variant`` for ``data`` and return a function running one training epoch.

    An epoch is one full-batch step: forward, cross-entropy on the random labels, backward
    and an Adam step. The function returns nothing; callers time it.
    """
    model = variant.build(data.feat.shape[1], hidden, data.num_classes, depth, seed)
    model = model.to(data.feat.device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = variant.inputs(data)
    labels = data.labels

    def epoch():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(*inputs), labels)
        loss.backward()
        optimizer.step()

    return epoch
