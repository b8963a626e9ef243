"""Array back ends of the factored nuclear engine: NumPy, or torch on the CPU or CUDA.

:mod:`lpm.core.solvers.factored` is written once against the few operations
below (the rest is common to NumPy arrays and torch tensors: ``@``, in-place
arithmetic, ``matmul(..., out=)``, ``eigh``, ``qr``, ``einsum``). Each back
end takes the loss only through the registry's :class:`lpm.core.losses.Loss`
methods:

* NumPy: ``value_grad`` and ``hvp_operator``;
* torch: ``torch_value`` and ``torch_grad`` for the value and gradient (in
  float64), and for Hessian products the forward-mode derivative of
  ``torch_grad`` (``torch.func.jvp``), so every loss with a torch gradient,
  including the count-dependent ones, runs unchanged.

torch is imported only when a torch back end is built (the CLI's NumPy
solves never load it). The Hessian products run in float32 either way; the
gradient, the steps and every certificate stay in float64.
"""
from __future__ import annotations

import numpy as np

from ..errors import LPMInputError

#: values of the ``backend`` setting of the nuclear solver
BACKENDS = ("numpy", "torch")
#: values of its ``device`` setting (torch back end; ``auto``: CUDA when present)
DEVICES = ("auto", "cpu", "cuda")


class NumpyBackend:
    """Plain NumPy arrays (the default)."""

    name = "numpy"
    f32, f64 = np.float32, np.float64

    def __init__(self):
        self.xp = np
        self.linalg = np.linalg

    def __repr__(self) -> str:
        return "numpy"

    # ---- arrays
    def asarray(self, a, dtype=None):
        return np.asarray(a, dtype=self.f64 if dtype is None else dtype)

    def numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def cast(self, a, dtype):
        return a.astype(dtype, copy=False)

    def dot(self, a, b) -> float:
        return float(np.vdot(a, b))

    def stack(self, arrays):
        return np.stack(arrays)

    def cat(self, arrays, axis: int):
        return np.concatenate(arrays, axis=axis)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def zeros_like(self, a):
        return np.zeros_like(a)

    def diag(self, A):
        return np.diagonal(A)

    def clip(self, a, low, high):
        return np.clip(a, low, high)

    def amax(self, a) -> float:
        return float(a.max(initial=0.0))

    def randn(self, shape, seed: int):
        return np.random.default_rng(seed).standard_normal(shape)

    def synchronize(self) -> None:
        pass

    # ---- the loss
    def softmax(self, X):
        E = X - X.max(axis=-1, keepdims=True)
        np.exp(E, out=E)
        E /= E.sum(axis=-1, keepdims=True)
        return E

    def softmax32(self, X):
        """Row softmax in float32 with entries below 1e-30 set to zero (no subnormals:
        they slow float32 products some twenty-fold), one float64 temporary."""
        S = self.softmax(X).astype(np.float32)
        S[S < 1e-30] = 0.0
        return S

    def value_grad(self, loss, X, labels, target):
        return loss.value_grad(X, labels, target)

    def hvp_operator(self, loss, X, labels, target, dtype):
        return loss.hvp_operator(X, labels, target, dtype=dtype)


class TorchBackend(NumpyBackend):
    """torch tensors on ``device`` ('cpu' or 'cuda')."""

    name = "torch"

    def __init__(self, device: str = "auto"):
        import torch  # lazily: only this back end needs it

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise LPMInputError("device", device, "'cpu' or 'auto' (torch sees no CUDA device here)")
        self.torch, self.device = torch, torch.device(device)
        self.xp, self.linalg = torch, torch.linalg
        self.f32, self.f64 = torch.float32, torch.float64
        self._labels: dict = {}

    def __repr__(self) -> str:
        return f"torch ({self.device})"

    def asarray(self, a, dtype=None):
        dtype = self.f64 if dtype is None else dtype
        if isinstance(a, self.torch.Tensor):
            return a.to(device=self.device, dtype=dtype)
        return self.torch.as_tensor(np.asarray(a), dtype=dtype, device=self.device)

    def numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy() if isinstance(a, self.torch.Tensor) else np.asarray(a)

    def cast(self, a, dtype):
        return a.to(dtype)

    def dot(self, a, b) -> float:
        return float(self.torch.vdot(a.reshape(-1), b.reshape(-1)))

    def stack(self, arrays):
        return self.torch.stack(arrays)

    def cat(self, arrays, axis: int):
        return self.torch.cat(arrays, dim=axis)

    def empty(self, shape, dtype):
        return self.torch.empty(shape, dtype=dtype, device=self.device)

    def zeros_like(self, a):
        return self.torch.zeros_like(a)

    def diag(self, A):
        return self.torch.diagonal(A)

    def clip(self, a, low, high):
        return self.torch.clamp(a, min=low, max=high)

    def amax(self, a) -> float:
        return float(a.max()) if a.numel() else 0.0

    def randn(self, shape, seed: int):
        return self.asarray(np.random.default_rng(seed).standard_normal(shape))

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def _label_tensor(self, labels):
        key = len(labels)
        if key not in self._labels:
            self._labels[key] = self.torch.as_tensor(np.asarray(labels), dtype=self.torch.long, device=self.device)
        return self._labels[key]

    def softmax(self, X):
        return self.torch.softmax(X, dim=-1)

    def softmax32(self, X):
        S = self.torch.softmax(X, dim=-1).to(self.f32)
        S[S < 1e-30] = 0.0
        return S

    def value_grad(self, loss, X, labels, target):
        y = self._label_tensor(labels)
        return loss.torch_value(X, y, target), loss.torch_grad(X, y, target)

    def hvp_operator(self, loss, X, labels, target, dtype):
        y = self._label_tensor(labels)
        point = X.to(dtype)
        jvp = self.torch.func.jvp

        def gradient(Z):
            return loss.torch_grad(Z, y, target)

        def apply(V):  # the directional derivative of the logit gradient: ∇²L[V], row by row
            return jvp(gradient, (point,), (V,))[1]
        return apply


def make_backend(backend: str = "numpy", device: str = "auto") -> NumpyBackend:
    """The back end named by the nuclear solver's ``backend`` and ``device`` settings."""
    if backend == "numpy":
        if device == "cuda":
            raise LPMInputError("device", device, "'auto' or 'cpu' with backend 'numpy' (use backend 'torch')")
        return NumpyBackend()
    if backend == "torch":
        return TorchBackend(device)
    raise LPMInputError("backend", backend, "one of " + ", ".join(f"'{b}'" for b in BACKENDS))
