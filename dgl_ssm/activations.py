"""Activation functions chosen by name, so configs and CLIs can name them."""

from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}


def get_activation(name):
    """Return a fresh activation module for ``name`` (or pass a module through).

    Raises ``ValueError`` listing the valid names when ``name`` is unknown.
    """
    if isinstance(name, nn.Module):
        return name
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown activation {name!r}. Valid names: {', '.join(sorted(ACTIVATIONS))}."
        ) from None
