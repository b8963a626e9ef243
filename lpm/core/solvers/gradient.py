"""Gradient back end: torch, non-convex, on per-sample features (theory.md §4–§6).

Variables. Class k gets s = ``samples_per_class`` feature vectors h_{k,i}
(F, shape K×s×d), each weighted p_k/s, so that

    f(W, F) = Σ_k (p_k/s) Σ_i L(W h_{k,i}, k)

is the per-sample LPM objective (1/N) Σ_k Σ_i L(W h_{k,i}, k) when each vector
stands for n_k/s samples (only proportions enter). For ``learnable`` problems
the classifier W (K×d) is a variable; otherwise W = ``problem.fixed_classifier``.

Constraints. ‖W‖_F² ≤ K·E_W, and for the features ‖h_{k,i}‖² ≤ E_H
(``per-sample``) or (1/(K s)) Σ_{k,i} ‖h_{k,i}‖² ≤ E_H (``class-average``).

Metric. A gradient step of the per-sample LPM moves every sample by the
gradient of its own loss, and the samples one vector stands for move together.
So a feature vector moves along u = ∇_h L(W h, k) = ∇_h f / (p_k/s), and
projections and tangent spaces use the same metric (Euclidean in the space of
all N samples): the class-average projection is y ↦ y·p_k/(p_k + λ), λ ≥ 0
fixing the budget. Class counts then do not slow down minority features; with
a fixed classifier and per-sample budget every sample evolves on its own, as
Theorem 1 of [Y22] says it should. W follows the Euclidean gradient ∇_W f.

Methods. ``projected``: x ← P(x − η u). ``riemannian``: the budget holds
with equality (a sphere, or a product of spheres for per-sample budgets);
u is replaced by its tangent part and x ← x − η u is retracted by rescaling
(for the class-average sphere see :meth:`Descent._move`). Both stop when the
relative change of the iterate (the projected-gradient mapping) is ≤ ``tol``.
DR's minimiser has zero gradient on the budget sphere, where the loss grows
like θ⁴ in the angle θ, so every first-order method approaches it at rate
θ_t ~ t^{-1/2} there; CE converges linearly.
Optimisers. ``gd`` (full-batch gradient descent): η = lr / L per block, with
L = c‖W‖₂² for features and L = c·λ_max(Σ_r w_r h_r h_rᵀ) for the
classifier, c the logit curvature bound of the loss
(:meth:`lpm.core.losses.Loss.curvature`: ½ for CE, 1/sqrt(E_W E_H) for DR, 1
for unscaled DR and MSE; 1/sqrt(E_H) for the released surrogate); lr is
dimensionless, lr < 2 is stable for the smooth part; a Riemannian step also
bounds the sphere's curvature |⟨u, x⟩|/‖x‖². ``adam``: Adam moments of u;
step lr × budget radius (sqrt(E_H) for features, sqrt(E_W) for W). Default
lr: 1 (gd), 0.01 (adam). ``batch_fraction`` < 1 makes either stochastic
(SGD): each step moves a random minibatch of that fraction of the sample
vectors (the classifier's gradient rescaled to stay unbiased).

Recording. ``record_every`` steps (or ``"log"``: every step up to 200, then
every t/200 steps), and at the returned iterate, the loss is recorded and, for fixed classifiers, the
largest and the mean angle of the class means to the optimum and the
distance to it (measured as the run goes where the optimum has a closed
form), and the same two angles for every feature vector h_{k,i} against its class's optimal
mean (``sample_angle``, ``sample_angle_mean``). ``stop_angle`` stops the run once both mean
angles (class means and samples) are below it (used to
count iterations to a target angle, e.g. the convergence map of
theory.md §10.8).

``dr_variant="released"`` optimises the surrogate of [Y22]'s code (theory.md
§6.1), ½‖w_y‖²‖h‖(cos θ − 1)² with detached norms, whose gradient in h is
‖w_y‖(cos θ − 1)·w_y. The objective and certificate always use the problem's
own loss.
"""
from __future__ import annotations

import numpy as np

from ..certificates import fixed_classifier_certificate
from ..errors import LPMInputError, check_choice, check_number
from ..losses import DR_VARIANTS
from ..problem import Problem
from ..solution import Certificate, Solution, Status, Trajectory
from .registry import REGISTRY, Solver, certified_optimum, register

__all__ = ["GradientSolver"]

_CHOICES = {"optimizer": ("gd", "adam"), "method": ("projected", "riemannian"),
            "dtype": ("float64", "float32"), "dr_variant": DR_VARIANTS}
_INTS = {"steps": 1, "restarts": 1, "samples_per_class": 1, "seed": 0}


