"""Activations by name (so configs and CLIs can name them), module or callable."""

from torch import nn

from .checks import check_choice

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}


class FunctionActivation(nn.Module):
    """A plain function (``torch.tanh``, ``F.silu``, a lambda) as an activation module."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def reset_parameters(self):
        """Nothing to reset: a function has no parameters (here for DGL's module convention)."""

    def forward(self, x):
        """``function(x)``."""
        return self.function(x)

    def extra_repr(self):
        return getattr(self.function, "__name__", repr(self.function))


def get_activation(activation):
    """Return an activation module for ``activation``: a name (a fresh module), a module
    (passed through) or any callable on tensors (wrapped), as DGL's and PyG's layers take.

    Raises ``ValueError`` listing the valid names when a name is unknown, ``TypeError`` for
    anything else.

    Examples
    --------
    >>> import torch
    >>> from dgl_ssm.activations import get_activation
    >>> get_activation("tanh"), get_activation(torch.sigmoid)
    (Tanh(), FunctionActivation(sigmoid))
    """
    if isinstance(activation, nn.Module):
        return activation
    if isinstance(activation, str):
        also = "; or pass a module or a callable"
        return ACTIVATIONS[check_choice("activation", activation, sorted(ACTIVATIONS), also)]()
    if isinstance(activation, type):  # nn.ReLU rather than nn.ReLU(): a class is callable too
        raise TypeError(
            f"activation must be a module instance or a function, got the class "
            f"{activation.__name__}: pass {activation.__name__}() (an instance) or a name "
            f"({', '.join(sorted(ACTIVATIONS))})."
        )
    if callable(activation):
        return FunctionActivation(activation)
    raise TypeError(
        f"activation must be a name ({', '.join(sorted(ACTIVATIONS))}), an nn.Module or a "
        f"callable, got {type(activation).__name__}."
    )
