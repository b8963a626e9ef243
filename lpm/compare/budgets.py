"""The LPM that matches a deep run, and how its budgets E_W, E_H are chosen (theory.md §4, §5).

The problem has exactly the run's class counts n_k, K, feature dimension d,
head (fixed heads with the run's seed, so the LPM's fixed W is the run's W)
and loss, with the feature-budget form of the paper for that head
(class-average [F21] for learnable, per-sample [Y22] for fixed heads).

The reference objective (:func:`reference_for_run`, theory.md §14.8) is the
one the run's last epoch trained: its loss with the hyperparameters of its
config.json (``tau``, ``gamma``, ``margin``; unset = the published default),
its class weights (scheme and β) when they are in force in the last epoch
(with deferred re-weighting: on once ``drw_epoch`` < epochs, off otherwise),
and its sampler as the equivalent re-weighting: the last epoch's
class-sampling probabilities q (``Problem.sampling``; class-balanced q = 1/K,
square-root, progressive at its last epoch), so the objective's weights are
q_k ω_k normalised. Second stages: ``crt`` trains a fresh classifier with CE
and class-balanced sampling on the parent's frozen features, so its reference
is that objective (the LPM's features are free: it is the geometry CE with
class-balanced re-sampling reaches when the features train too); the post-hoc
stages (``tau-norm``, ``logit-adjust``) train nothing, so their reference is
the parent's objective, which their config.json keeps.

E_W and E_H are not observable in a network. Rules (``rule=``):

``norms`` (default): the smallest budgets under which the run's own final
(W, class means μ_k) is a feasible point of the LPM, so the LPM optimum can
only beat the run:

    E_W = (1/K) Σ_k ‖w_k‖²            (every head; 1 for the unit-row ETF head),
    E_H = (1/K) Σ_k ‖μ_k‖²            (class-average budget),
    E_H = max_k ‖μ_k‖²                (per-sample budget),
    E_H = 1   when a fixed head ℓ2-normalises every feature (theory.md §6.3).

For a learnable classifier only the product P = E_W·E_H shapes the optimum,
which is min f(Z) over ‖Z‖_* ≤ K·sqrt(P) (theory.md §4.2). The next two rules
keep E_W and choose P (learnable heads; fixed heads keep ``norms``):

``logits``: the tightest P under which the run's class-mean logits
Z = M Wᵀ (M: K×d class means) are feasible, P = (‖M Wᵀ‖_* / K)² ≤ the
``norms`` product; it ignores feature energy that W does not turn into
logits, such as the large global mean of ReLU features.

``loss`` (CE): the P at which the LPM optimum's loss equals the run's own
class-mean loss f(Z_run), i.e. the LPM "trained as far as the run". The
optimal value v(P) decreases in P and v(P_logits) ≤ f(Z_run), so P ≤ P_logits.
With the class-average budget v is convex in ρ = K·sqrt(P), and every
certified solve at ρ_n (point Z_n, G_n = ∇f(Z_n), g_n = ‖G_n‖₂) brackets
the root ρ* rigorously: the Frank–Wolfe bound v(ρ) ≥ f(Z_n) − ⟨G_n, Z_n⟩ −
ρ g_n holds for every ρ, so ρ* ≥ (f(Z_n) − ⟨G_n, Z_n⟩ − f(Z_run)) / g_n;
and s·Z_n is feasible at ρ = s‖Z_n‖_*, so ρ* ≤ s‖Z_n‖_* for any s with
f(s·Z_n) ≤ f(Z_run). The next solve is at the lower end (a Newton step on v,
quadratically convergent), and the search stops when the solved P is within
1 % of both ends. The first radius is an uncertified estimate: the same Newton
search on the bucketed problem (classes merged into ≤ 64 groups of nearby
log-count, solved by the grouped engine in O(64³) per iteration), which lands
within a fraction of 1 % of the root on long-tailed counts, so one or two
certified solves suffice (K = 1000, R = 256: one, where a start at half the
logits radius took four). The estimate only chooses where the search starts;
the answer is certified as before. g_n is the rigorous upper bound of
:func:`lpm.core.certificates._spectral_norm` (a larger divisor keeps the lower
end valid) and ‖Z_n‖_* comes from the solution's factors, so the search adds
no K×K SVD. The per-sample budget (no nuclear form) bisects in log P to 1 %
instead (each step a certified solve).
Well-trained runs have large ``norms`` products where the LPM's loss is
~1e-9 and its geometry is pinned only loosely by any certificate; ``loss``
keeps the LPM in the regime the run actually reached.

``weight-decay`` (learnable heads, theory.md §9, §13): networks trained with
weight decay are set beside the regularised model instead of the constrained
one: budget form ``weight-decay`` with the run's absolute counts, λ_W = the
run's weight decay (SGD's wd·w is the gradient of (wd/2)‖w‖² added to a
batch-mean loss: the normalisation of theory.md §9), and, unless given, λ_H
from the balance that holds at every minimiser of the model,
(λ_W/2)‖W‖²_F = (λ_H/2) Σ_k n_k ‖μ_k‖², evaluated at the run's own (W, μ).
Fixed heads keep the constrained per-sample model (``norms``): their W is
not decayed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.certificates import _spectral_norm, singular_basis
from ..core.errors import LPMInputError, check_choice, check_number
from ..core.losses import check_hyperparameters
from ..core.problem import BUDGETS, DEFAULT_BUDGET, MAX_BUDGET, MIN_BUDGET, Problem
from ..core.weighting import CLASS_WEIGHTS, check_beta
from ..core.solution import Solution
from ..core.solvers import get_solver, resolve
from ..core.solvers.factored import bucketed_problem
from ..core.solvers.grouped import Reduction, fista
from .runs import RunGeometry

BUDGET_RULES = ("norms", "logits", "loss", "weight-decay")
#: losses for which the ``loss`` rule matches the run's loss: the CE family, whose optimal value
#: falls from f(0) towards 0 as the budget grows
LOSS_RULE_LOSSES = ("ce", "la", "cdt", "ldam", "vs")
#: settings handed to a back end by :func:`solve_certified` (bounds the time a
#: nearly flat, huge-budget problem may take; its certificate still reports the gap)
SOLVER_SETTINGS = {"nuclear": {"max_iter": 20_000}}


@dataclass(frozen=True)
class Budgets:
    E_W: float
    E_H: float
    source: str  # one sentence: how they were chosen
    lambda_W: float | None = None  # the weight-decay model's coefficients (rule 'weight-decay')
    lambda_H: float | None = None
    #: the certified LPM solution at these budgets when the rule already solved it
    solution: Solution | None = field(default=None, compare=False, repr=False)


def solve_certified(problem: Problem, method: str = "auto") -> Solution:
    """Solve with a back end that certifies its answer (``auto``: the fastest one)."""
    name = resolve(problem, method, require_certificate=True).solver
    return get_solver(name, **SOLVER_SETTINGS.get(name, {})).run(problem)


@dataclass(frozen=True)
class Reference:
    """The objective of a run's LPM reference: loss, hyperparameters, class weights in force at
    the end of training and the sampler of the last epoch (module docstring)."""

    loss: str
    tau: float | None = None
    gamma: float | None = None
    margin: float | None = None
    class_weights: str = "none"
    beta: float | None = None
    sampler: str = "instance"
    sampler_epoch: int = 0   # the 0-based epoch whose sampling probabilities apply (progressive)
    epochs: int = 1
    note: str = ""           # how the run's settings became this reference (stages, DRW, samplers)

    def sampling(self, counts) -> tuple[float, ...] | None:
        """q (K,) of the sampler for ``counts``; ``None`` for instance sampling (q = π)."""
        if self.sampler == "instance":
            return None
        from full_model.sampling import class_probabilities

        return tuple(float(x) for x in class_probabilities(self.sampler, counts, self.sampler_epoch, self.epochs))

    def problem_fields(self, counts) -> dict:
        """The :class:`Problem` fields of this objective for ``counts``."""
        return {"loss": self.loss, "tau": self.tau, "gamma": self.gamma, "margin": self.margin,
                "class_weights": self.class_weights, "beta": self.beta, "sampling": self.sampling(counts)}

    @property
    def label(self) -> str:
        """Short form for tables: ``la(tau=1)``, ``ce w=class-balanced(beta=0.9999) s=class-balanced``."""
        params = {k: getattr(self, k) for k in ("tau", "gamma", "margin") if getattr(self, k) is not None}
        text = self.loss + ("(" + ", ".join(f"{k}={v:g}" for k, v in params.items()) + ")" if params else "")
        if self.class_weights != "none":
            text += f" w={self.class_weights}" + (f"(beta={self.beta:g})" if self.beta is not None else "")
        if self.sampler != "instance":
            last = f"@{self.sampler_epoch + 1}/{self.epochs}" if self.sampler == "progressive" else ""
            text += f" s={self.sampler}{last}"
        return text


def reference_for_run(run: RunGeometry) -> Reference:
    """The LPM reference objective of ``run`` (module docstring; theory.md §14.8)."""
    from full_model.config import STAGES
    from full_model.sampling import SAMPLERS

    owner = f"run {run.name}"
    check_choice("class_weights", run.class_weights, CLASS_WEIGHTS, owner=owner)
    check_choice("sampler", run.sampler, SAMPLERS, owner=owner)
    check_choice("stage", run.stage, STAGES, owner=owner)
    epochs = run.epochs if run.epochs is not None and run.epochs >= 1 else 1
    notes = []
    weights, beta = run.class_weights, run.beta
    if weights != "none" and run.drw_epoch is not None:
        if run.drw_epoch < epochs:
            notes.append(f"class weights {weights} as in force at the end of training (on after epoch "
                         f"{run.drw_epoch} of {epochs}, deferred re-weighting)")
        else:
            notes.append(f"no class weights: deferred re-weighting from epoch {run.drw_epoch + 1} never happened in "
                         f"{epochs} epochs")
            weights, beta = "none", None
    if run.sampler != "instance":
        last = f" of its last epoch ({epochs} of {epochs})" if run.sampler == "progressive" else ""
        notes.append(f"the {run.sampler} sampler{last} as the equivalent re-weighting q_k/pi_k")
    if run.stage == "crt":
        notes.insert(0, "cRT stage: the objective of its classifier re-training (features are the parent's, frozen; "
                        "the LPM trains both)")
    elif run.stage in ("tau-norm", "logit-adjust"):
        notes.insert(0, f"{run.stage} stage: the parent's objective (a post-hoc stage trains nothing)")
    try:  # the hyperparameters in force: unset ones take the published default, as in training
        params = check_hyperparameters(run.loss, tau=run.tau, gamma=run.gamma, margin=run.margin)
        beta = check_beta(weights, beta)
    except LPMInputError as exc:
        raise LPMInputError("run_dir", run.name, f"a run whose loss settings are valid ({exc})") from None
    return Reference(run.loss, params.get("tau"), params.get("gamma"), params.get("margin"), weights, beta,
                     run.sampler, epochs - 1, epochs, "; ".join(notes) or "the run's own loss")


def _base_problem(run: RunGeometry, form: str, E_W: float, E_H: float, **weight_decay) -> Problem:
    majority = run.majority if run.majority is not None and 1 <= run.majority < run.K else run.K // 2
    counts = tuple(float(c) for c in run.counts)
    return Problem(counts=counts, d=run.d, classifier=run.head, E_W=E_W, E_H=E_H, budget=form, majority=majority,
                   seed=run.head_seed, profile=run.profile, ratio=run.ratio,
                   **reference_for_run(run).problem_fields(counts), **weight_decay)


def problem_for_run(run: RunGeometry, E_W: float | None = None, E_H: float | None = None,
                    budget: str | None = None, rule: str = "norms", method: str = "auto",
                    lambda_W: float | None = None, lambda_H: float | None = None) -> tuple[Problem, Budgets]:
    """The LPM with exactly the run's counts, K, d, head (seed included) and loss, and its budgets."""
    check_options(rule, lambda_W, lambda_H)
    if rule == "weight-decay" and run.head == "learnable" and budget in (None, "weight-decay"):
        b = weight_decay_for_run(run, lambda_W, lambda_H)
        return _base_problem(run, "weight-decay", 1.0, 1.0, lambda_W=b.lambda_W, lambda_H=b.lambda_H), b
    form = DEFAULT_BUDGET[run.head] if budget is None else check_choice("budget", budget, BUDGETS[:2])
    b = budgets_for_run(run, form, E_W, E_H, "norms" if rule == "weight-decay" else rule, method)
    if rule == "weight-decay":
        b = Budgets(b.E_W, b.E_H, b.source + "; the weight-decay rule applies to learnable heads only")
    return _base_problem(run, form, b.E_W, b.E_H), b


