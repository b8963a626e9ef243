"""Which classes a comparison's geometry claims rest on (theory.md §13).

* **Minority by counts.** For a step profile the minority is every class
  below the top count (so K_A is the number of classes at the top count); for
  any other profile it is every class with fewer than ``minority_below``
  training samples (default 20, the "few" threshold of theory.md §7). The
  rule is stated in every table and caption.
* **Fitted classes.** The LPM describes the terminal phase, where every class
  is fitted. A class whose final training accuracy is below ``fitted_above``
  (default 0.5) is flagged as unfitted and left out of the minority group on
  both sides (run and LPM), so that no geometry claim rests on it. A class
  whose accuracy was not measured (NaN) is not flagged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import check_number

MINORITY_BELOW = 20.0
FITTED_ABOVE = 0.5


@dataclass(frozen=True)
class ClassRoles:
    """minority (all by counts), unfitted, and the minority the metrics use (fitted only)."""

    minority: np.ndarray
    unfitted: np.ndarray
    rule: str

    @property
    def measured_minority(self) -> np.ndarray:
        return np.setdiff1d(self.minority, self.unfitted)

    def describe(self) -> dict:
        return {"minority_rule": self.rule, "minority_classes": " ".join(map(str, self.minority)),
                "unfitted_classes": " ".join(map(str, self.unfitted)),
                "measured_minority_classes": " ".join(map(str, self.measured_minority))}


def minority_by_counts(counts, profile: str = "explicit", minority_below: float | None = None) -> tuple[np.ndarray, str]:
    """Indices of the minority classes and the sentence stating the rule (module docstring)."""
    counts = np.asarray(counts, dtype=np.float64)
    if profile == "step" and minority_below is None:
        top = counts.max()
        return np.flatnonzero(counts < top), f"minority: classes below the top count {top:g} (step profile)"
    below = MINORITY_BELOW if minority_below is None else check_number("minority_below", minority_below, low=0,
                                                                        low_open=True)
    return np.flatnonzero(counts < below), f"minority: classes with fewer than {below:g} training samples"


def class_roles(counts, train_accuracy=None, profile: str = "explicit", minority_below: float | None = None,
                fitted_above: float = FITTED_ABOVE) -> ClassRoles:
    """The minority by counts and the unfitted classes of a run (``train_accuracy`` None: all fitted)."""
    minority, rule = minority_by_counts(counts, profile, minority_below)
    check_number("fitted_above", fitted_above, low=0, high=1)
    if train_accuracy is None:
        return ClassRoles(minority, np.array([], dtype=int), rule)
    accuracy = np.asarray(train_accuracy, dtype=np.float64)
    unfitted = np.flatnonzero(accuracy < fitted_above)     # NaN: not measured, so not flagged
    return ClassRoles(minority, unfitted, rule + f"; unfitted: training accuracy below {fitted_above:g}")
