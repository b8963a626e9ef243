"""The factored engine's back ends and the pieces that made it faster: the torch back end
agrees with the NumPy one, the Woodbury preconditioner inverts its matrix, the Gram-based
spectral norm bounds the SVD's from above, and factors are recovered without a K×K SVD."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lpm.core.certificates import _spectral_norm
from lpm.core.errors import LPMInputError
from lpm.core.problem import Problem
from lpm.core.solution import Status
from lpm.core.solvers import get_solver
from lpm.core.solvers import factored as F
from lpm.core.solvers.backends import NumpyBackend
from lpm.core.solvers.recovery import balanced_factors, balanced_factors_of, penalised_factors, penalised_factors_of


def exp_problem(K: int, **kwargs) -> Problem:
    return Problem.from_profile(K=K, ratio=100.0, profile="exp", **{"E_W": 1.0, "E_H": 5.0, **kwargs})


def decayed(K: int) -> Problem:
    return Problem.from_profile(K=K, ratio=100.0, profile="exp", n_max=500, budget="weight-decay",
                                lambda_W=5e-4, lambda_H=5e-4)


@pytest.mark.parametrize("make", [lambda: exp_problem(30), lambda: decayed(40),
                                  lambda: exp_problem(24, loss="mse")])
def test_torch_backend_agrees_with_numpy(make):
    """Two back ends, each certified at its recovered (W, H): objectives agree to 1e-8 (relative)
    and each lies within the other's lower bound."""
    pytest.importorskip("torch")
    problem = make()
    numpy_run = get_solver("nuclear", engine="factored").run(problem)
    torch_run = get_solver("nuclear", engine="factored", backend="torch", device="cpu").run(problem)
    assert "on torch (cpu)" in torch_run.message and "uncertified" not in torch_run.message
    for s in (numpy_run, torch_run):
        assert s.status is Status.OPTIMAL and s.certificate.relative_gap <= 1e-9
    np.testing.assert_allclose(torch_run.objective, numpy_run.objective, rtol=1e-8, atol=1e-12)
    assert torch_run.certificate.lower_bound <= numpy_run.objective + 1e-12
    assert numpy_run.certificate.lower_bound <= torch_run.objective + 1e-12


@pytest.mark.parametrize("settings, message", [
    ({"backend": "jax"}, "The 'backend' parameter of solver 'nuclear' must be one of 'numpy', 'torch'. "
                         "Got 'jax' instead."),
    ({"device": "tpu"}, "The 'device' parameter of solver 'nuclear' must be one of 'auto', 'cpu', 'cuda'. "
                        "Got 'tpu' instead."),
])
def test_backend_settings_are_validated(settings, message):
    with pytest.raises(LPMInputError) as info:
        get_solver("nuclear", **settings)
    assert str(info.value) == message


def test_cuda_needs_the_torch_backend():
    with pytest.raises(LPMInputError) as info:
        get_solver("nuclear", device="cuda")
    assert "'cuda'" in str(info.value) and "backend='torch'" in str(info.value)


