"""Diagnostics of the paper's three claims, read from a model without changing it.

- :mod:`.jacobian` — layer Jacobians: dense (small graphs) and matrix-free top singular
  values, top eigenvalue moduli and singular-value density (large graphs).
- :mod:`.energy` — Dirichlet energy of the states, layer by layer (over-smoothing).
- :mod:`.gradients` — ‖∂loss/∂H⁽ℓ⁾‖ layer by layer (vanishing gradients).
- :mod:`.sensitivity` — ‖∂h_v⁽ᴸ⁾/∂x_u‖ against hop distance (over-squashing).
- :mod:`.states` — the forward hooks they share.

Everything works through forward hooks and autograd on the model as built; hooks are removed
and train/eval flags restored afterwards, and no ``.grad`` field is written.
"""

from ._common import one_hop_graph
from .energy import dirichlet_energy, layer_energies
from .gradients import layer_gradient_norms
from .jacobian import (
    DEFAULT_MAX_DIM,
    dense_layer_jacobian,
    layer_jacobian_operator,
    spectral_density,
    top_eigenvalue_moduli,
    top_singular_values,
)
from .sensitivity import hop_distances, sensitivity, sensitivity_by_distance
from .states import LayerCall, layer_inputs, recorded_states

__all__ = [
    "DEFAULT_MAX_DIM",
    "LayerCall",
    "dense_layer_jacobian",
    "dirichlet_energy",
    "hop_distances",
    "layer_energies",
    "layer_gradient_norms",
    "layer_inputs",
    "layer_jacobian_operator",
    "one_hop_graph",
    "recorded_states",
    "sensitivity",
    "sensitivity_by_distance",
    "spectral_density",
    "top_eigenvalue_moduli",
    "top_singular_values",
]