@register
class GradientSolver(Solver):
    """Projected or Riemannian gradient descent (GD, SGD or Adam) with restarts.

    Returns the best restart by objective. The certificate is a Frank–Wolfe
    lower bound for fixed classifiers and, for learnable ones, the lower bound
    of a certifying back end (``certified_optimum``) when one applies.
    """

    name = "gradient"
    certifies = False
    speed_rank = 50

    @classmethod
    def supports(cls, problem: Problem) -> str | None:
        if problem.regularised:
            return "weight decay is solved by the certified back ends ('nuclear', 'convex', 'analytic')"
        if problem.budget == "max-margin":
            return "the max-margin limit is solved by the certified back ends ('analytic', 'convex')"
        return None

    def __init__(self, **settings):
        super().__init__(**settings)
        self.settings = _validate(self.settings, owner=f"solver '{self.name}'")

    @classmethod
    def default_settings(cls) -> dict:
        return dict(steps=3000, lr=None, optimizer="gd", method="projected", restarts=1, batch_fraction=1.0,
                    samples_per_class=4, init_scale=1.0, record_every=10, seed=0, device="cpu",
                    dtype="float64", dr_variant="paper", record_gradients=False, tol=1e-12,
                    certify=True, gap_tol=1e-6, stop_angle=None)

    def _run(self, problem: Problem) -> Solution:
        from .descent import Descent  # imports torch (≈2.5 s): only gradient runs need it

        cfg = self.settings
        if cfg["dr_variant"] == "released" and not problem.loss.startswith("dr"):
            raise LPMInputError("dr_variant", "released", f"'paper' for the loss '{problem.loss}' (the released "
                                "surrogate is a DR form, theory.md §6.1)", owner=f"solver '{self.name}'")
        reference = self._reference(problem)
        if cfg["stop_angle"] is not None and reference is None:
            raise LPMInputError("stop_angle", cfg["stop_angle"], "left unset unless the optimum has a closed form "
                                "(fixed-etf with ce or dr), which the angle is measured to", owner=f"solver '{self.name}'")
        best = None
        for restart in range(cfg["restarts"]):
            run = Descent(problem, cfg, seed=(cfg["seed"], restart), reference=reference).run()
            run["objective"] = _objective(problem, run["F"], run["W"])
            if best is None or run["objective"] < best["objective"]:
                best = {**run, "restart": restart}
        return self._solution(problem, best)

    @staticmethod
    def _reference(problem: Problem) -> np.ndarray | None:
        """The closed-form optimal class means, where the analytic back end applies."""
        analytic = REGISTRY["analytic"]()
        return analytic.run(problem).H if problem.fixed and analytic.supports(problem) is None else None

    def _solution(self, problem: Problem, run: dict) -> Solution:
        K, s, d = run["F"].shape
        features = run["F"].reshape(K * s, d)
        labels = np.repeat(np.arange(K), s)
        H = run["F"].mean(axis=1)
        certificate, extra = self._certificate(problem, H, run["W"], run["objective"])
        trajectory = _trajectory(problem, run, extra)
        gap_ok = certificate.relative_gap is not None and certificate.relative_gap <= self.settings["gap_tol"]
        extra.update(restart=run["restart"], settings=dict(self.settings))
        message = run["message"]
        if self.settings["restarts"] > 1:
            message += f" (best of {self.settings['restarts']} restarts: restart {run['restart']})"
        return Solution(problem=problem, W=run["W"], H=H, objective=run["objective"], solver=self.name,
                        status=Status.OPTIMAL if gap_ok else Status.STOPPED, certificate=certificate,
                        features=features, labels=labels, iterations=run["iterations"],
                        message=message, trajectory=trajectory, extra=extra)

    def _certificate(self, problem: Problem, H: np.ndarray, W: np.ndarray, objective: float):
        if problem.fixed:
            # Jensen: L(W·, k) is convex, so the per-sample objective is at least the
            # class-mean objective at the (feasible) class means, and both problems
            # share their optimum (replicate the optimal means). A lower bound of the
            # class-mean problem therefore bounds the per-sample one.
            fw = fixed_classifier_certificate(problem, H, W)
            return (Certificate(lower_bound=fw.lower_bound, gap=objective - fw.lower_bound,
                                kkt_residual=fw.kkt_residual, method="frank-wolfe on class means"), {})
        if not self.settings["certify"]:
            return Certificate(), {}
        reference = certified_optimum(problem)
        if reference is None or reference.certificate.lower_bound is None:
            return Certificate(), {}
        lower = float(reference.certificate.lower_bound)
        extra = {"reference_solver": reference.solver, "reference_objective": float(reference.objective)}
        return Certificate(lower_bound=lower, gap=objective - lower, method=f"bound of '{reference.solver}'"), extra