def check_options(rule: str, lambda_W: float | None = None, lambda_H: float | None = None, E_W=None, E_H=None,
                  heads: Sequence[str] = ()) -> None:
    """Refuse options that would have no effect under ``rule``: λ_W, λ_H without the weight-decay
    rule, and E_W, E_H with it when every run (``heads``) has a learnable head (the weight-decay
    model has no norm budgets)."""
    check_choice("budget_rule", rule, BUDGET_RULES)
    if rule != "weight-decay":
        for name, value in (("lambda_W", lambda_W), ("lambda_H", lambda_H)):
            if value is not None:
                raise LPMInputError(name, value, f"given only with the 'weight-decay' budget rule (--budget-rule "
                                                 f"weight-decay); the '{rule}' rule does not read it")
    elif heads and all(h == "learnable" for h in heads):
        for name, value in (("E_W", E_W), ("E_H", E_H)):
            if value is not None:
                raise LPMInputError(name, value, "left out with the 'weight-decay' budget rule for learnable heads "
                                                 "(that model has weight decays, not norm budgets: give --lambda-W, "
                                                 "--lambda-H)")


def weight_decay_for_run(run: RunGeometry, lambda_W: float | None = None, lambda_H: float | None = None) -> Budgets:
    """λ_W, λ_H of the weight-decay model for a learnable-head ``run`` (module docstring)."""
    if lambda_W is None:
        if not run.weight_decay:
            raise LPMInputError("lambda_W", run.weight_decay, f"given: run {run.name} records no weight decay")
        lambda_W, w_text = run.weight_decay, f"lambda_W = {run.weight_decay:.4g} = the run's weight decay"
    else:
        lambda_W = check_number("lambda_W", lambda_W, low=MIN_BUDGET, high=MAX_BUDGET)
        w_text = f"lambda_W = {lambda_W:.4g} set by the user"
    if lambda_H is None:
        feature_energy = float(run.counts @ np.sum(run.means**2, axis=1))
        lambda_H = lambda_W * float(np.sum(run.W**2)) / max(feature_energy, 1e-300)
        h_text = (f"lambda_H = {lambda_H:.4g} from the optimum's balance lambda_W*||W||^2 = "
                  "lambda_H*sum_k n_k*||mu_k||^2 at the run's (W, mu)")
    else:
        lambda_H = check_number("lambda_H", lambda_H, low=MIN_BUDGET, high=MAX_BUDGET)
        h_text = f"lambda_H = {lambda_H:.4g} set by the user"
    return Budgets(1.0, 1.0, f"{w_text}; {h_text}", lambda_W, lambda_H)


