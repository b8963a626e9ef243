"""CIFAR-10 and CIFAR-100, python-pickle version (Krizhevsky 2009).

Layout under ``root``::

    cifar-10-batches-py/data_batch_1 … data_batch_5, test_batch
        dict with b'data' (10000×3072 uint8, rows R|G|B planes of 32×32, row-major)
        and b'labels' (list of ints 0…9)
    cifar-100-python/train, test
        dict with b'data' (N×3072 uint8) and b'fine_labels' (ints 0…99)

Returns images as (N, 3, 32, 32) uint8 and labels as (N,) int64.

The pickles are read by :class:`SafeUnpickler`, which builds only what these
files hold — numpy arrays (and their dtypes and scalars), lists, dicts,
tuples, bytes, str and numbers — and refuses every other global (a crafted
file calling ``os.system``, say) before anything runs. A file that is not a
CIFAR pickle, or one with no images (an empty ``test_batch``), is refused
with one sentence naming it.
"""
from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path

import numpy as np

from .base import layout_error, require_file

CIFAR10_LAYOUT = "cifar-10-batches-py/data_batch_1 … data_batch_5 and test_batch (the CIFAR-10 python pickles)"
CIFAR100_LAYOUT = "cifar-100-python/train and test (the CIFAR-100 python pickles)"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


#: the only globals a CIFAR pickle needs (numpy moved ``core`` to ``_core`` in 2.0; both spellings occur)
_SAFE_GLOBALS = {(f"numpy.{core}.{module}", name)
                 for core in ("core", "_core")
                 for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                                      ("numeric", "_frombuffer"))}
_SAFE_GLOBALS |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays, lists, dicts, tuples, bytes, str and numbers only."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to '{module}.{name}', which a CIFAR file never holds; refused "
                                         "without running it (only numpy arrays, lists, dicts, bytes and str are "
                                         "read)")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core"):]
        return getattr(importlib.import_module(module), name)


def safe_load(data: bytes):
    """Unpickle ``data`` (Python 2 strings as bytes, as the CIFAR files need) with :class:`SafeUnpickler`."""
    return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()


def _read_pickle(path: Path, label_key: bytes, root, layout: str):
    """One CIFAR pickle → ((n, 3, 32, 32) uint8, (n,) int64)."""
    bad = f"'{path}' is not a CIFAR pickle with b'data' (N×3072 uint8) and {label_key!r}"
    try:
        entry = safe_load(path.read_bytes())
        data = np.asarray(entry[b"data"])
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except pickle.UnpicklingError as exc:
        raise layout_error(root, layout, f"{bad}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 — any failure to parse a damaged file (EOFError, KeyError…)
        raise layout_error(root, layout, f"{bad} ({type(exc).__name__}: {exc})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise layout_error(root, layout, bad)
    if len(data) == 0:
        raise layout_error(root, layout, f"'{path}' holds no images")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(root):
    """CIFAR-10 → (x_train, y_train, x_test, y_test)."""
    folder = "cifar-10-batches-py"
    paths = [require_file(root, f"{folder}/data_batch_{i}", CIFAR10_LAYOUT) for i in range(1, 6)]
    test_path = require_file(root, f"{folder}/test_batch", CIFAR10_LAYOUT)
    parts = [_read_pickle(p, b"labels", root, CIFAR10_LAYOUT) for p in paths]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _read_pickle(test_path, b"labels", root, CIFAR10_LAYOUT)
    _check_labels(root, CIFAR10_LAYOUT, 10, y_train, y_test)
    return x_train, y_train, x_test, y_test


def read_cifar100(root):
    """CIFAR-100 (fine labels) → (x_train, y_train, x_test, y_test)."""
    train = require_file(root, "cifar-100-python/train", CIFAR100_LAYOUT)
    test = require_file(root, "cifar-100-python/test", CIFAR100_LAYOUT)
    x_train, y_train = _read_pickle(train, b"fine_labels", root, CIFAR100_LAYOUT)
    x_test, y_test = _read_pickle(test, b"fine_labels", root, CIFAR100_LAYOUT)
    _check_labels(root, CIFAR100_LAYOUT, 100, y_train, y_test)
    return x_train, y_train, x_test, y_test


def _check_labels(root, layout, K, *label_arrays):
    for y in label_arrays:
        if len(y) and (y.min() < 0 or y.max() >= K):
            raise layout_error(root, layout, f"labels must lie in 0…{K - 1}, found {int(y.min())}…{int(y.max())}")
