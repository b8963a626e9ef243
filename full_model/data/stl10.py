"""STL-10, binary version (Coates et al. 2011).

Layout under ``root``: ``stl10_binary/train_X.bin``, ``train_y.bin``,
``test_X.bin``, ``test_y.bin``. ``*_X.bin`` holds uint8 images of 3×96×96,
each channel stored column-major (MATLAB order); ``*_y.bin`` holds one uint8
label 1…10 per image. Returns (N, 3, 96, 96) uint8 row-major and labels 0…9.
"""
from __future__ import annotations

import numpy as np

from .base import layout_error, require_file

STL10_LAYOUT = "stl10_binary/train_X.bin, train_y.bin, test_X.bin, test_y.bin (STL-10 binaries)"
IMAGE_BYTES = 3 * 96 * 96


def _read_split(root, split: str):
    xp = require_file(root, f"stl10_binary/{split}_X.bin", STL10_LAYOUT)
    yp = require_file(root, f"stl10_binary/{split}_y.bin", STL10_LAYOUT)
    raw = np.fromfile(xp, dtype=np.uint8)
    labels = np.fromfile(yp, dtype=np.uint8).astype(np.int64)
    if raw.size == 0 or raw.size % IMAGE_BYTES:
        raise layout_error(root, STL10_LAYOUT, f"'{xp}' holds {raw.size} bytes, not a multiple of 3×96×96")
    n = raw.size // IMAGE_BYTES
    if len(labels) != n or labels.min() < 1 or labels.max() > 10:
        raise layout_error(root, STL10_LAYOUT, f"'{yp}' must hold {n} labels in 1…10")
    # column-major per channel: stored as (N, C, W, H); swap to (N, C, H, W)
    images = np.ascontiguousarray(raw.reshape(n, 3, 96, 96).transpose(0, 1, 3, 2))
    return images, labels - 1


def read_stl10(root):
    """STL-10 labelled splits → (x_train, y_train, x_test, y_test)."""
    return (*_read_split(root, "train"), *_read_split(root, "test"))

