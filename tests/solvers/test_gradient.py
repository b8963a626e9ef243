"""Contract of the gradient back end: settings, solution fields, trajectory, certificates."""
import numpy as np
import pytest
import torch

from lpm import LPMInputError, Problem, Status, get_solver
from lpm.core.solvers import available_solvers
from lpm.core.solvers.descent import Descent, _budget_multiplier
from lpm.core.solvers.gradient import GradientSolver, _objective


def etf_problem(ratio=10, loss="ce", **kwargs):
    return Problem.from_profile(K=10, ratio=ratio, majority=5, classifier="fixed-etf", loss=loss, **kwargs)


def learnable_problem(ratio, loss="ce"):
    return Problem.from_profile(K=10, ratio=ratio, majority=5, classifier="learnable", loss=loss)


def test_registered_with_its_rank():
    solver = get_solver("gradient")
    assert isinstance(solver, GradientSolver) and "gradient" in available_solvers()
    assert (solver.certifies, solver.speed_rank) == (False, 50)


def test_unknown_setting_is_refused_with_exact_message():
    with pytest.raises(LPMInputError) as err:
        get_solver("gradient", momentum=0.9)
    assert str(err.value) == (
        "The 'momentum' parameter of solver 'gradient' must be one of the settings batch_fraction, certify, device, "
        "dr_variant, dtype, gap_tol, init_scale, lr, method, optimizer, record_every, record_gradients, "
        "restarts, samples_per_class, seed, steps, stop_angle, tol. Got 0.9 instead.")


@pytest.mark.parametrize("settings, message", [
    (dict(optimizer="rmsprop"),
     "The 'optimizer' parameter of solver 'gradient' must be one of 'gd', 'adam'. Got 'rmsprop' instead."),
    (dict(steps=0), "The 'steps' parameter of solver 'gradient' must be an int >= 1. Got 0 instead."),
    (dict(lr=-1.0), "The 'lr' parameter of solver 'gradient' must be a number > 0. Got -1.0 instead."),
    (dict(record_gradients="yes"),
     "The 'record_gradients' parameter of solver 'gradient' must be True or False. Got 'yes' instead."),
    (dict(device="tpu"), "The 'device' parameter of solver 'gradient' must be a torch device available "
                         "here ('cpu'" + (", 'cuda'" if torch.cuda.is_available() else "")
     + "). Got 'tpu' instead."),
])
def test_bad_setting_values_are_refused(settings, message):
    with pytest.raises(LPMInputError) as err:
        get_solver("gradient", **settings)
    assert str(err.value) == message


def test_solution_fields_are_consistent_and_feasible():
    p = learnable_problem(100).replace(budget="per-sample")
    sol = get_solver("gradient", samples_per_class=3, steps=200).run(p)
    assert sol.features.shape == (30, p.d) and sol.W.shape == (10, p.d)
    np.testing.assert_array_equal(sol.labels, np.repeat(np.arange(10), 3))
    np.testing.assert_allclose(sol.H, sol.features.reshape(10, 3, -1).mean(axis=1), rtol=0, atol=0)
    assert np.max(np.sum(sol.features**2, axis=1)) <= p.E_H * (1 + 1e-12)          # per-sample ball
    assert np.mean(np.sum(sol.W**2, axis=1)) <= p.E_W * (1 + 1e-12)                # classifier budget
    # objective = Σ_k (p_k/s) Σ_i L(W h_{k,i}, k), recomputed independently
    Z = sol.features @ sol.W.T
    ce = np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(30), sol.labels]
    np.testing.assert_allclose(sol.objective, np.repeat(p.weights / 3, 3) @ ce, rtol=1e-13)
    assert sol.iterations == 200 and "step limit" in sol.message and sol.status is Status.STOPPED


def test_same_seed_same_answer_and_restarts_keep_the_best():
    p = learnable_problem(100)
    first, again = (get_solver("gradient", steps=15, seed=3).run(p) for _ in range(2))
    np.testing.assert_array_equal(first.features, again.features)
    settings = dict(get_solver("gradient").settings, steps=15, seed=3)

    def single(restart):
        run = Descent(p, settings, seed=(3, restart)).run()
        return _objective(p, run["F"], run["W"])

    singles = [single(i) for i in range(3)]
    best = get_solver("gradient", steps=15, seed=3, restarts=3).run(p)
    assert len(set(np.round(singles, 12))) == 3                      # the restarts really differ
    assert best.extra["restart"] == int(np.argmin(singles))
    np.testing.assert_allclose(best.objective, min(singles), rtol=1e-14)
    assert f"best of 3 restarts: restart {best.extra['restart']}" in best.message


