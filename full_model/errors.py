"""Runtime failures of a deep run (user mistakes are :class:`lpm.core.errors.LPMInputError`)."""
from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """The training loss (or the network's outputs) stopped being finite numbers, or exploded.

    Nothing of the failed epoch is written; the run folder keeps the last good checkpoint.
    The command line prints the message on one line and exits with status 1.
    """

    def __init__(self, epoch: int, step: int | None, steps: int | None, what: str, checkpoint: str | None,
                 lr: float):
        self.epoch, self.step, self.what = epoch, step, what
        where = f"epoch {epoch}, step {step} of {steps}" if step is not None else f"the tracking after epoch {epoch}"
        kept = (f"the last good checkpoint ({checkpoint}) is kept" if checkpoint else
                "no checkpoint was written (no epoch finished)")
        folder = " in a new folder" if checkpoint else ""
        super().__init__(f"Training diverged at {where}: {what} (lr {lr:g}). Nothing of epoch {epoch} was "
                         f"written; {kept}. Start again{folder} with a lower learning rate (--lr) or a longer "
                         "warm-up (--warmup-epochs).")


class NonFiniteOutputs(ValueError):
    """The network's features or logits hold NaN or infinity (raised while tracking)."""


class RunWarning(UserWarning):
    """Something about a run the user should know that does not stop it (the command line prints
    it as one line starting with "Warning:")."""
