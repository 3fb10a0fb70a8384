"""Resetting a model to how it was built: each submodule's ``reset_parameters`` once, children
before parents, and the values kept at construction for the parameters that no
``reset_parameters`` draws (GIN's learnable ε) or that a module drew its own way (OGB's
``AtomEncoder``). ``reset_parameters`` of the SSM layers and the models calls
``reset_submodules``."""

import warnings

import torch

#: Prefix of the buffers that keep a parameter's value at construction (see below).
INITIAL = "_initial_"


#: Marks a module whose whole subtree a reset sets back to its values at construction (an
#: attribute, so copies and pickles keep it).
RESTORED = "_dgl_ssm_restored_on_reset"


def remember_initial_values(module):
    """Keep, in a non-persistent buffer beside it, the value of every parameter below
    ``module`` whose owner has no ``reset_parameters`` (GIN's learnable ε is such a
    parameter), or that is below a module passed to :func:`restore_on_reset`, so that
    :func:`reset_submodules` can set it back."""
    restored = [m for m in module.modules() if getattr(m, RESTORED, False)]
    below_restored = {id(m) for r in restored for m in r.modules()}
    for owner in module.modules():
        if hasattr(owner, "reset_parameters") and id(owner) not in below_restored:
            continue
        for name, parameter in owner.named_parameters(recurse=False):
            if not hasattr(owner, INITIAL + name):
                owner.register_buffer(INITIAL + name, parameter.detach().clone(), persistent=False)


def restore_on_reset(module):
    """Have :func:`reset_submodules` set ``module``'s parameters back to their values now
    (call it at construction) rather than call its children's ``reset_parameters``: for a
    module without ``reset_parameters`` of its own whose ``__init__`` draws its children's
    weights its own way (OGB's ``AtomEncoder``: Xavier, where ``nn.Embedding`` would draw
    N(0, 1)), the children's own draws would not be the module as built."""
    setattr(module, RESTORED, True)
    remember_initial_values(module)


def reset_submodules(module):
    """Reinitialise every parameter below ``module`` as when it was built, calling each
    submodule's ``reset_parameters`` once: children before parents, so a parent's own
    initialisation wins as it did at construction (DGL's ``SAGEConv`` redraws its weights but
    leaves the biases to ``nn.Linear``); a module of ours that walks its own subtree
    (``resets_submodules``) is left to do so; a parameter that no ``reset_parameters`` draws,
    and every parameter below a module passed to :func:`restore_on_reset`, goes back to the
    value :func:`remember_initial_values` kept."""
    for child in module.children():
        if getattr(child, RESTORED, False):
            _restore(child)
            continue
        if not getattr(child, "resets_submodules", False):
            reset_submodules(child)
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
            continue
        _restore(child, recurse=False)


def _restore(module, recurse=True):
    """Set the parameters of ``module`` (and below, with ``recurse``) to their kept values."""
    for owner in module.modules() if recurse else (module,):
        with torch.no_grad():
            for name, parameter in owner.named_parameters(recurse=False):
                initial = getattr(owner, INITIAL + name, None)
                if initial is not None:
                    parameter.copy_(initial)
                else:  # attached after construction: its value then was never kept
                    warnings.warn(
                        f"{type(owner).__name__}.{name} was not reset: the module has no "
                        "reset_parameters and was attached after the model was built. Call "
                        "dgl_ssm.reset.remember_initial_values(model) after attaching it.",
                        stacklevel=4,
                    )
