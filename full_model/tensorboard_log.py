"""``--tensorboard``: a TensorBoard log of a run, beside ``metrics.jsonl`` (which stays the source of truth).

Every number of a metrics row (``epoch`` aside; lists, strings and ``None``
left out) becomes a scalar whose tag is its key in ``metrics.jsonl`` and whose
step is the epoch. Scalars are stored in float64 (TensorBoard's tensor
summaries), so the log holds exactly the numbers of the file. At the end of a
run the figures (``metrics.png``, ``evaluation.png``, ``confusion.png``) are
added as images at the last epoch.

The log lives in ``<run>/tensorboard/``. On a resume it is rebuilt from the
rows kept in the checkpoint (old event files are removed first), so it never
holds an epoch twice and always matches ``metrics.jsonl``. Only the main
process writes. The ``tensorboard`` package is an optional extra
(``pip install 'lpm[tensorboard]'``); asking for the log without it is an
input error.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

from lpm.core.errors import LPMInputError

from . import run_format as rf

INSTALL_HINT = "pip install 'lpm[tensorboard]'"


def available() -> bool:
    """Whether the ``tensorboard`` package can be imported."""
    return importlib.util.find_spec("tensorboard") is not None


def check_available() -> None:
    """Raise :class:`LPMInputError` (exit 2 from the CLI) when the package is missing."""
    if not available():
        raise LPMInputError("tensorboard", True, f"false unless the tensorboard package is installed "
                                                 f"({INSTALL_HINT})")


def scalars(row: dict) -> dict[str, float]:
    """The scalars of one metrics row: every int or float value (bools, None, lists, strings left out)."""
    return {key: float(value) for key, value in row.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


class TensorBoardLog:
    """The log of one run folder; ``rows`` (the epochs already done) are written at once."""

    def __init__(self, run_dir, rows=()):
        check_available()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(run_dir) / rf.TENSORBOARD_DIR
        for old in self.log_dir.glob("events.out.tfevents.*"):  # rebuilt from the rows, never appended twice
            old.unlink()
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        for row in rows:
            self.add_row(row, flush=False)
        self.writer.flush()

    def add_row(self, row: dict, flush: bool = True) -> None:
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, global_step=int(row["epoch"]), new_style=True, double_precision=True)
        if flush:
            self.writer.flush()

    def add_figures(self, figures: dict, step: int) -> None:
        """Each ``name: Figure`` as an RGB image (rendered without pyplot)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        for name, fig in figures.items():
            canvas = FigureCanvasAgg(fig)
            canvas.draw()
            image = np.asarray(canvas.buffer_rgba())[:, :, :3]
            self.writer.add_image(name, image, global_step=step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