def budgets_for_run(run: RunGeometry, budget: str, E_W: float | None = None, E_H: float | None = None,
                    rule: str = "norms", method: str = "auto") -> Budgets:
    """(E_W, E_H) for ``run`` under the ``budget`` form and ``rule`` (module docstring)."""
    check_choice("budget_rule", rule, BUDGET_RULES)
    if E_W is None:
        E_W = float(np.mean(np.sum(run.W**2, axis=1)))
        w_text = f"E_W = {E_W:.4g} = mean squared classifier row norm of the run"
    else:
        E_W = check_number("E_W", E_W, low=MIN_BUDGET, high=MAX_BUDGET)
        w_text = f"E_W = {E_W:.4g} set by the user"
    if E_W <= 0:
        raise LPMInputError("run_dir", run.name, "a run whose classifier is not all zero (or pass E_W)")
    if E_H is not None:
        E_H, h_text = check_number("E_H", E_H, low=MIN_BUDGET, high=MAX_BUDGET), f"E_H = {E_H:.4g} set by the user"
    elif rule == "logits" and run.head == "learnable":
        E_H, h_text = _logits_budget(run, E_W)
    elif rule == "loss" and run.head == "learnable" and run.loss in LOSS_RULE_LOSSES:
        E_H, h_text, solution = _loss_budget(run, budget, E_W, method)
        return Budgets(E_W, E_H, f"{w_text}; {h_text}", solution=solution)
    else:
        E_H, h_text = _feature_budget(run, budget)
    if not E_H > 0:
        raise LPMInputError("run_dir", run.name, "a run whose class means are not all zero (or pass E_H)")
    return Budgets(E_W, E_H, f"{w_text}; {h_text}")


