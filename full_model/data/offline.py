"""Data sets that need no download, for offline use and tests.

* ``mnist1d``: MNIST-1D (Greydanus 2020), generated procedurally by its PyPI
  package: 10 classes of 40-sample signals, returned as (N, 1, 40) float32.
* ``digits``: scikit-learn's bundled 8×8 digits (1797 images, 10 classes),
  returned as (N, 64) float32 in [0, 1].
* ``synthetic``: K Gaussian class clusters in R^dim, returned as (N, dim).
* ``synthetic-images``: K classes of CIFAR-shaped (3, 32, 32) uint8 images,
  a smooth random template per class plus pixel noise.

Each reader returns balanced pools ``(x_pool, y_pool, x_test, y_test)`` with
``pool_per_class`` training candidates and ``test_per_class`` test samples
per class; the long-tailed subset is drawn from the pool afterwards.
"""
from __future__ import annotations

import random

import numpy as np


def _split_per_class(x, y, pool_per_class: int, test_per_class: int, seed: int):
    """Seeded per-class split into a training pool and a balanced test set."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        pool.append(idx[:pool_per_class])
        test.append(idx[pool_per_class:pool_per_class + test_per_class])
    pool, test = np.sort(np.concatenate(pool)), np.sort(np.concatenate(test))
    return x[pool], y[pool].astype(np.int64), x[test], y[test].astype(np.int64)


def read_mnist1d(pool_per_class: int, test_per_class: int, seed: int):
    """MNIST-1D with exactly pool+test samples per class, (N, 1, 40) float32."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 10 * (pool_per_class + test_per_class)
    args.seed = int(seed)
    # make_dataset reseeds the global `random` and `numpy.random` generators; keep them intact.
    saved_np, saved_py = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(saved_np)
        random.setstate(saved_py)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)[:, None, :]
    y = np.concatenate([data["y"], data["y_test"]])
    return _split_per_class(x, y, pool_per_class, test_per_class, seed)


def read_digits(pool_per_class: int, test_per_class: int, seed: int):
    """scikit-learn digits, (N, 64) float32 in [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    return _split_per_class(x, bunch.target, pool_per_class, test_per_class, seed)


def read_gaussian(num_classes: int, dim: int, pool_per_class: int, test_per_class: int, seed: int,
                  separation: float = 3.0):
    """Gaussian clusters N(μ_k, I) with ‖μ_k‖ = separation, (N, dim) float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_classes, dim))
    centres *= separation / np.linalg.norm(centres, axis=1, keepdims=True)
    per_class = pool_per_class + test_per_class
    y = np.repeat(np.arange(num_classes), per_class)
    x = (centres[y] + rng.standard_normal((len(y), dim))).astype(np.float32)
    return _split_per_class(x, y, pool_per_class, test_per_class, seed)


def read_synthetic_images(num_classes: int, pool_per_class: int, test_per_class: int, seed: int):
    """CIFAR-shaped uint8 images: a smooth class template (8×8 upsampled) plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, size=(num_classes, 3, 8, 8))
    templates = coarse.repeat(4, axis=2).repeat(4, axis=3)  # (K, 3, 32, 32)
    per_class = pool_per_class + test_per_class
    y = np.repeat(np.arange(num_classes), per_class)
    x = np.empty((len(y), 3, 32, 32), dtype=np.uint8)
    for start in range(0, len(y), 4096):  # bounded temporary memory
        part = y[start:start + 4096]
        noisy = templates[part] + rng.normal(0.0, 40.0, size=(len(part), 3, 32, 32))
        x[start:start + 4096] = np.clip(noisy, 0, 255).astype(np.uint8)
    return _split_per_class(x, y, pool_per_class, test_per_class, seed)
