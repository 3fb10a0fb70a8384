"""RingTransfer (as used by DRew): carry a class label half way round a ring.

A cycle of ``n`` nodes with 5-d features: every node is the all-ones vector, node 0 (the
read-out node) is zeros and the opposite node ``n // 2`` carries the one-hot class. The task
is to predict the class at node 0, which is ``n // 2`` hops from the only informative node;
chance is 20 %. 2000 graphs, split 80/10/10, classes balanced within each split (DRew builds
each split on its own, an equal number of graphs per class), so every split's majority class
is 20 %; deterministic from a seed.
"""

import dgl
import numpy as np
import torch

from .base import BenchmarkData

NUM_CLASSES = 5
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# 1: classes balanced over the whole set only, so a split's majority class reached 27 %;
# 2: balanced within each split, as DRew's generator does. Results on the two differ.
VERSION = 2


def ring_graph(size, label):
    """One ring of ``size`` nodes whose read-out node 0 must predict ``label``."""
    if size < 3:
        raise ValueError(f"ring_size must be at least 3, got {size}.")
    nodes = torch.arange(size)
    graph = dgl.to_bidirected(dgl.graph((nodes, (nodes + 1) % size)))
    feat = torch.ones(size, NUM_CLASSES)
    feat[0] = 0.0
    feat[size // 2] = torch.nn.functional.one_hot(torch.tensor(label), NUM_CLASSES).float()
    graph.ndata["feat"] = feat
    graph.ndata["label"] = torch.full((size,), label, dtype=torch.long)
    graph.ndata["target_mask"] = nodes == 0
    return graph


def _balanced(size, rng):
    """``size`` labels in shuffled order, as many of each class as can be, the few left over
    in distinct classes drawn at random (not always the first ones)."""
    labels = np.arange(size - size % NUM_CLASSES) % NUM_CLASSES
    if size % NUM_CLASSES:
        extra = rng.choice(NUM_CLASSES, size % NUM_CLASSES, replace=False)
        labels = np.concatenate([labels, extra])
    return rng.permutation(labels)


def load_ring_transfer(ring_size=20, num_graphs=2000, seed=0):
    """The RingTransfer task as :class:`BenchmarkData` (node level, scored at node 0)."""
    if num_graphs < 10:
        raise ValueError(f"num_graphs must be at least 10 for an 80/10/10 split, got {num_graphs}.")
    rng = np.random.default_rng(seed)
    train_end = int(SPLIT_FRACTIONS[0] * num_graphs)
    val_end = train_end + int(SPLIT_FRACTIONS[1] * num_graphs)
    labels = [_balanced(size, rng) for size in (train_end, val_end - train_end,
                                                num_graphs - val_end)]  # fmt: skip
    graphs = [ring_graph(ring_size, int(label)) for label in np.concatenate(labels)]
    return BenchmarkData(
        name="ring_transfer",
        level="node",
        loss="cross_entropy",
        metric="accuracy",
        num_features=NUM_CLASSES,
        num_outputs=NUM_CLASSES,
        graphs={
            "train": graphs[:train_end],
            "val": graphs[train_end:val_end],
            "test": graphs[val_end:],
        },
    )