def _feature_budget(run: RunGeometry, budget: str) -> tuple[float, str]:
    sq = np.sum(run.means**2, axis=1)
    if run.normalized_features:
        return 1.0, "E_H = 1 because the fixed head l2-normalises every feature"
    if budget == "per-sample":
        return float(sq.max()), f"E_H = {sq.max():.4g} = largest squared class-mean norm of the run"
    return float(sq.mean()), f"E_H = {sq.mean():.4g} = mean squared class-mean norm of the run"


def logits_product(run: RunGeometry) -> float:
    """P = (‖M Wᵀ‖_* / K)²: the tightest E_W·E_H under which the run's class-mean logits are feasible."""
    return float(np.linalg.svd(run.means @ run.W.T, compute_uv=False).sum() / run.K) ** 2


def _logits_budget(run: RunGeometry, E_W: float) -> tuple[float, str]:
    P = logits_product(run)
    return P / E_W, (f"E_H = {P / E_W:.4g} so that K*sqrt(E_W*E_H) = {run.K * np.sqrt(P):.4g} = nuclear norm of "
                     "the run's class-mean logits")


def _loss_budget(run: RunGeometry, form: str, E_W: float, method: str,
                 rel_tol: float = 0.01) -> tuple[float, str, Solution | None]:
    """E_H at which the LPM optimum's loss equals the run's class-mean loss f(Z_run) (module docstring)."""
    base = _base_problem(run, form, E_W, 1.0)
    target = base.objective(run.W, run.means)
    at_zero = base.logit_objective(np.zeros((run.K, run.K)))[0]  # v(0) = f(0): log K for CE
    if not target < at_zero - 1e-9:
        return _feature_budget(run, form)[0], (f"E_H from the norms rule, as the run's class-mean loss "
                                                f"{target:.4g} is not below its value {at_zero:.4g} at zero logits "
                                                "(no loss-matched budget)"), None
    if form == "class-average" and resolve(base, method, require_certificate=True).solver == "nuclear":
        solution = _loss_matched_solution(base, target, base.K * np.sqrt(logits_product(run)), method, rel_tol)
        E_H = solution.problem.E_H
        return E_H, (f"E_H = {E_H:.4g} so that the LPM optimum's loss equals the run's class-mean loss "
                     f"{target:.4g} (E_W*E_H = {E_W * E_H:.4g}, within 1%)"), solution

    def value(P: float) -> float:
        return solve_certified(base.replace(E_H=P / E_W), method).objective

    hi = logits_product(run)
    lo = hi / 4
    while value(lo) < target:  # v → f(0) > target as P → 0, so this ends
        hi, lo = lo, lo / 4
    while hi / lo > 1 + rel_tol:
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if value(mid) > target else (lo, mid)
    P = float(np.sqrt(lo * hi))
    return P / E_W, (f"E_H = {P / E_W:.4g} so that the LPM optimum's loss equals the run's class-mean loss "
                     f"{target:.4g} (E_W*E_H = {P:.4g}, within 1%)"), None


