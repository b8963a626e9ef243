"""One projected / Riemannian descent of the gradient back end.

The metric, the methods and the step sizes are described in
:mod:`lpm.core.solvers.gradient`; this module holds the iteration itself.
Losses, their logit gradients and curvature bounds come from the registry
(:mod:`lpm.core.losses`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..losses import released_dr_curvature, released_dr_logit_grad
from ..problem import Problem

_ADAM = (0.9, 0.999, 1e-8)


class Descent:
    """One descent from one random start. Shapes: F (K, s, d), W (K, d), logits (K, s, K)."""

    def __init__(self, problem: Problem, cfg: dict, seed: tuple[int, int], reference: np.ndarray | None = None):
        """``reference``: the optimal class means (K×d), when known before the run (a closed form);
        the angle and distance to them are then measured as the run goes."""
        self.problem, self.cfg = problem, cfg
        self.dtype = torch.float64 if cfg["dtype"] == "float64" else torch.float32
        self.device = torch.device(cfg["device"])
        K, d, s = problem.K, problem.d, cfg["samples_per_class"]
        self.p = self._t(problem.weights).view(K, 1, 1)      # class proportions p_k
        self.weight = self.p / s                              # weight of each feature vector
        self.onehot = torch.eye(K, dtype=self.dtype, device=self.device).view(K, 1, K)
        self.labels = torch.arange(K, device=self.device).view(K, 1).expand(K, s)  # label of each vector
        self.loss = problem.loss_fn
        self.curvature = (released_dr_curvature(problem.E_H) if cfg["dr_variant"] == "released"
                          else self.loss.curvature(problem.dr_target))
        self.capacity = K * s * problem.E_H                   # class-average: Σ‖h‖² ≤ K s E_H
        self.riemannian = cfg["method"] == "riemannian"
        self.adam = cfg["optimizer"] == "adam"
        self.lr = cfg["lr"] if cfg["lr"] is not None else (0.01 if self.adam else 1.0)
        self.moments: dict[str, tuple] = {}
        self.reference = None if reference is None else self._t(reference)
        rng = np.random.default_rng(list(seed))
        scale = cfg["init_scale"]
        self.F = self._enter("F", self._t(rng.standard_normal((K, s, d)) * scale * math.sqrt(problem.E_H / d)))
        if problem.fixed:
            self.W = self._t(problem.fixed_classifier)
            self.L_F = self.curvature * _spectral_sq(self.W)
        else:
            self.W = self._enter("W", self._t(rng.standard_normal((K, d)) * scale * math.sqrt(problem.E_W / d)))
        self.batch = max(1, round(cfg["batch_fraction"] * K * s))   # sample vectors drawn per step
        self.sampler = np.random.default_rng([*seed, 1]) if self.batch < K * s else None

    def _t(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        """Iterate until the relative step is ≤ tol or the step limit; stop early, keeping the
        last finite iterate, if the iterate becomes non-finite (a step far too large)."""
        cfg = self.cfg
        records: dict[str, list] = {}
        snapshots, record_iterations = [], []
        iterations, message = cfg["steps"], f"reached the step limit (steps={cfg['steps']})"
        start_value = self._objective()
        for t in range(cfg["steps"]):
            Z = self.F @ self.W.T                             # (K, s, K) logits
            G = self._logit_grad(Z)                           # dL/dz per feature vector
            if _recorded(t, cfg["record_every"]):
                record_iterations.append(t)
                self._record(Z, G, records, snapshots)
                if cfg["stop_angle"] is not None:  # set only with a reference (checked by the solver)
                    reached = max(records["angle_mean"][-1], records["sample_angle_mean"][-1])
                if cfg["stop_angle"] is not None and reached <= cfg["stop_angle"]:
                    iterations = t
                    message = (f"reached a mean angle {reached:.2e} <= stop_angle={cfg['stop_angle']:g} to the "
                               f"optimum (class means and samples) after {t} steps")
                    break
            last = (self.F, self.W, self.moments.copy())
            try:
                change = self._step(G)
            except (RuntimeError, FloatingPointError):        # e.g. an SVD of non-finite values
                change = float("nan")
            if not (np.isfinite(change) and bool(torch.isfinite(self.F).all()) and bool(torch.isfinite(self.W).all())):
                self.F, self.W, self.moments = last
                iterations = t
                message = (f"diverged at step {t + 1}: the step overflowed (the step size, lr = {self.lr:g}, is "
                           "too large); returned the last finite iterate")
                break
            if change <= cfg["tol"]:
                iterations = t + 1
                message = f"converged: relative step {change:.2e} <= tol={cfg['tol']:g} after {t + 1} steps"
                break
        if not record_iterations or record_iterations[-1] != iterations:
            Z = self.F @ self.W.T                             # the returned iterate is always recorded
            record_iterations.append(iterations)
            self._record(Z, self._logit_grad(Z), records, snapshots)
        end_value = self._objective()
        if not message.startswith("diverged") and end_value > start_value * (1 + 1e-9) + 1e-12:
            message = (f"diverged: the objective rose from {start_value:.6g} to {end_value:.6g} (the step size, "
                       f"lr = {self.lr:g}, is too large); " + message)
        F = self.F.detach().to("cpu", torch.float64).numpy()
        W = self.W.detach().to("cpu", torch.float64).numpy()
        F, W = _make_feasible(self.problem, F, W)
        return dict(F=F, W=W, iterations=iterations, message=message, records=records,
                    snapshots=snapshots, record_iterations=record_iterations)

    def _objective(self) -> float:
        return float((self.weight.view(-1, 1) * self._values(self.F @ self.W.T)).sum())

    def _record(self, Z, G, records: dict, snapshots: list) -> None:
        records.setdefault("loss", []).append(float((self.weight.view(-1, 1) * self._values(Z)).sum()))
        if self.reference is not None:
            for key, value in _angles_to(self.F, self.reference).items():
                records.setdefault(key, []).append(value)
        elif self.problem.fixed:
            snapshots.append(self.F.detach().to("cpu", torch.float64).numpy().copy())
        if self.cfg["record_gradients"]:
            # ∇_{w_j} f = Σ_{k,i} (p_k/s) G[k,i,j] h_{k,i}: pull from class j itself, push from the others
            A = G * self.weight
            total = torch.einsum("ksj,ksd->jd", A, self.F)
            pull = torch.einsum("ksj,ksd->jd", A * self.onehot, self.F)
            minority = torch.as_tensor(self.problem.minority, device=self.device)
            records.setdefault("pull_norm", []).append(float(pull[minority].norm(dim=1).mean()))
            records.setdefault("push_norm", []).append(float((total - pull)[minority].norm(dim=1).mean()))

    # ------------------------------------------------------------------ losses
    def _values(self, Z) -> torch.Tensor:
        """Per-vector loss of the problem (K, s)."""
        return self.loss.torch_value(Z, self.labels, self.problem.dr_target)

    def _logit_grad(self, Z) -> torch.Tensor:
        """dL/dz (K, s, K) of the optimised loss (the released DR surrogate when asked)."""
        if self.cfg["dr_variant"] != "released":
            return self.loss.torch_grad(Z, self.labels, self.problem.dr_target)
        zy = (Z * self.onehot).sum(-1)
        residual = released_dr_logit_grad(zy, self.F.norm(dim=-1).clamp_min(1e-30), self.W.norm(dim=-1).view(-1, 1))
        return residual.unsqueeze(-1) * self.onehot

    # ------------------------------------------------------------------ steps
    def _step(self, G) -> float:
        """One simultaneous update of both blocks; returns the largest relative change."""
        c = self.curvature
        if self.sampler is not None:  # stochastic: only a random minibatch of the sample vectors moves
            chosen = self.sampler.choice(G.shape[0] * G.shape[1], size=self.batch, replace=False)
            mask = torch.zeros(G.shape[0] * G.shape[1], dtype=G.dtype, device=G.device)
            mask[torch.as_tensor(chosen, device=G.device)] = G.shape[0] * G.shape[1] / self.batch  # unbiased for W
            G = G * mask.view(G.shape[0], G.shape[1], 1)
        u_F = G @ self.W                                      # (K, s, d) per-sample loss gradients
        if self.sampler is not None:
            u_F = u_F * (self.batch / (G.shape[0] * G.shape[1]))  # an unchosen vector stays, a chosen one moves once
        if self.problem.fixed:
            change_W, new_W = 0.0, self.W
        else:
            g_W = torch.einsum("ksj,ksd->jd", G * self.weight, self.F)
            L_W = c * max(_spectral_sq((self.weight.sqrt() * self.F).flatten(0, 1)), 1e-3 * self.problem.E_H)
            new_W = self._move("W", self.W, g_W, L_W, self.problem.E_W)
            change_W = float((new_W - self.W).norm() / self.W.norm().clamp_min(1e-300))
        L_F = self.L_F if self.problem.fixed else c * max(_spectral_sq(self.W), 1e-3 * self.problem.E_W)
        new_F = self._move("F", self.F, u_F, L_F, self.problem.E_H)
        change_F = float((new_F - self.F).norm() / self.F.norm().clamp_min(1e-300))
        self.F, self.W = new_F, new_W
        return max(change_F, change_W)

    def _move(self, block: str, X, U, curvature: float, budget: float):
        """x ← P(x − η u) (projected) or x ← R(x − η·tangent(u)) (riemannian).

        For the class-average sphere the sample metric weighs class k by p_k, so
        the sphere bends like 1/p_k along minority directions and a separate
        tangent step overshoots them; there SGD takes x ← R(x − η u) with R the
        nearest point of the sphere in that metric, which removes the normal part
        of u and shares the fixed points (KKT points) of the tangent step.
        """
        if self.adam and self.riemannian:
            U, eta = self._adam(block, self._tangent(block, X, U)), self.lr * math.sqrt(budget)
        elif self.adam:
            pinned = self._pinned(block, X, U)
            U = self._adam(block, torch.where(pinned, self._tangent(block, X, U), U))
            U, eta = torch.where(pinned, self._tangent(block, X, U), U), self.lr * math.sqrt(budget)
        elif self.riemannian and (block == "W" or self._per_sample(block)):
            # On a sphere of radius r the Riemannian Hessian adds −(⟨u, x⟩/r²)·I to the Euclidean
            # one, so the 1/L step bounds L + |⟨u, x⟩|/r² (else small budgets oscillate)
            dims = -1 if self._per_sample(block) else tuple(range(X.dim()))
            radial = float(((X * U).sum(dims).abs() / (X * X).sum(dims).clamp_min(1e-300)).max())
            U, eta = self._tangent(block, X, U), self.lr / (curvature + radial)
        else:
            eta = self.lr / curvature
        Y = X - eta * U
        if not bool(torch.isfinite(Y.norm())):  # the step overflowed: no projection can repair that
            raise FloatingPointError(f"non-finite step in block {block}")
        return self._retract(block, Y) if self.riemannian else self._project(block, Y)

    def _adam(self, block: str, U):
        b1, b2, eps = _ADAM
        m, v, n = self.moments.get(block, (torch.zeros_like(U), torch.zeros_like(U), 0))
        m, v, n = b1 * m + (1 - b1) * U, b2 * v + (1 - b2) * U * U, n + 1
        self.moments[block] = (m, v, n)
        return (m / (1 - b1**n)) / ((v / (1 - b2**n)).sqrt() + eps)

    # ------------------------------------------------------------------ constraint sets
    def _enter(self, block: str, X):
        return self._retract(block, X) if self.riemannian else self._project(block, X)

    def _per_sample(self, block: str) -> bool:
        return block == "F" and self.problem.budget == "per-sample"

    def _project(self, block: str, Y):
        """Nearest feasible point in the sample metric (Euclidean over all N samples)."""
        if self._per_sample(block):
            radius = math.sqrt(self.problem.E_H)
            return Y * (radius / Y.norm(dim=-1, keepdim=True).clamp_min(1e-300)).clamp(max=1.0)
        if block == "W":
            radius = math.sqrt(self.problem.K * self.problem.E_W)
            return Y * min(1.0, radius / max(float(Y.norm()), 1e-300))
        if float((Y * Y).sum()) <= self.capacity:
            return Y
        return self._to_class_average_sphere(Y)

    def _to_class_average_sphere(self, Y):
        """Nearest point of Σ‖h‖² = K s E_H in the sample metric: y_k · p_k/(p_k + λ)."""
        sq = (Y * Y).sum(dim=(1, 2))                          # (K,) Σ_i ‖y_{k,i}‖²
        p = self.p.view(-1)
        lam = _budget_multiplier(sq.cpu().double().numpy(), p.cpu().double().numpy(), self.capacity)
        return Y * (p / (p + lam)).view(-1, 1, 1)

    def _tangent(self, block: str, X, U):
        """Tangent part of U at X on the budget sphere, in the sample metric."""
        if self._per_sample(block):
            return U - (X * U).sum(-1, keepdim=True) / (X * X).sum(-1, keepdim=True) * X
        if block == "W":
            return U - (X * U).sum() / (X * X).sum() * X
        normal = X / self.p                                   # metric normal D⁻¹x with D ∝ p_k
        return U - (X * U).sum() / (X * normal).sum() * normal

    def _pinned(self, block: str, X, U):
        """Where the budget is active and −U points outward (per row, or the whole block).

        There projected Adam uses tangent parts only, before and after its
        per-coordinate rescaling: the rescaling would otherwise turn the normal
        part of the gradient sideways and the projection would drag the iterate
        off a KKT point (towards the corners of the cube). With this a KKT point
        is a fixed point of projected Adam.
        """
        if self._per_sample(block):
            radius = math.sqrt(self.problem.E_H)
            active = X.norm(dim=-1, keepdim=True) >= radius * (1 - 1e-9)
            return active & ((X * U).sum(-1, keepdim=True) < 0)
        radius = math.sqrt(self.problem.K * self.problem.E_W) if block == "W" else math.sqrt(self.capacity)
        pinned = float(X.norm()) >= radius * (1 - 1e-9) and float((X * U).sum()) < 0
        return torch.tensor(pinned, device=X.device)

    def _retract(self, block: str, Y):
        if self._per_sample(block):
            return Y * (math.sqrt(self.problem.E_H) / Y.norm(dim=-1, keepdim=True))
        if block == "W":
            return Y * (math.sqrt(self.problem.K * self.problem.E_W) / Y.norm())
        return self._to_class_average_sphere(Y)


def _recorded(t: int, every) -> bool:
    """Whether step t is recorded: every ``every`` steps, or with ``"log"`` every step up to 200
    and then every ⌊t/200⌋ steps (a 0.5 % resolution on a log scale, at a few hundred records a decade)."""
    if every == "log":
        return t < 200 or t % (t // 200) == 0
    return t % every == 0


def _angles_to(F, reference) -> dict[str, float]:
    """Angles between the class means of F (K, s, d) and the reference means (K, d): the largest
    (``angle``) and the mean over classes (``angle_mean``), in radians, a zero mean counting as
    π/2; the same for every feature vector h_{k,i} against its class's reference mean
    (``sample_angle``, ``sample_angle_mean``: the per-sample angle of theory.md §12, which
    averaging over the s vectors of a class does not shrink); and ‖F − F*‖_F/‖F*‖_F with every
    sample of class k at its reference mean (``distance``)."""
    unit = reference / reference.norm(dim=1, keepdim=True)

    def angles(V):                                                     # (K, ..., d) against unit[k]
        u = unit.view(unit.shape[0], *([1] * (V.dim() - 2)), unit.shape[1])
        along = (V * u).sum(dim=-1)
        across = (V - along[..., None] * u).norm(dim=-1)
        return torch.where(V.norm(dim=-1) > 0, torch.atan2(across, along), torch.full_like(along, math.pi / 2))

    angle, sample = angles(F.mean(dim=1)), angles(F)
    distance = (F - reference[:, None, :]).norm() / (reference.norm() * math.sqrt(F.shape[1]))
    return {"angle": float(angle.max()), "angle_mean": float(angle.mean()), "sample_angle": float(sample.max()),
            "sample_angle_mean": float(sample.mean()), "distance": float(distance)}


def _spectral_sq(A) -> float:
    return float(torch.linalg.matrix_norm(A, ord=2)) ** 2


def _budget_multiplier(sq: np.ndarray, p: np.ndarray, capacity: float) -> float:
    """λ > −min p_k with q(λ) = Σ_k sq_k p_k²/(p_k + λ)² = capacity.

    Newton on ψ(λ) = q(λ)^{-1/2} − capacity^{-1/2}, concave and increasing (the
    trust-region secular equation), so it converges monotonically once left of
    the root; a step out of the domain is replaced by bisection towards its edge.
    """
    keep = sq > 0
    sq, p = sq[keep], p[keep]
    lam, floor = 0.0, -float(p.min())
    target = capacity ** -0.5
    for _ in range(100):
        a2 = (p / (p + lam)) ** 2
        q = float(sq @ a2)
        psi = q ** -0.5 - target
        if abs(psi) <= 1e-14 * target:
            break
        slope = q ** -1.5 * float(sq @ (a2 / (p + lam)))
        new = lam - psi / slope
        lam = new if new > floor else 0.5 * (lam + floor)
    return lam


def _make_feasible(problem: Problem, F: np.ndarray, W: np.ndarray):
    """Undo rounding in float64 so the returned point satisfies both budgets."""
    if problem.budget == "per-sample":
        norms = np.linalg.norm(F, axis=-1, keepdims=True)
        F = F * np.minimum(1.0, np.sqrt(problem.E_H) / np.maximum(norms, 1e-300))
    else:
        F = F * min(1.0, np.sqrt(F.shape[0] * F.shape[1] * problem.E_H) / max(np.linalg.norm(F), 1e-300))
    if not problem.fixed:
        W = W * min(1.0, np.sqrt(problem.K * problem.E_W) / max(np.linalg.norm(W), 1e-300))
    return F, W
