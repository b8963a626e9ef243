"""The nuclear-norm programs with many distinct class counts: Burer–Monteiro
factors and Riemannian trust-region Newton.

The two convex programs of the learnable LPM over a K×K logit matrix (row k
= logits of class mean k, labels y = 0…K−1, p_k the class proportions):

* the nuclear BALL of the class-average budgets (theory.md §4.2)

      min_Z  f(Z) = Σ_k p_k L(Z[k], k)     s.t.  ‖Z‖_* ≤ ρ = K·sqrt(E_W E_H);

* the nuclear PENALTY of weight decay (theory.md §9.1; Y = D^{1/2} Z, D = diag n_k)

      min_Y  F(Y) = Σ_k p_k L(c_k Y[k], k) + μ‖Y‖_*,   c_k = n_k^{-1/2},  μ = sqrt(λ_W λ_H).

:mod:`lpm.core.solvers.grouped` solves both in the subspace that the symmetry
between equal-count classes leaves invariant, at O(m³) per iteration for m
distinct counts. With many distinct counts (an exponential profile has m =
K) that is a K×K SVD per iteration and hundreds of thousands of
iterations; this engine takes over there (the dispatch rule is
:func:`grouped_is_cheaper`, used by :class:`lpm.core.solvers.nuclear.NuclearSolver`).

Method: factors Z = H Wᵀ of rank r (:class:`_Factored`), Riemannian
trust-region Newton with exact Hessian-vector products (:func:`_trust_region`,
:func:`_steihaug`), warm-started from a bucketed grouped solve, the rank
grown along Frank–Wolfe directions until the exact certificate of
:mod:`lpm.core.certificates` holds (:func:`_polish`). The nuclear solver
passes its own certificate: it recovers (W, H) from the factors (thin QR and
an r×r SVD, no K×K SVD) and certifies that point, once per check, so
nothing here has to be trusted.

Back ends (:mod:`lpm.core.solvers.backends`): the same code runs on NumPy
arrays or on torch tensors (CPU or CUDA); the loss enters only through the
registry's :class:`lpm.core.losses.Loss` methods.

Why it looks the way it does (learnable CE, exp profile R = 100, E_W = 1,
E_H = 5; Hessian products = HVPs; measured on the standalone prototype):

* Plain projected gradient is ill-conditioned (step 1/max p_k while tail
  classes have tiny p_k) and needs a K×K SVD per step. But the optimum is
  low rank: classes with p_k below λ ≈ ‖G‖₂ die (minority collapse), rank
  45 of K = 100, 115 of 300, 331 of 1000. Factors of rank r cost O(K²r) per
  product and no SVD at all.
* The certificate is first order: at a stationary point gap ≈
  sqrt(2ρ)·‖∇ℓ‖, while f − f* ≈ ‖∇ℓ‖². A relative gap of 1e-9 therefore
  needs ‖∇ℓ‖ ~ 1e-11, i.e. f to ~1e-22: far below what f itself can show.
  First-order and quasi-Newton methods, which are steered by f, stall there
  (L-BFGS-B at K = 100 stops with gap 6e-8); Newton converges in the
  gradient, quadratically.
* The Hessian is ill-conditioned (κ ≈ 150 at K = 60 even diagonally
  scaled). HVPs at K = 1000: diagonal preconditioner with random padding
  columns 1186; rank grown along Frank–Wolfe directions instead 552; plus
  the 2×2 block preconditioner that pairs H_ki with W_ki 325; plus periodic
  rank checks 289–318 (301 in the library); plus the own class's rank-one
  terms of each row block (:meth:`_Factored.preconditioner`) 175.
* Products run in float32 (twice as fast; the direction needs few digits,
  :meth:`lpm.core.losses.Loss.hvp_operator`); the gradient, the steps and
  the certificate stay in float64.
* Warm start: classes merged into ≤ 64 buckets of nearby log-count, solved
  by the grouped engine (:func:`lpm.core.solvers.grouped.fista`, O(64³) per
  iteration) and factored without a K×K SVD (:func:`_grouped_factors`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..certificates import nuclear_certificate, penalised_nuclear_certificate
from ..losses import AffineCrossEntropy, CrossEntropy, Loss
from ..problem import Problem
from .backends import NumpyBackend
from .grouped import Reduction, fista

_log = logging.getLogger(__name__)

#: Dispatch. With m groups of equal-count classes the grouped engine costs
#: O(m³) per iteration (≈ 500 iterations) and the factored one O(K²·r) per
#: Hessian product (r ≈ K/3 for long tails, a few hundred products), so the
#: crossover grows like K. Measured on the prototype (one thread, CPU s,
#: grouped vs factored): K = 100: m = 20: 0.11 vs 0.10, m = 33: 0.20 vs 0.11,
#: m = 100: 1.34 vs 0.16; K = 1000: m = 64: 0.7 vs 4.5, m = 192: 6.4 vs ≈ 20,
#: m = 256: 22 vs ≈ 22. Rule: grouped iff m ≤ max(GROUPED_MAX_GROUPS, GROUPED_FRACTION·K).
GROUPED_MAX_GROUPS = 16
GROUPED_FRACTION = 0.2
#: share of the own-class coupling kept in the rank-one part of the preconditioner
#: (measured, K = 300 exp: 0 → 121 Hessian products, 0.5 → 111, 0.9 → 114)
COUPLING = 0.5
#: Newton steps between two rank checks in :func:`_polish`
ROUND = 6
#: first certificate try of a refining loss at this multiple of the first-order stopping threshold
#: (second-order gap ≈ 30·(first-order gap)² at K = 300, exp, R = 100)
EARLY = 1e4
#: an early try within this factor of the target skips the next rank check (only Newton is missing)
CLOSE = 1e3
#: warm start: relative gap and iteration limit of the bucketed grouped solve
WARM_TOL, WARM_MAX_ITER = 1e-7, 3000


def grouped_is_cheaper(groups: int, K: int) -> bool:
    """The dispatch rule: the grouped engine iff m ≤ max(16, K/5) (see GROUPED_MAX_GROUPS)."""
    return groups <= max(GROUPED_MAX_GROUPS, GROUPED_FRACTION * K)


@dataclass
class FactoredResult:
    """What :func:`solve_factored` found.

    ``factors``: [H; W] (2×K×r, NumPy) with H Wᵀ = Z (ball) or Y = D^{1/2} Z
    (weight decay); ``matrix``: that K×K matrix (formed on first use);
    ``relative_gap``: the certificate there (the default certificate, or the
    caller's ``certify``); ``certified``: what that ``certify`` returned last.
    """

    factors: np.ndarray
    relative_gap: float
    steps: int
    products: int
    rank: int
    grown: int
    warm_iterations: int
    buckets: int
    backend: str = "numpy"
    certified: object = None

    @property
    def matrix(self) -> np.ndarray:
        return self.factors[0] @ self.factors[1].T

    @property
    def summary(self) -> str:
        start = (f"warm start {self.warm_iterations} grouped iterations on {self.buckets} buckets" if self.buckets
                 else "started from the previous solution")
        on = "" if self.backend == "numpy" else f", on {self.backend}"
        return (f"rank {self.rank} (+{self.grown} grown), {self.steps} Newton steps, {self.products} Hessian "
                f"products{on}; {start}")


# ====================================================================== the factored program
@dataclass
class _Point:
    """A factored iterate x = [H; W] (shape 2×K×r) and what the model needs."""

    x: object
    X: object  # scaled logits c ⊙ (H Wᵀ), the loss's argument
    f: float  # φ(H Wᵀ) (without the penalty)
    G: object  # ∇φ at Z = H Wᵀ
    shift: float  # λ: Lagrange multiplier of the sphere (ball) or μ (penalty)
    grad: object  # Riemannian gradient of the Lagrangian (2×K×r)
    grad_norm: float
    cache: dict = field(default_factory=dict)  # operands in the working precision

    @property
    def H(self):
        return self.x[0]

    @property
    def W(self):
        return self.x[1]


class _Factored:
    """Burer–Monteiro form of either program, Z = H Wᵀ with H, W ∈ R^{K×r}.

    ‖Z‖_* = min over factorizations of ½(‖H‖² + ‖W‖²), so

    * ball:    min φ(H Wᵀ) on the sphere ‖H‖² + ‖W‖² = 2ρ (every Z with
               ‖Z‖_* ≤ ρ has factors on it; at a CE optimum ‖Z‖_* = ρ and the
               factors are balanced);
    * penalty: min φ(H Wᵀ) + (μ/2)(‖H‖² + ‖W‖²), unconstrained.

    Both have the Lagrangian ℓ = φ(H Wᵀ) + (λ/2)(‖H‖² + ‖W‖²) with λ = μ
    (penalty) or λ = −⟨x, ∇φ⟩/‖x‖² (ball, least-squares multiplier). Its
    gradient is (G W + λH, Gᵀ H + λW) and its Hessian-vector product

        ∇²ℓ[A, B] = (D W + G B + λA, Dᵀ H + Gᵀ A + λB),  D = ∇²φ[A Wᵀ + H Bᵀ],

    projected on the sphere's tangent space {⟨H, A⟩ + ⟨W, B⟩ = 0} for the
    ball (the Riemannian Hessian of a sphere-constrained function).
    Points and directions are stacked arrays [H; W] of shape 2×K×r, in the
    back end's arrays (:mod:`lpm.core.solvers.backends`). Here H and W are
    the factors of the program's matrix (Z, or Y under weight decay), not
    yet the model's classifier and features.
    """

    def __init__(self, problem: Problem, ops=None):
        self.problem = problem
        self.ops = ops = NumpyBackend() if ops is None else ops
        self.K = problem.K
        self.loss, self.target, self.labels = problem.loss_fn, problem.dr_target, np.arange(self.K)
        self.weights = problem.weights
        if problem.regularised:
            self.scale = 1.0 / np.sqrt(np.asarray(problem.counts, dtype=np.float64))
            self.rho, self.mu = None, float(np.sqrt(problem.lambda_W * problem.lambda_H))
        else:
            self.scale = np.ones(self.K)
            self.rho, self.mu = float(problem.nuclear_radius), None
        self.gweights = self.weights * self.scale  # gradient row weights  p_k c_k
        self.hweights = self.weights * self.scale**2  # Hessian row weights p_k c_k²
        self.curvature = self.loss.curvature(self.target)
        # the certificate's refined dual point needs the loss's row-wise Hessian solve
        self.refines = type(self.loss).solve_hessian is not Loss.solve_hessian
        # the same on the device, as columns
        self.d_weights = ops.asarray(self.weights)
        self.d_scale = ops.asarray(self.scale)[:, None]
        self.d_gweights = ops.asarray(self.gweights)[:, None]
        self._work: dict = {}
        self._scratch: dict = {}

    # ---------------------------------------------------------------- helpers
    def axpy(self, alpha: float, x, y):
        """y += alpha·x in place, through one reusable buffer per shape and dtype
        (fresh multi-megabyte temporaries cost page faults on every CG iteration)."""
        key = (tuple(x.shape), str(x.dtype))
        scratch = self._scratch.get(key)
        if scratch is None:
            scratch = self._scratch[key] = self.ops.empty(tuple(x.shape), x.dtype)
        self.ops.xp.multiply(x, alpha, out=scratch)
        y += scratch
        return y

    def _buffers(self, dtype):
        key = str(dtype)
        if key not in self._work:
            self._work[key] = (self.ops.empty((self.K, self.K), dtype), self.ops.empty((self.K, self.K), dtype))
        return self._work[key]

    def retract(self, x):
        if self.rho is None:
            return x
        return x * float(np.sqrt(2.0 * self.rho / self.ops.dot(x, x)))

    # ---------------------------------------------------------------- values
    def _loss(self, X):
        return self.ops.value_grad(self.loss, X, self.labels, self.target)

    def point(self, x) -> _Point:
        ops = self.ops
        H, W = x[0], x[1]
        X = H @ W.T
        X *= self.d_scale  # in place: at K = 8142 every K×K array is half a GiB
        values, G = self._loss(X)
        G *= self.d_gweights
        grad = ops.stack([G @ W, G.T @ H])
        shift = self.mu if self.rho is None else -ops.dot(x, grad) / (2.0 * self.rho)
        self.axpy(shift, x, grad)
        return _Point(x, X, ops.dot(self.d_weights, values), G, float(shift), grad, float(np.sqrt(ops.dot(grad, grad))))

    def value(self, x) -> float:
        """The objective of the program (φ, plus the penalty for the penalty form)."""
        values, _ = self._loss(self.d_scale * (x[0] @ x[1].T))
        penalty = 0.0 if self.rho is not None else 0.5 * self.mu * self.ops.dot(x, x)
        return self.ops.dot(self.d_weights, values) + penalty

    def program_value(self, pt: _Point) -> float:
        return pt.f if self.rho is not None else pt.f + 0.5 * self.mu * self.ops.dot(pt.x, pt.x)

    # ---------------------------------------------------------------- geometry
    def tangent(self, pt: _Point, d):
        """Project d (in place) on the tangent space of the sphere."""
        if self.rho is not None:
            x = self._operands(pt, d.dtype)[5]
            self.axpy(-self.ops.dot(x, d) / (2.0 * self.rho), x, d)
        return d

    def principal(self, pt: _Point) -> _Point:
        """The same point in the gauge where HᵀH + WᵀW is diagonal.

        (H Q, W Q) has the same Z and norms for orthogonal Q. In this gauge
        (the singular basis of Z, when the factors are balanced) a column is
        one singular direction, so the block-diagonal preconditioner sees the
        curvature of each direction instead of averages over mixed ones.
        """
        Q = self.ops.linalg.eigh(pt.H.T @ pt.H + pt.W.T @ pt.W)[1]
        return _Point(pt.x @ Q, pt.X, pt.f, pt.G, pt.shift, pt.grad @ Q, pt.grad_norm)

    def horizontal(self, pt: _Point, d):
        """Remove from d its component along the rotations (HΩ, WΩ), Ω skew.

        Those directions carry zero gradient and zero curvature, but a
        *linear* step along them moves Z at second order (H ΩΩᵀ Wᵀ), which the
        model does not see. The component is the least-squares Ω:
        S Ω + Ω S = C − Cᵀ with S = HᵀH + WᵀW, C = HᵀA + WᵀB; in the principal
        gauge (:meth:`principal`) S is diagonal, so Ω_ij = (C − Cᵀ)_ij / (S_ii + S_jj).
        """
        xp = self.ops.xp
        norms = xp.einsum("tki,tki->i", pt.x, pt.x)  # diagonal of S
        C = pt.H.T @ d[0] + pt.W.T @ d[1]
        pair = norms[:, None] + norms[None, :]
        usable = pair > 1e-8 * self.ops.amax(norms)  # rotations between vanishing columns: leave alone
        omega = xp.where(usable, (C - C.T) / xp.where(usable, pair, xp.ones_like(pair)), xp.zeros_like(pair))
        return d - pt.x @ omega

    # ---------------------------------------------------------------- second order
    def _operands(self, pt: _Point, dtype):
        """H, W, G, the loss's Hessian operator and the row weights in the working
        precision, cached per point."""
        key = str(dtype)
        if key not in pt.cache:
            ops = self.ops
            x = ops.cast(pt.x, dtype)
            product = ops.hvp_operator(self.loss, pt.X, self.labels, self.target, dtype)
            pt.cache[key] = (x[0], x[1], ops.cast(pt.G, dtype), product, ops.asarray(self.hweights, dtype)[:, None], x)
        return pt.cache[key]

    def hessian(self, pt: _Point, d):
        """Riemannian Hessian of the Lagrangian applied to the tangent direction d.

        Six K×K×r products, in the precision of d (float32 for search
        directions: the caller never uses it for the gradient).
        """
        ops = self.ops
        dtype = d.dtype
        H, W, G, product, hw, _ = self._operands(pt, dtype)
        V, T = self._buffers(dtype)  # K×K work arrays, reused
        A, B = d[0], d[1]
        ops.xp.matmul(A, W.T, out=V)
        V += ops.xp.matmul(H, B.T, out=T)  # dZ (scaled logits: c_k enters through hw)
        V = product(V)
        V *= hw
        out = ops.empty(tuple(d.shape), dtype)
        ops.xp.matmul(V, W, out=out[0])
        out[0] += G @ B
        ops.xp.matmul(V.T, H, out=out[1])
        out[1] += G.T @ A
        return self.axpy(pt.shift, d, self.tangent(pt, out))

    def _affine(self, pt: _Point):
        """(σ, a) for CE and the affine CE remedies: the float32 softmax of the loss's
        own logits at pt and the column scales a (ones for CE); ``None`` for other losses."""
        ops, loss = self.ops, self.loss
        if isinstance(loss, CrossEntropy):
            X, scale = pt.X, np.ones(self.K)
        elif isinstance(loss, AffineCrossEntropy):
            if ops.name == "torch":
                X = loss._torch_params(pt.X, ops._label_tensor(self.labels))[0]
            else:
                X = loss._logits(pt.X, self.labels)
            scale = np.broadcast_to(loss.scale, (self.K,))
        else:
            return None
        return ops.softmax32(X), ops.asarray(np.array(scale, dtype=np.float64))

    def preconditioner(self, pt: _Point):
        """2×2 block-diagonal approximation of the Hessian of the Lagrangian, plus,
        for CE and the affine CE remedies, a rank-one term per row of H and of W.

        Entry (k, i) of H is paired with entry (k, i) of W. For CE the
        diagonal is exact, w_k c_k² Var_{s_k}(W[:, i]) + λ for H and
        Σ_k' w_k' c_k'² s_k'k(1 − s_k'k) H_k'i² + λ for W, and the coupling is
        ∂²ℓ/∂H_ki∂W_ki = G_kk + w_k c_k² s_kk H_ki (W_ki − (S W)_ki). The
        coupling matters near the rank boundary: for a weak class G_kk ≈ −p_k
        while the diagonal is ≈ λ ≈ p_k, so moving h_k and w_k together is
        almost free; a diagonal preconditioner cannot see that.

        The block of row h_k is w_k c_k² Cov_{s_k}(W) + λI; a head class puts most
        of s_k on itself, so its term s_kk u uᵀ (u = w_k − E_{s_k} w) dominates
        and is far from diagonal. That term is kept whole (and likewise
        w_k c_k² s_kk(1 − s_kk) h_k h_kᵀ in the block of row w_k), the rest of
        each block by its diagonal, and the inverse applied by Woodbury with a
        2×2 system per class: O(K r) per application. Measured at K = 1000
        (exp, R = 100): 251 Hessian products instead of 301.

        The affine remedies (logits a ⊙ x + b − m e_y, per-column scales a) have the
        loss Hessian diag(a)(diag σ − σσᵀ)diag(a) with σ the softmax of their own
        logits: the same formulas with σ for S, W̃ = diag(a) W for W, the W row's
        terms scaled by a_j² and the own coupling by a_k (:meth:`_affine`).
        Other losses use their curvature bound for the diagonal and G_kk for
        the coupling. Returns the blocks (a, b, c) of the 2×2 part, those of
        its inverse, and the rank-one parts with the inverses of the 2×2
        Woodbury systems (None for other losses).
        """
        ops = self.ops
        xp = ops.xp
        H, W = pt.H, pt.W
        Gd = ops.diag(pt.G)[:, None]
        lowrank = None
        affine = self._affine(pt)
        if affine is not None:  # in float32: a preconditioner needs few digits
            S, a = affine  # softmax of the loss's logits; column scales (1 for CE)
            f32, f64 = ops.f32, ops.f64
            W32 = ops.cast(W, f32) * ops.cast(a, f32)[:, None]  # W̃ = diag(a) W
            hw = ops.asarray(self.hweights, f32)[:, None]
            SW = S @ W32
            dH = ops.cast(hw * (S @ _float32(ops, W32 * W32) - SW**2), f64)
            del W32
            T = S * S  # hw ⊙ (S − S ⊙ S), in one K×K float32 temporary
            ops.xp.subtract(S, T, out=T)
            T *= hw
            dW = ops.cast(T.T @ _float32(ops, H * H), f64) * (a * a)[:, None]
            del T
            own = ops.cast(hw[:, 0] * ops.diag(S), f64)[:, None]  # w_k c_k² σ_kk
            u = W * a[:, None] - ops.cast(SW, f64)  # w̃_k − E_{σ_k}[w̃]
            Ha = H * a[:, None]  # a_k h_k: the W row's own term is own·(1 − σ_kk)·(a_k h_k)(a_k h_k)ᵀ
            cross = Gd + own * Ha * u
            # the own class's terms of the row blocks exactly (rank one each), the rest diagonal
            delta = own * (1.0 - ops.cast(ops.diag(S), f64)[:, None])
            dH = ops.clip(dH - own * u * u, 0.0, None)
            dW = ops.clip(dW - delta * Ha * Ha, 0.0, None)
            # their coupling w_k c_k² σ_kk ũ (a_k h_k)ᵀ would make the pair indefinite: a part
            # β' = COUPLING·sqrt(αδ) of it is kept (C = [[α, β'], [β', δ]] ⪰ 0, Cholesky L)
            l11 = xp.sqrt(own)
            l21 = COUPLING * xp.sqrt(delta)
            l22 = xp.sqrt(delta * (1 - COUPLING**2))
            cross = cross - (l11 * l21) * u * Ha
            lowrank = (l11 * u, l21 * Ha, l22 * Ha)
        else:
            c = ops.asarray(self.curvature * self.hweights)
            dH = c[:, None] * xp.sum(W * W, 0)[None, :]
            dW = xp.ones_like(W) * (c @ (H * H))[None, :]
            cross = Gd * xp.ones_like(H)
        floor = max(pt.shift, 1e-12 * max(ops.amax(dH), ops.amax(dW), 1e-300))
        dH, dW = dH + floor, dW + floor
        bound = 0.9 * xp.sqrt(dH * dW)
        cross = ops.clip(cross, -bound, bound)  # keep each block SPD
        det = dH * dW - cross**2
        inverse = (dW / det, -cross / det, dH / det)
        del det
        if lowrank is None:
            return _stored(ops, (dH, cross, dW)), _stored(ops, inverse), None
        # Woodbury: M = B + Ũ Ũᵀ per class, Ũ = [ũ 0; 0 h̃]; S = I + Ũᵀ B⁻¹ Ũ (2×2 per class)
        a, b, c = inverse
        p1, q1, q2 = lowrank  # Ũ's columns: (p1, q1) and (0, q2)
        bp1, bq1 = a * p1 + b * q1, b * p1 + c * q1
        bp2, bq2 = b * q2, c * q2
        s11 = 1.0 + xp.sum(p1 * bp1 + q1 * bq1, 1)
        s12 = xp.sum(p1 * bp2 + q1 * bq2, 1)
        s22 = 1.0 + xp.sum(q2 * bq2, 1)
        sdet = s11 * s22 - s12 * s12
        return (_stored(ops, (dH, cross, dW)), _stored(ops, inverse),
                _stored(ops, (p1, q1, q2, s22 / sdet, -s12 / sdet, s11 / sdet)))

    # ---------------------------------------------------------------- certificate
    def certify(self, pt: _Point) -> tuple[float, object]:
        """(relative gap, the certificate) of :mod:`lpm.core.certificates` at pt.

        Ball: the Frank–Wolfe bound at Z = H Wᵀ (scaled by 1 − 1e-14 so that
        ‖Z‖_* ≤ ½(‖H‖² + ‖W‖²) = ρ survives rounding). Weight decay: the
        penalised bound at the model's (W, H) built from these factors
        without an SVD, W = (λ_H/λ_W)^{1/4} B, h_k = n_k^{-1/2} (λ_W/λ_H)^{1/4} A_k,
        whose penalty is (μ/2)(‖A‖² + ‖B‖²). :class:`lpm.core.solvers.nuclear.NuclearSolver`
        passes its own ``certify`` instead, evaluated on the recovered (W, H).
        """
        H, W = self.ops.numpy(pt.H), self.ops.numpy(pt.W)
        problem = self.problem
        if self.rho is not None:
            shrink = 1.0 - 1e-14
            certificate = nuclear_certificate(problem, (H @ W.T) * shrink, factors=(H * shrink, W))
        else:
            c = (problem.lambda_W / problem.lambda_H) ** 0.25
            certificate = penalised_nuclear_certificate(problem, W / c, self.scale[:, None] * H * c)
        return float(certificate.relative_gap), certificate


def _stored(ops, arrays) -> tuple:
    """The preconditioner's arrays, kept in float32: it needs few digits, and at
    r ≈ K/3 its dozen K×r arrays weigh about four K×K float64 ones."""
    return tuple(ops.cast(a, ops.f32) for a in arrays)


def _float32(ops, A):
    """A in float32 with entries below 1e-30 set to zero: squares of small factor
    entries would otherwise be subnormal, and products with subnormal operands run
    some twenty times slower on x86 (measured: 0.68 s instead of 0.005 s for one
    1000×1000×331 product). Only the preconditioner uses this (it needs few digits)."""
    B = ops.cast(A, ops.f32)
    B[ops.xp.abs(B) < 1e-30] = 0.0
    return B


# ====================================================================== trust-region Newton
def _inverse_operator(ops, precond, dtype):
    """r ↦ M⁻¹ r for the preconditioner M of :meth:`_Factored.preconditioner`, in ``dtype``:
    the 2×2 blocks' inverse B⁻¹, then (CE) the Woodbury correction
    −B⁻¹Ũ (I + ŨᵀB⁻¹Ũ)⁻¹ ŨᵀB⁻¹ with two columns Ũ per class."""
    xp = ops.xp
    a, b, c = (ops.cast(m, dtype) for m in precond[1])
    if precond[2] is not None:
        p1, q1, q2, i11, i12, i22 = (ops.cast(m, dtype) for m in precond[2])
        bu = ops.stack([a * p1 + b * q1, b * p1 + c * q1])  # B⁻¹Ũ, its two columns
        bh = ops.stack([b * q2, c * q2])

    def apply(r):
        z = ops.stack([a * r[0] + b * r[1], b * r[0] + c * r[1]])
        if precond[2] is None:
            return z
        t1, t2 = xp.sum(p1 * z[0] + q1 * z[1], 1), xp.sum(q2 * z[1], 1)
        c1, c2 = (i11 * t1 + i12 * t2)[:, None], (i12 * t1 + i22 * t2)[:, None]
        z -= bu * c1
        z -= bh * c2
        return z
    return apply


def _steihaug(problem: _Factored, pt: _Point, precond, radius: float, forcing: float, max_cg: int, dtype):
    """Preconditioned truncated CG (Steihaug–Toint) on the Newton system
    ∇²ℓ s = −∇ℓ in the tangent space, inside ‖s‖_M ≤ radius (M: the block
    preconditioner). Stops at relative residual ``forcing``, at negative
    curvature or at the boundary. For the ball the preconditioned residual is
    projected M-orthogonally on the tangent space, which keeps every
    iterate tangent and the M-norm recurrences valid. (Running CG on the
    horizontal space, P ∇²ℓ P with preconditioner P M⁻¹ P, P the projector of
    :meth:`_Factored.horizontal`, was tried: it avoids early negative
    curvature along the rotations, but its two projections per iteration cost
    about half a Hessian product at K = 1000, more than the products it saved:
    79 products in 8.2 CPU s with it, 81 in 6.9 s without, one thread.)

    All vectors are kept in ``dtype`` (float32 halves the memory traffic).
    Returns (step (float64), predicted decrease of the model, on_boundary, iterations, the step's M-norm).
    """
    ops = problem.ops
    x = problem._operands(pt, dtype)[5]
    axpy, dot = problem.axpy, ops.dot
    apply = _inverse_operator(ops, precond, dtype)

    Px = apply(x)
    xPx = dot(x, Px)

    def precondition(r):
        z = apply(r)
        return z if problem.rho is None else axpy(-dot(x, z) / xPx, Px, z)

    g = ops.cast(pt.grad, dtype)
    s, r = ops.zeros_like(g), -g
    z = precondition(r)
    p, rz = z, dot(r, z)
    ss, sp, pp = 0.0, 0.0, rz  # M-inner products of s and p
    target = forcing * np.sqrt(dot(r, r))
    it = 0
    for it in range(1, max_cg + 1):
        q = problem.hessian(pt, p)
        curv = dot(p, q)
        alpha = rz / curv if curv > 0 else np.inf
        if curv <= 0 or ss + 2 * alpha * sp + alpha * alpha * pp >= radius * radius:
            tau = (-sp + np.sqrt(sp * sp + pp * (radius * radius - ss))) / pp  # reach the boundary
            Hs = axpy(tau, q, -g - r)  # ∇²ℓ s = −g − r, plus τ q
            s = axpy(tau, p, s)
            return ops.cast(s, ops.f64), -(dot(g, s) + 0.5 * dot(s, Hs)), True, it, radius
        axpy(alpha, p, s)
        axpy(-alpha, q, r)
        ss, sp = ss + 2 * alpha * sp + alpha * alpha * pp, sp + alpha * pp
        if np.sqrt(dot(r, r)) <= target:
            break
        z = precondition(r)
        rz_new = dot(r, z)
        beta, rz = rz_new / rz, rz_new
        p = axpy(beta, p, z)  # z + β p (z is fresh, so updating it in place is safe)
        sp, pp = beta * sp, rz + beta * beta * pp
    return ops.cast(s, ops.f64), -0.5 * dot(g, s), False, it, float(np.sqrt(ss))  # model decrease ½⟨−g, s⟩


def _trust_region(problem: _Factored, x, stop_grad: float, max_iter: int, radius: float | None = None,
                  start: _Point | list | None = None, max_cg: int = 500, mixed: bool = True):
    """Riemannian trust-region Newton (Absil–Baker–Gallivan) on the factors.

    Inexact Newton steps by :func:`_steihaug` with forcing term
    min(0.1, sqrt(‖∇ℓ‖/‖∇ℓ₀‖)) (superlinear convergence), never tighter than
    reaching stop_grad needs (0.9·stop_grad/‖∇ℓ‖, at most ½); the region grows
    ×2 on good boundary steps and shrinks to ¼ of the step when the model
    ratio < ¼. Near the optimum the decrease of φ
    falls below rounding, so a step is then accepted when it lowers the
    gradient norm. Hessian products run in float32 (``mixed``): only the
    search direction depends on them, never the gradient, so the limit of
    the iteration is unchanged; a rejected step in the rounding regime
    switches to float64 for good. Steps are made horizontal
    (:meth:`_Factored.horizontal`).

    Stops when ‖∇ℓ‖ ≤ stop_grad or after max_iter steps. ``start``: the
    point x already evaluated (it saves one gradient), or a list holding it
    (popped here, so that the caller keeps no reference to its K×K arrays).
    Returns (point, Newton steps, Hessian products, final radius).
    """
    ops = problem.ops
    if isinstance(start, list):
        start = start.pop() if start else None
    pt = problem.principal(start if start is not None else problem.point(problem.retract(x)))
    start = None
    precond = problem.preconditioner(pt)
    if radius is None:  # initial region: a tenth of the point's own M-norm
        dH, cross, dW = (ops.cast(m, ops.f64) for m in precond[0])
        radius = 0.1 * np.sqrt(ops.dot(dH, pt.H**2) + 2 * ops.dot(cross, pt.H * pt.W) + ops.dot(dW, pt.W**2))
        del dH, cross, dW
    first, products, taken = pt.grad_norm, 0, 0
    for taken in range(max_iter):
        if pt.grad_norm <= stop_grad:
            break
        forcing = max(min(0.1, np.sqrt(pt.grad_norm / first)), min(0.5, 0.9 * stop_grad / pt.grad_norm))
        dtype = ops.f32 if mixed else ops.f64
        step, predicted, boundary, used, length = _steihaug(problem, pt, precond, radius, forcing, max_cg, dtype)
        pt.cache.clear()  # the working-precision operands (1.5 K×K): rebuilt only if this step is rejected
        products += used
        new = problem.point(problem.retract(pt.x + problem.horizontal(pt, step)))
        value_old, value_new = problem.program_value(pt), problem.program_value(new)
        ratio = (value_old - value_new) / max(predicted, 1e-300)
        if predicted <= 1e-13 * max(1.0, abs(value_old)):  # below rounding: judge by the gradient
            accept = new.grad_norm < pt.grad_norm
            ratio = 1.0 if accept else 0.0
            mixed = mixed and accept  # float32 directions no longer good enough
        else:
            accept = ratio > 0.1
        if ratio < 0.25:  # a quarter of the step taken (an interior step may be far inside the region)
            radius = 0.25 * min(radius, length)
        elif ratio > 0.75 and boundary:
            radius *= 2.0
        _log.debug("tr %d: f %.15f |grad| %.3e -> %.3e cg %d ratio %.3f radius %.3e %s %s", taken + 1, pt.f,
                   pt.grad_norm, new.grad_norm, used, ratio, radius, "accept" if accept else "reject", dtype)
        if accept:
            pt = problem.principal(new)
            precond = problem.preconditioner(pt)
    else:
        taken = max_iter
    return pt, taken, products, radius


# ====================================================================== rank growth
def _complement_pairs(ops, G, H, W, count: int, power: int = 6, seed: int = 1, exact: bool = False):
    """Top singular pairs of (I − P_H) G (I − P_W), P = projector on the
    column space: the directions a rank-deficient iterate misses. At a
    stationary point G is block diagonal in (range, complement) and its
    in-range singular values all equal λ, so ‖G‖₂ > λ iff this block's top
    value is. Randomised subspace iteration, or a dense SVD when ``exact``
    (for excesses too small for the estimate; used only to steer)."""
    qr = ops.linalg.qr
    Qh, Qw = qr(H)[0], qr(W)[0]
    if exact:
        C = G - Qh @ (Qh.T @ G)
        C = C - (C @ Qw) @ Qw.T
        U, s, Vt = ops.linalg.svd(C)
        return U[:, :count], s[:count], Vt[:count].T

    def op(X):
        return G @ (X - Qw @ (Qw.T @ X))

    Y = op(ops.randn((G.shape[1], count + 8), seed))
    Y = Y - Qh @ (Qh.T @ Y)
    for _ in range(power):
        Q = qr(Y)[0]
        Z = G.T @ (Q - Qh @ (Qh.T @ Q))
        Z = Z - Qw @ (Qw.T @ Z)
        Y = op(qr(Z)[0])
        Y = Y - Qh @ (Qh.T @ Y)
    Q = qr(Y)[0]
    B = (G.T @ (Q - Qh @ (Qh.T @ Q))).T
    B = B - (B @ Qw) @ Qw.T
    u, s, vt = ops.linalg.svd(B, full_matrices=False)
    return (Q @ u)[:, :count], s[:count], vt[:count].T


def _grow_rank(problem: _Factored, x, count: int, exact: bool = False):
    """Append the columns a rank-deficient x = [H; W] misses.

    The top singular pairs (u_j, v_j, σ_j) of G off the current column spaces
    with σ_j > λ are directions of descent for the Lagrangian
    (Z ← Z − t u vᵀ lowers φ by ≈ tσ and costs λt of nuclear norm). They
    enter as columns (−a u_j, a v_j); the common size a is the best of a few
    trial values (a saddle escape from tiny columns would take many short
    Newton steps instead). Returns (x, columns added, the evaluated point or None).
    """
    ops = problem.ops
    pt = problem.point(problem.retract(x))
    u, sigma, v = _complement_pairs(ops, pt.G, pt.H, pt.W, count, exact=exact)
    sigma_np = ops.numpy(sigma)
    new = sigma_np > pt.shift
    if not new.any():
        return pt.x, 0, pt
    keep = ops.asarray(np.flatnonzero(new), ops.xp.int64) if ops.name == "torch" else np.flatnonzero(new)
    columns = ops.stack([-u[:, keep], v[:, keep]])
    lipschitz = problem.curvature * problem.hweights.max()
    trials = [np.sqrt((sigma_np[0] - pt.shift) / lipschitz) * np.array([0.3, 1.0, 3.0])]
    if pt.H.shape[1]:
        typical = np.sqrt(ops.dot(pt.H, pt.H) / pt.H.shape[1])  # norm of an average column
        trials.append(typical * np.array([0.03, 0.1, 0.3, 0.6, 1.0]))
    best = (problem.program_value(pt), 0.0)
    for a in np.concatenate(trials):
        best = min(best, (problem.value(problem.retract(ops.cat([pt.x, float(a) * columns], 2))), float(a)))
    a = best[1] if best[1] > 0 else 0.03 * np.sqrt((sigma_np[0] - pt.shift) / lipschitz)
    return ops.cat([pt.x, a * columns], 2), int(new.sum()), None


def _polish(problem: _Factored, x, tol: float, stop: float, max_iter: int, certify=None):
    """Rank growth, trust-region Newton and the exact certificate, repeated.

    At a stationary point of rank r the gap is ρ(‖G‖₂ − λ) (ball) or
    B(‖G‖₂ − μ) (penalty) up to O(‖∇ℓ‖): if the certificate fails there, the
    rank is too small (:func:`_grow_rank` finds the directions) or the
    stopping threshold too loose (it is divided by 10). The rank is also
    re-checked every ``ROUND`` Newton steps: with tied weights the optimum's
    singular values come in clusters, and a rank that cuts a cluster makes
    the factored problem degenerate (Newton then stalls instead of
    converging), so missing directions are best added early.

    ``stop`` is the gradient norm at which the first-order Frank–Wolfe bound
    certifies. Where the loss lets the certificate refine its dual point
    (:func:`lpm.core.certificates._refined_point`; gap of second order in
    ‖∇ℓ‖), the certificate is first tried at ``EARLY``·``stop``, and after each
    failed try at the gradient norm that a quadratic gap predicts (never below
    ``stop``): Newton then stops some decades of ‖∇ℓ‖ earlier.
    ``certify(H, W) -> (relative gap, anything)`` on NumPy factors replaces
    :meth:`_Factored.certify`.
    Returns (relative gap, what certify returned, point, Newton steps, Hessian products, rank growths).
    """
    ops = problem.ops
    steps = products = grown = 0
    radius = None
    relative_gap, certified = np.inf, None
    exact = False
    pt = None
    early = stop * EARLY if problem.refines else stop

    def check(pt):
        if certify is None:
            return problem.certify(pt)
        return certify(ops.numpy(pt.H), ops.numpy(pt.W))

    regrow = True
    for _ in range(4 * max_iter):
        if regrow:
            x, added, start = _grow_rank(problem, x, max(8, x.shape[2] // 10), exact)
        else:  # an early try came close: the rank is right, only the gradient is not small enough yet
            added, start = 0, pt
        regrow, exact = True, False
        grown += added
        if added and problem.refines:  # a new direction: the gradient jumps, the early try starts afresh
            early = max(early, stop * EARLY)
        if x.shape[2] == 0:  # nothing to grow: Z = 0 is optimal (penalty form, large μ)
            pt = problem.point(x)
            relative_gap, certified = check(pt)
            break
        pt = None  # the previous round's point and the evaluated start go with the call (K×K arrays)
        starts, start = [start] if start is not None else [], None
        target = max(stop, early)
        pt, used_steps, used_products, radius = _trust_region(
            problem, x, target, max(min(ROUND, max_iter - steps), 1), radius if not added else None, starts)
        steps, products = steps + used_steps, products + used_products
        x = pt.x
        if pt.grad_norm > target and steps < max_iter:
            continue  # not converged yet: check the rank, then go on
        relative_gap, certified = check(pt)
        _log.debug("round: rank %d (+%d) rel gap %.3e |grad| %.3e multiplier %.4e", pt.H.shape[1], added,
                   relative_gap, pt.grad_norm, pt.shift)
        if relative_gap <= tol or steps >= max_iter or pt.shift <= 0:
            break
        if pt.grad_norm > stop:  # an early try failed: aim where a quadratic gap would pass
            early = pt.grad_norm * min(0.5, 0.7 * np.sqrt(tol / max(relative_gap, 1e-300)))
            regrow = relative_gap > CLOSE * tol
            continue
        stop *= 0.1  # stationary yet not certified: look harder, and closer
        early = stop
        exact = True
    return relative_gap, certified, pt, steps, products, grown

# ====================================================================== warm start
def _helmert(s: int) -> np.ndarray:
    """s×(s−1) orthonormal basis of the vectors of R^s that sum to zero."""
    j = np.arange(1, s)
    Q = (np.arange(s)[:, None] < j[None, :]).astype(np.float64)
    Q[j, j - 1] = -j
    return Q / np.sqrt(j * (j + 1.0))


def _grouped_factors(red: Reduction, alpha: np.ndarray, R: np.ndarray, rank_tol: float = 1e-10) -> np.ndarray:
    """Balanced factors [H; W] (2×K×r) of the invariant matrix (α, R) without a K×K SVD.

    The pieces α_a P_a and U_g R U_gᵀ (U_g = [u_a]) are mutually orthogonal,
    so an SVD of the matrix is the union of R = U_R S V_Rᵀ (mapped by U_g)
    and of |α_a| times an orthonormal basis Q_a of P_a's range (sign on one
    side). Singular values below rank_tol·max are dropped.
    """
    K, m = red.K, len(red.size)
    onehot = np.eye(m)[red.group] / red.root[red.group][:, None]  # U_g (K×m)
    U, s, Vt = np.linalg.svd(R)
    top = max(s.max(initial=0.0), np.abs(alpha).max(initial=0.0))
    keep = s > rank_tol * top
    left, right, values = [onehot @ U[:, keep]], [onehot @ Vt[keep].T], [s[keep]]
    for a in np.flatnonzero((np.abs(alpha) > rank_tol * top) & (red.mult > 0)):
        members = np.flatnonzero(red.group == a)
        Q = np.zeros((K, len(members) - 1))
        Q[members] = _helmert(len(members))
        left.append(Q)
        right.append(np.sign(alpha[a]) * Q)
        values.append(np.full(len(members) - 1, abs(alpha[a])))
    root = np.sqrt(np.concatenate(values))
    return np.stack([np.hstack(left) * root, np.hstack(right) * root])


def _buckets(K: int) -> int:
    """Groups of the warm start: enough to land near the optimum, few enough
    that its grouped solve stays cheap next to the Newton phase (measured:
    K = 100 → 16, K ≥ 384 → 64)."""
    return int(min(64, max(8, K // 6)))


def bucket_labels(counts, buckets: int) -> np.ndarray:
    """Classes binned into ≤ ``buckets`` groups of nearby log-count."""
    logn = np.log(np.asarray(counts, dtype=np.float64))
    span = logn.max() - logn.min()
    if not span > 0:
        return np.zeros(len(logn), dtype=int)
    edges = np.linspace(logn.min(), logn.max(), buckets + 1)[1:-1]
    return np.unique(np.digitize(logn, edges), return_inverse=True)[1].ravel()


def bucketed_problem(problem: Problem, buckets: int) -> Problem:
    """The problem with each class's count replaced by its bucket's mean count
    (:func:`bucket_labels`), and likewise a re-sampling's class probabilities: the
    proportions of a bucket are averaged and their total kept, and the bucket's
    classes become exchangeable."""
    counts = np.asarray(problem.counts, dtype=np.float64)
    label = bucket_labels(counts, buckets)
    size = np.bincount(label)
    changes: dict = {"counts": tuple(float(c) for c in (np.bincount(label, weights=counts) / size)[label])}
    if problem.sampling is not None:
        q = np.bincount(label, weights=np.asarray(problem.sampling, dtype=np.float64)) / size
        changes["sampling"] = tuple(float(x) for x in q[label])
    return problem.replace(**changes)


def warm_start(problem: Problem, buckets: int) -> tuple[np.ndarray, int]:
    """Factors [H; W] of the bucketed problem's optimum (grouped FISTA, to
    relative gap WARM_TOL), and the FISTA iterations used."""
    red = Reduction([bucketed_problem(problem, buckets)])
    (alpha, R), _, iterations = fista(red, red.start(), WARM_TOL, WARM_MAX_ITER, 5)
    return _grouped_factors(red, alpha[0], R[0]), int(iterations[0])


# ====================================================================== entry point
def solve_factored(problem: Problem, tol: float, max_steps: int = 500, buckets: int | None = None,
                   backend=None, start: np.ndarray | None = None, certify=None) -> FactoredResult:
    """The ball (class-average budgets) or the penalty (weight decay) of a learnable
    problem by Burer–Monteiro trust-region Newton.

    1. warm start: ``start`` (factors [H; W], 2×K×r, of a nearby solution,
       e.g. the previous problem of a sweep; rescaled onto this ball) or else
       :func:`warm_start` on ``buckets`` buckets (default :func:`_buckets`);
    2. :func:`_polish`: rank growth and Newton, ball: to
       ‖∇ℓ‖ ≤ tol·max(1, |f|)/(2 sqrt(2ρ)) (at a stationary balanced point
       gap ≈ sqrt(2ρ)·‖∇ℓ‖ + ρ(‖G‖₂ − λ)); penalty: to
       ‖∇ℓ‖ ≤ tol·F/(4(‖x‖ + B/‖x‖)), B = F/μ, the factor the certificate's
       B·(‖G‖₂ − μ) term can amplify; then the certificate (``certify(H, W)
       -> (relative gap, anything)`` on NumPy factors, or :meth:`_Factored.certify`).

    ``max_steps`` bounds the Newton steps; ``backend``: a back end of
    :mod:`lpm.core.solvers.backends` (NumPy by default). The result may be
    uncertified (e.g. a ball whose optimum lies strictly inside, where the
    sphere is the wrong constraint): the caller checks ``relative_gap``.
    """
    ops = NumpyBackend() if backend is None else backend
    if start is not None and np.asarray(start).shape[2] > 0:
        x, warm, buckets = np.asarray(start, dtype=np.float64), 0, 0
    else:
        buckets = buckets or _buckets(problem.K)
        x, warm = warm_start(problem, buckets)
    engine = _Factored(problem, ops)
    x = ops.asarray(x)
    if engine.rho is not None:
        stop = 0.5 * tol * max(1.0, abs(engine.value(engine.retract(x)))) / np.sqrt(2.0 * engine.rho)
    else:
        value = engine.value(x)
        size = np.sqrt(max(ops.dot(x, x), 1e-300))
        stop = 0.25 * tol * max(1.0, abs(value)) / (size + value / engine.mu / size)
    relative_gap, certified, pt, steps, products, grown = _polish(engine, x, tol, stop, max_steps, certify)
    return FactoredResult(factors=np.stack([ops.numpy(pt.H), ops.numpy(pt.W)]), relative_gap=relative_gap,
                          steps=steps, products=products, rank=int(pt.H.shape[1]), grown=grown,
                          warm_iterations=warm, buckets=buckets, backend=repr(ops), certified=certified)
