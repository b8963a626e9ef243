"""Containers shared by every dataset reader, and the error helper.

Every dataset comes back as one of two containers:

* :class:`ArrayData` — the whole split held as arrays (CIFAR, SVHN, STL-10,
  MNIST-1D, digits, synthetic). Images are uint8 (N, C, H, W) and are turned
  into floats on the training device, batch by batch: x ↦ (x/255 − mean)/std.
  Vector data are float32 (N, L) or (N, 1, L) and are used as they are.
* :class:`ImageListData` — ImageNet-LT, a list of image files read lazily.

Both carry the per-class training counts n_k (theory.md §3) and how they
were made, so a run records its own class profile.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpm.core.errors import LPMInputError


def layout_error(root, layout: str, problem: str) -> LPMInputError:
    """An error naming the file at fault and the layout the reader expects."""
    return LPMInputError("root", str(root), f"a folder holding {layout} ({problem})")


def require_file(root: Path, relative: str, layout: str) -> Path:
    path = Path(root) / relative
    if not path.is_file():
        raise layout_error(root, layout, f"missing file '{path}'")
    return path


class _LabelledSplits:
    """Shared by the data containers: per-class counts of the training labels."""

    y_train: np.ndarray
    num_classes: int

    @property
    def counts(self) -> tuple[int, ...]:
        """Per-class training counts n_k, k = 0…K−1."""
        return tuple(int(c) for c in np.bincount(self.y_train, minlength=self.num_classes))


@dataclass
class ArrayData(_LabelledSplits):
    """A long-tailed training split and a test split held in memory.

    x_train: (N, C, H, W) uint8 images or (N, ...) float32 vectors.
    y_train: (N,) int64 labels in [0, K).  Same for the test split.
    mean/std: per-channel normalisation applied after x/255 (images only).
    augment: ``"crop-flip"`` (random 32-crop with zero padding 4, horizontal
        flip; CIFAR, theory.md §7) or ``"none"``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: str = "none"
    default_backbone: str = "mlp"
    group_scheme: str = "index"
    profile: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x_train.dtype == np.uint8


@dataclass
class ImageListData(_LabelledSplits):
    """Images on disk listed as (relative path, label) pairs (ImageNet-LT)."""

    name: str
    root: Path
    train_files: list[str]
    y_train: np.ndarray
    test_files: list[str]
    y_test: np.ndarray
    num_classes: int
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    image_size: int = 224
    default_backbone: str = "resnet50-wide"
    group_scheme: str = "count"
    profile: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.image_size, self.image_size)

    is_image = True