def test_float32_reaches_the_float64_point():
    p = etf_problem(10)
    sol32 = get_solver("gradient", dtype="float32", steps=500).run(p)
    sol64 = get_solver("gradient").run(p)
    np.testing.assert_allclose(sol32.features, sol64.features, atol=1e-5)
    assert sol32.certificate.gap <= 1e-6


def test_learnable_without_certify_has_no_bound():
    sol = get_solver("gradient", certify=False, steps=50).run(learnable_problem(10))
    assert sol.certificate.lower_bound is None and sol.certificate.gap is None
    assert sol.status is Status.STOPPED and "reference_solver" not in sol.extra


# --------------------------------------------------------------------------- trajectory
def test_trajectory_spacing_monotone_loss_and_angle_to_optimum():
    p = etf_problem(100)
    sol = get_solver("gradient", steps=200, record_every=7, tol=0.0).run(p)
    traj = sol.trajectory.as_dict()
    assert traj["iteration"] == [*range(0, 200, 7), 200]                 # and the returned iterate
    loss = np.array(traj["loss"])
    assert loss[0] > loss[-1] and np.max(np.diff(loss)) <= 1e-14     # step 1/L: descent never goes up
    np.testing.assert_allclose(loss[-1], get_solver("analytic").run(p).objective, atol=1e-12)
    assert traj["angle"][0] > 0.1 and traj["angle"][-1] <= 1e-9     # radians, max over classes
    assert traj["distance"][0] > 0.1 and traj["distance"][-1] <= 1e-9
    assert sol.extra["trajectory_reference"] == "analytic"


def test_trajectory_without_closed_form_uses_final_iterate():
    p = Problem.from_profile(K=6, ratio=10, classifier="fixed-random", loss="ce", d=8)
    sol = get_solver("gradient", steps=400, record_every=20, tol=0.0).run(p)
    assert sol.extra["trajectory_reference"] == "final-iterate"
    distance = np.array(sol.trajectory.values["distance"])
    assert distance[0] > 0.1 and distance[-1] <= 1e-6 and np.all(np.diff(distance) <= 1e-12)
    assert sol.certificate.gap <= 1e-8 and sol.status is Status.OPTIMAL   # convex: Frank–Wolfe certifies


def test_pull_and_push_on_minority_classifiers():
    settings = dict(record_gradients=True, steps=300, record_every=50)
    heavy = get_solver("gradient", **settings).run(learnable_problem(1e4)).trajectory.values
    assert all(push > 10 * pull for pull, push in zip(heavy["pull_norm"], heavy["push_norm"]))  # §4.4
    balanced = get_solver("gradient", **settings).run(learnable_problem(1)).trajectory.values
    assert balanced["pull_norm"][-1] > balanced["push_norm"][-1] > 0
    dr = get_solver("gradient", **settings).run(learnable_problem(1e4, "dr")).trajectory.values
    assert max(dr["push_norm"]) == 0.0 and min(dr["pull_norm"]) > 0       # DR has no push term


# --------------------------------------------------------------------------- class-average metric projection
@pytest.mark.parametrize("scale", [3.0, 0.3])  # outside the sphere (λ > 0) and inside (λ < 0)
def test_class_average_sphere_point_is_nearest_in_sample_metric(scale):
    rng = np.random.default_rng(1)
    p = np.array([0.4, 0.3, 0.2, 0.1, 1e-4])
    Y = scale * rng.standard_normal((5, 2, 3))
    capacity = 10.0
    lam = _budget_multiplier(np.sum(Y**2, axis=(1, 2)), p, capacity)
    X = Y * (p / (p + lam))[:, None, None]
    np.testing.assert_allclose(np.sum(X**2), capacity, rtol=1e-12)
    cost = lambda Z: np.sum(p[:, None, None] * (Z - Y) ** 2)  # noqa: E731  (metric of the N samples)
    for _ in range(200):
        Z = X + 0.05 * rng.standard_normal(X.shape)
        Z *= np.sqrt(capacity) / np.linalg.norm(Z)
        assert cost(Z) >= cost(X) - 1e-12


