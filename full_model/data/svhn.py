"""SVHN, cropped-digits MATLAB version (Netzer et al. 2011).

Layout under ``root``: ``train_32x32.mat`` and ``test_32x32.mat``, each with
``X`` of shape 32×32×3×N (uint8) and ``y`` of shape N×1 holding 1…10, where
10 means the digit 0. Returns (N, 3, 32, 32) uint8 images and labels 0…9.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import layout_error, require_file

SVHN_LAYOUT = "train_32x32.mat and test_32x32.mat (SVHN cropped digits: X 32×32×3×N uint8, y N×1 in 1…10)"


def _read_mat(path: Path, root):
    from scipy.io import loadmat  # scipy is needed for SVHN only

    bad = f"'{path}' is not an SVHN .mat file with X (32×32×3×N uint8) and y (N×1, 1…10)"
    if path.stat().st_size == 0:
        raise layout_error(root, SVHN_LAYOUT, f"{bad}: the file is empty")
    try:
        mat = loadmat(str(path))
        X, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    except Exception as exc:  # noqa: BLE001 — scipy raises many kinds on a damaged file (MatReadError, IndexError…)
        raise layout_error(root, SVHN_LAYOUT, f"{bad} ({type(exc).__name__}: {exc})") from None
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.shape[3] != len(y) or len(y) == 0:
        raise layout_error(root, SVHN_LAYOUT, bad)
    if y.min() < 1 or y.max() > 10:
        raise layout_error(root, SVHN_LAYOUT, bad)
    images = np.ascontiguousarray(X.transpose(3, 2, 0, 1)).astype(np.uint8)  # (N, 3, 32, 32)
    return images, (y.astype(np.int64) % 10)


def read_svhn(root):
    """SVHN → (x_train, y_train, x_test, y_test)."""
    train = require_file(root, "train_32x32.mat", SVHN_LAYOUT)
    test = require_file(root, "test_32x32.mat", SVHN_LAYOUT)
    return (*_read_mat(train, root), *_read_mat(test, root))