def _ray_upper_bound(problem: Problem, Z: np.ndarray, target: float, nuclear: float | None = None) -> float:
    """Smallest s·‖Z‖_* (to 1e-6 in s) with f(s·Z) ≤ target, or inf: an upper bound on the
    radius at which the optimal value reaches ``target`` (s·Z is feasible there).
    f(s·Z) is convex in s and f(0) > target, so {s: f(s·Z) ≤ target} is an
    interval and bisection finds its left end. ``nuclear``: ‖Z‖_* when known
    (e.g. from the factors of Z, :func:`_nuclear_norm`), else from Z's singular values."""
    def f(s: float) -> float:
        return problem.logit_objective(s * Z)[0]

    hi = 1.0
    while f(hi) > target:
        if hi > 1e6 or f(2 * hi) >= f(hi):  # past the ray's minimum, still above the target
            return np.inf
        hi *= 2
    lo = 0.0
    while hi - lo > 1e-6 * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if f(mid) <= target else (mid, hi)
    if nuclear is None:
        nuclear = float(np.linalg.svd(Z, compute_uv=False).sum())
    return hi * nuclear


def _nuclear_norm(H: np.ndarray, W: np.ndarray) -> float:
    """‖H Wᵀ‖_* from thin QRs of the factors and an r×r SVD (no K×K SVD)."""
    return float(singular_basis(H, W)[1].sum())


#: buckets of the uncertified estimate of the loss-matched radius (:func:`_radius_estimate`)
ESTIMATE_BUCKETS = 64


def _bucketed(problem: Problem, buckets: int) -> Problem:
    """``problem`` with the classes of each bucket of nearby log-count made exchangeable
    (:func:`lpm.core.solvers.factored.bucketed_problem`: counts and a sampler's probabilities
    replaced by the bucket's means, totals kept)."""
    return bucketed_problem(problem, buckets)