def _objective(problem: Problem, F: np.ndarray, W: np.ndarray) -> float:
    """Per-sample objective Σ_k (p_k/s) Σ_i L(W h_{k,i}, k), in float64."""
    K, s, d = F.shape
    values, _ = problem.loss_fn.value_grad(F.reshape(K * s, d) @ W.T, np.repeat(np.arange(K), s),
                                           problem.dr_target)
    return float(np.repeat(problem.weights / s, s) @ values)


def _trajectory(problem: Problem, run: dict, extra: dict) -> Trajectory:
    """Loss (and pull/push) as recorded; angle and distance for fixed classifiers.

    The reference point is the closed-form optimum where ``analytic`` applies
    (fixed-etf with CE or DR; measured as the run went); otherwise the final
    iterate of this run. ``extra["trajectory_reference"]`` says which.
    """
    traj = Trajectory()
    values = dict(run["records"])
    if "angle" in values:
        extra["trajectory_reference"] = "analytic"
    elif problem.fixed and run["snapshots"]:
        extra["trajectory_reference"] = "final-iterate"
        values.update(trajectory_geometry(run["snapshots"], run["F"]))
    for j, it in enumerate(run["record_iterations"]):
        traj.record(it, **{key: v[j] for key, v in values.items()})
    return traj


def _validate(cfg: dict, owner: str) -> dict:
    cfg = dict(cfg)
    for key, choices in _CHOICES.items():
        check_choice(key, cfg[key], choices, owner)
    for key, low in _INTS.items():
        cfg[key] = check_number(key, cfg[key], low=low, integer=True, owner=owner)
    for key in ("init_scale", "gap_tol"):
        cfg[key] = check_number(key, cfg[key], low=0, low_open=True, owner=owner)
    cfg["batch_fraction"] = check_number("batch_fraction", cfg["batch_fraction"], low=0, high=1, low_open=True,
                                         owner=owner)
    cfg["tol"] = check_number("tol", cfg["tol"], low=0, owner=owner)
    if cfg["lr"] is not None:
        cfg["lr"] = check_number("lr", cfg["lr"], low=0, low_open=True, owner=owner)
    if cfg["record_every"] != "log":
        try:
            cfg["record_every"] = check_number("record_every", cfg["record_every"], low=1, integer=True, owner=owner)
        except LPMInputError:
            raise LPMInputError("record_every", cfg["record_every"], "an int >= 1, or 'log' (every step up to 200, "
                                "then every t/200 steps)", owner) from None
    if cfg["stop_angle"] is not None:
        cfg["stop_angle"] = check_number("stop_angle", cfg["stop_angle"], low=0, low_open=True, owner=owner)
    for key in ("record_gradients", "certify"):
        if not isinstance(cfg[key], bool):
            raise LPMInputError(key, cfg[key], "True or False", owner)
    cfg["device"] = _check_device(cfg["device"], owner)
    return cfg


def _check_device(device, owner: str) -> str:
    import torch  # ≈2.5 s to import: checked only when a gradient solver is built

    allowed = "a torch device available here ('cpu'" + (", 'cuda'" if torch.cuda.is_available() else "") + ")"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LPMInputError("device", device, allowed, owner) from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise LPMInputError("device", device, allowed, owner)
    if dev.type not in ("cpu", "cuda"):
        raise LPMInputError("device", device, allowed, owner)
    return str(dev)


def trajectory_geometry(snapshots: list[np.ndarray], F_ref: np.ndarray) -> dict[str, list[float]]:
    """Per snapshot: the largest and the mean over classes of angle(h̄_k, h̄*_k) in radians
    (``angle``, ``angle_mean``) and ‖F − F*‖_F/‖F*‖_F (``distance``). A zero class mean counts
    as π/2 from every direction."""
    F = np.stack(snapshots)                                   # (T, K, s, d)
    H, ref = F.mean(axis=2), F_ref.mean(axis=1)               # (T, K, d), (K, d)
    unit = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    along = np.einsum("tkd,kd->tk", H, unit)
    across = np.linalg.norm(H - along[..., None] * unit, axis=-1)
    angle = np.where(np.linalg.norm(H, axis=-1) > 0, np.arctan2(across, along), np.pi / 2)
    distance = np.linalg.norm((F - F_ref).reshape(len(F), -1), axis=1) / np.linalg.norm(F_ref)
    return {"angle": angle.max(axis=1).tolist(), "angle_mean": angle.mean(axis=1).tolist(),
            "distance": distance.tolist()}