def test_numpy_solves_do_not_import_torch():
    code = ("import sys\nfrom lpm.core.problem import Problem\nfrom lpm.core.solvers import get_solver\n"
            "p = Problem.from_profile(K=30, ratio=100.0, profile='exp', E_W=1.0, E_H=5.0)\n"
            "s = get_solver('nuclear', engine='factored').run(p)\n"
            "print(s.status.value, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["optimal", "False"]


def test_woodbury_preconditioner_inverts_its_matrix(monkeypatch):
    """_inverse_operator applies the exact inverse of the 2×2-block-plus-rank-one matrix it describes
    (the arrays kept in float64 here; the engine stores them in float32)."""
    monkeypatch.setattr(F, "_stored", lambda ops, arrays: tuple(arrays))
    problem = exp_problem(12)
    engine = F._Factored(problem)
    x, _ = F.warm_start(problem, 4)
    pt = engine.principal(engine.point(engine.retract(x)))
    precond = engine.preconditioner(pt)
    assert precond[2] is not None                       # CE: the rank-one parts are there
    (dH, cross, dW), _, (p1, q1, q2, *_) = precond
    K, r = dH.shape
    n = K * r
    M = np.zeros((2 * n, 2 * n))
    i = np.arange(n)
    M[i, i], M[n + i, n + i], M[i, n + i], M[n + i, i] = dH.ravel(), dW.ravel(), cross.ravel(), cross.ravel()
    for k in range(K):
        for col in (np.concatenate([p1[k], q1[k]]), np.concatenate([np.zeros(r), q2[k]])):
            index = np.concatenate([k * r + np.arange(r), n + k * r + np.arange(r)])
            M[np.ix_(index, index)] += np.outer(col, col)
    assert np.linalg.eigvalsh(M)[0] > 0                 # symmetric positive definite
    v = np.random.default_rng(0).standard_normal((2, K, r))
    applied = F._inverse_operator(NumpyBackend(), precond, np.float64)(v.copy())
    np.testing.assert_allclose(applied.ravel(), np.linalg.solve(M, v.ravel()), rtol=1e-9, atol=1e-12)


def test_spectral_norm_is_a_safe_upper_bound(monkeypatch):
    """At a certified optimum (singular values tied at the top) and on a random matrix: never
    below the SVD's value, above it by < 1e-12 relative; a matrix whose rounding pad exceeds
    PAD_LIMIT falls back to the SVD itself (Hadamard 128: relative pad ≈ 2e-12, so the limit
    is lowered to 1e-12 for the check)."""
    from lpm.core import certificates
    problem = exp_problem(60)
    solution = get_solver("nuclear").run(problem)
    G = problem.logit_objective(solution.H @ solution.W.T)[1]
    for A in (G, np.random.default_rng(1).standard_normal((50, 80))):
        exact = np.linalg.svd(A, compute_uv=False)[0]
        bound = _spectral_norm(A)
        assert exact <= bound <= exact * (1 + 1e-12)
    signs = np.array([[1.0]])
    for _ in range(7):                                         # Hadamard 128: ‖|A|‖₂ = 128 = sqrt(128)·‖A‖₂
        signs = np.block([[signs, signs], [signs, -signs]])
    exact = np.linalg.svd(signs, compute_uv=False)[0]
    assert exact <= _spectral_norm(signs) <= exact * (1 + certificates.PAD_LIMIT)   # padded bound
    monkeypatch.setattr(certificates, "PAD_LIMIT", 1e-12)
    assert _spectral_norm(signs) == exact   # the pad would not fit: the SVD's value


def test_factors_recovered_without_the_dense_svd():
    """balanced_factors_of / penalised_factors_of (O(K r²)) equal the dense recoveries on Z = A Bᵀ."""
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((20, 7)), rng.standard_normal((20, 7))
    problem = exp_problem(20, E_H=1e3)        # a radius well above ‖A Bᵀ‖_*: no rescaling
    W1, H1, _ = balanced_factors(problem, A @ B.T)
    W2, H2, _ = balanced_factors_of(problem, A, B)
    np.testing.assert_allclose(H2 @ W2.T, H1 @ W1.T, atol=1e-10)
    np.testing.assert_allclose(np.sum(W2**2), np.sum(W1**2), rtol=1e-10)
    np.testing.assert_allclose(H2 @ W2.T, A @ B.T, atol=1e-10)
    wd = decayed(20)
    root = np.sqrt(np.asarray(wd.counts, dtype=float))
    W3, H3, _ = penalised_factors(wd, (A @ B.T) / root[:, None])
    W4, H4, _ = penalised_factors_of(wd, A, B)
    np.testing.assert_allclose(H4 @ W4.T, H3 @ W3.T, atol=1e-10)
    np.testing.assert_allclose(wd.objective(W4, H4), wd.objective(W3, H3), rtol=1e-12)


def test_cuda_without_a_device_is_refused_in_one_line():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(LPMInputError) as info:
        get_solver("nuclear", engine="factored", backend="torch", device="cuda").run(exp_problem(30))
    assert str(info.value).startswith("The 'device' parameter") and "no CUDA device" in str(info.value)
