"""Losses bound to a run's class counts and hyperparameters, behind one import site.

The deep objective takes its loss from :func:`bind_loss` alone (one call, in
:func:`full_model.losses.objective_loss`), and the configuration checks
hyperparameters against :data:`LOSS_HYPERPARAMETERS` alone. Both follow the
registry of :mod:`lpm.core.losses`: a loss that takes no hyperparameter binds
to the registered loss itself; giving it ``tau``, ``gamma`` or ``margin`` is
refused.
"""
from __future__ import annotations

from lpm.core.errors import LPMInputError
from lpm.core.losses import LOSS_NAMES, get_loss

#: which of tau / gamma / margin each registered loss takes
LOSS_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {name: () for name in LOSS_NAMES}


def bind_loss(name: str, counts, *, tau=None, gamma=None, margin=None):
    """The registered loss ``name`` bound to ``counts`` (K,) and its hyperparameters."""
    loss = get_loss(name)
    for key, value in (("tau", tau), ("gamma", gamma), ("margin", margin)):
        if value is not None and key not in LOSS_HYPERPARAMETERS[name]:
            raise LPMInputError(key, value, f"left unset for loss '{name}' (it takes "
                                            f"{', '.join(LOSS_HYPERPARAMETERS[name]) or 'no hyperparameter'})")
    return loss