def _radius_estimate(base: Problem, target: float, rho_hi: float, buckets: int = ESTIMATE_BUCKETS,
                     steps: int = 12) -> float:
    """An uncertified estimate of the radius ρ* where v(ρ) = ``target``: the same Newton search on
    the bucketed problem (classes merged into ≤ ``buckets`` groups of nearby log-count,
    :func:`_bucketed`), each value from the grouped engine in O(buckets³) per iteration. Newton
    starts from the tangent at Z = 0 (ρ ≥ (f(0) − target)/‖∇f(0)‖₂) and approaches the bucketed
    root from the left. Returns a radius in (0, ``rho_hi``]; ``rho_hi``/2 if the estimate fails.
    Only the first certified solve's radius comes from here: the certified search decides
    (:func:`_loss_matched_solution`)."""
    K, E_W = base.K, base.E_W
    try:
        f0, G0 = base.logit_objective(np.zeros((K, K)))
        rho = (f0 - target) / _spectral_norm(G0)
        bucketed = _bucketed(base, buckets)
        x = None
        for _ in range(steps):
            if not 0 < rho < rho_hi:
                break
            red = Reduction([bucketed.replace(E_H=(rho / K) ** 2 / E_W)])
            (alpha, R), _, _ = fista(red, red.start() if x is None else x, 1e-6, 3000, 5)
            value, G = red.value_and_grad(alpha, R)
            spectral = max(float(np.abs(G[0]).max(initial=0.0)), float(np.linalg.svd(G[1][0], compute_uv=False)[0]))
            new = (float(value[0]) - float(red.inner((alpha, R), G)[0]) - target) / spectral
            x = (alpha * new / rho, R * new / rho)
            rho, old = new, rho
            if abs(rho - old) <= 1e-5 * old:
                break
    except (ArithmeticError, ValueError, np.linalg.LinAlgError):
        return rho_hi / 2
    return float(min(rho, rho_hi)) if np.isfinite(rho) and rho > 0 else rho_hi / 2


def _loss_matched_solution(base: Problem, target: float, rho_hi: float, method: str, rel_tol: float,
                           max_solves: int = 40, first: float | None = None) -> Solution:
    """The certified solution at the radius ρ (E_H = (ρ/K)²/E_W) whose optimal value is ``target``,
    ρ within ``rel_tol`` in P of the root (module docstring: Frank–Wolfe lower end, ray upper end).

    The first radius is ``first``, or else :func:`_radius_estimate` (uncertified; it only decides
    where the search starts). Every solve is certified and brackets the root:

    * lower end (v(ρ) ≥ c − ρ‖G‖₂ with c = f(Z) − ⟨G, Z⟩):
      ρ* ≥ (c − target)/ĝ for any ĝ ≥ ‖G‖₂ once c > target (dividing a positive number by a
      larger one gives a smaller, still valid lower end; a negative one never raises the lower
      end above 0), so the rigorous upper bound ĝ of :func:`lpm.core.certificates._spectral_norm`
      replaces the dense SVD;
    * upper end: the ray s·Z (:func:`_ray_upper_bound`), ‖Z‖_* from the solution's factors."""
    K, E_W = base.K, base.E_W
    lower, upper = 0.0, rho_hi  # v(rho_hi) <= target: the run's own logits are feasible there
    rho = _radius_estimate(base, target, rho_hi) if first is None else first
    for _ in range(max_solves):
        solution = solve_certified(base.replace(E_H=(rho / K) ** 2 / E_W), method)
        Z = solution.H @ solution.W.T
        value, G = base.logit_objective(Z)
        g = _spectral_norm(G)  # ≥ ‖G‖₂
        if g > 0:
            lower = max(lower, (value - float(np.sum(G * Z)) - target) / g)
        upper = min(upper, _ray_upper_bound(base, Z, target, _nuclear_norm(solution.H, solution.W)))
        if lower > 0 and (max(upper, rho) / min(lower, rho)) ** 2 <= 1 + rel_tol:
            return solution
        rho = lower if lower > upper / 4 else float(np.sqrt(max(lower, upper / 16) * upper))
    raise RuntimeError(f"the loss-matched budget did not converge in {max_solves} solves "
                       f"(bracket [{lower:.6g}, {upper:.6g}] for the nuclear radius)")