@pytest.mark.parametrize("classifier", ["learnable", "fixed-etf"])
def test_a_step_far_too_large_is_reported_as_divergence(classifier):
    """lr = 1e300 overflows on the first step: the solver keeps the last finite iterate and says it
    diverged (never 'converged', never a crash); lr = 1e3 makes the learnable objective rise."""
    p = Problem.from_profile(K=10, ratio=100, classifier=classifier)
    huge = get_solver("gradient", lr=1e300, steps=50).run(p)
    assert huge.status is Status.STOPPED and np.isfinite(huge.objective)
    assert huge.message.startswith("diverged at step 1: the step overflowed (the step size, lr = 1e+300, is too large)")
    if classifier == "learnable":
        large = get_solver("gradient", lr=1e3, steps=200).run(p)
        assert large.status is Status.STOPPED and large.message.startswith("diverged: the objective rose from")


def test_riemannian_step_at_a_small_budget_converges_instead_of_oscillating():
    """Per-sample CE, E_W·E_H = 0.5: the sphere's own curvature |⟨u, h⟩|/‖h‖² exceeds the loss's,
    so a step of 1/(c‖W‖²) alone left the iterate in a period-2 orbit 0.22 rad from the optimum;
    the step bounds both and the run converges (Theorem 1's optimum, certified)."""
    p = Problem.from_profile(K=10, ratio=1, classifier="fixed-etf", loss="ce", E_W=1.0, E_H=0.5)
    sol = get_solver("gradient", method="riemannian", steps=3000).run(p)
    assert sol.status is Status.OPTIMAL and sol.trajectory.values["angle"][-1] < 1e-6


def test_angles_are_measured_as_the_run_goes_and_stop_angle_stops_it():
    """With a closed-form optimum the max and the mean angle of the class means, and of every
    sample, are recorded every step; stop_angle stops at the first recorded step where both mean
    angles are below it."""
    p = Problem.from_profile(K=10, ratio=1, classifier="fixed-etf", loss="ce", E_W=1.0, E_H=5.0)
    full = get_solver("gradient", steps=400, record_every=1, tol=0.0).run(p)
    values = full.trajectory.values
    assert np.all(np.array(values["angle"]) >= np.array(values["angle_mean"]) - 1e-15)
    assert np.all(np.array(values["sample_angle"]) >= np.array(values["sample_angle_mean"]) - 1e-15)
    # each sample starts at its own random direction: its angle exceeds that of its class mean
    assert values["sample_angle_mean"][0] > values["angle_mean"][0]
    angles = np.maximum(values["angle_mean"], values["sample_angle_mean"])
    first = int(np.argmax(angles <= 1e-4))
    assert angles[first] <= 1e-4 < angles[first - 1]
    stopped = get_solver("gradient", steps=400, record_every=1, tol=0.0, stop_angle=1e-4).run(p)
    assert stopped.iterations == first and stopped.message.startswith("reached a mean angle")
    assert full.extra["trajectory_reference"] == "analytic"
    with pytest.raises(LPMInputError, match="^The 'stop_angle' parameter of solver 'gradient' must be left unset"):
        get_solver("gradient", stop_angle=0.1).run(Problem.from_profile(K=4, ratio=3))


def test_stochastic_minibatches_reach_the_same_optimum():
    """batch_fraction = 0.25 (SGD): a quarter of the sample vectors moves per step; with the
    fixed ETF every sample still reaches Theorem 1's optimum, more slowly than full-batch GD."""
    p = Problem.from_profile(K=10, ratio=10, classifier="fixed-etf", loss="ce", E_W=1.0, E_H=5.0)
    gd = get_solver("gradient", steps=400, record_every=1, tol=0.0).run(p)
    sgd = get_solver("gradient", steps=400, record_every=1, tol=0.0, batch_fraction=0.25).run(p)
    assert sgd.status is Status.OPTIMAL and sgd.certificate.gap <= 1e-10
    first = lambda sol: int(np.argmax(np.array(sol.trajectory.values["angle_mean"]) <= 1e-3))  # noqa: E731
    assert 2 * first(gd) < first(sgd) < 8 * first(gd)
