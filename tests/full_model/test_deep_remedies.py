"""Long-tail remedies in deep training: class weights, deferred re-weighting, samplers, second stages.

Each remedy trains end to end on offline data and resumes bit for bit; the sampling frequencies are
tested statistically; the second stages are checked against the parent's weights computed by hand.
"""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from full_model import checkpoint as ckpt
from full_model import run_format as rf
from lpm.core.weighting import class_weights
from full_model.config import build_config, default_run_name, stage_config
from full_model.data import load_dataset
from full_model.distributed import DistContext
from full_model.loader import Normalizer, TensorTrainLoader
from full_model.losses import Objective
from full_model.models import build_network
from full_model.sampling import class_probabilities, epoch_order
from full_model.train import TAU_GRID, Trainer, resume_config, train
from lpm.core.errors import LPMInputError
from lpm.core.losses import LOSS_NAMES

COUNTS = np.array([50, 20, 8, 3])
TINY = dict(dataset="synthetic-lt", ratio=10, n_max=30, head="learnable", loss="ce", batch_size=16,
            warmup_epochs=0, mixup_alpha=1.0, progress=False, feature_dim=16, nc4_on_train=False, figures=False,
            eval_batch_size=256)


def _state(run_dir):
    return ckpt.load(run_dir / rf.CHECKPOINT_FILE, "cpu")


def _assert_same_run(a, b):
    """Two run folders hold bit-identical models, optimiser states, data generators and metrics."""
    sa, sb = _state(a), _state(b)
    for key, value in sa["model"].items():
        assert torch.equal(value, sb["model"][key]), key
    for x, y in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert torch.equal(x["momentum_buffer"], y["momentum_buffer"])
    assert sa["rng"]["data"] == sb["rng"]["data"] and sa["epoch"] == sb["epoch"]
    strip = lambda r: {k: v for k, v in r.items() if not k.endswith("_s") and k != "images_per_s"}  # noqa: E731
    assert [strip(r) for r in rf.read_metrics(a / rf.METRICS_FILE)] == \
        [strip(r) for r in rf.read_metrics(b / rf.METRICS_FILE)]


# ---------------------------------------------------------------- class weights
def test_class_weights_are_normalised_to_unit_expected_weight():
    pi = COUNTS / COUNTS.sum()
    for scheme, shape in (("none", np.ones(4)), ("inverse", 1 / COUNTS), ("sqrt", COUNTS ** -0.5)):
        w = class_weights(scheme, COUNTS)
        assert pi @ w == pytest.approx(1.0, abs=1e-15)
        np.testing.assert_allclose(w / w[0], shape / shape[0], rtol=1e-14)
    np.testing.assert_allclose(pi * class_weights("inverse", COUNTS), 0.25, rtol=1e-14)  # re-sampling q = 1/K
    beta = 0.9
    w = class_weights("class-balanced", COUNTS, beta)
    effective = (1 - beta ** COUNTS) / (1 - beta)  # Cui et al.'s effective number of samples
    np.testing.assert_allclose(w / w[0], effective[0] / effective, rtol=1e-12)
    np.testing.assert_allclose(class_weights("class-balanced", COUNTS, 1e-9), 1.0, rtol=1e-8)  # β → 0: none
    np.testing.assert_allclose(class_weights("class-balanced", COUNTS, 1 - 1e-12), class_weights("inverse", COUNTS),
                               rtol=1e-6)  # β → 1: inverse frequency
    with pytest.raises(LPMInputError, match="'beta' parameter must be left unset unless class_weights"):
        class_weights("inverse", COUNTS, 0.9)


def test_weighted_objective_is_the_weighted_batch_mean_whatever_the_scale_of_the_weights():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(12, 4, generator=g, dtype=torch.float64), torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 0])
    counts = torch.bincount(y, minlength=4)
    w = torch.as_tensor(class_weights("inverse", COUNTS))
    obj = Objective("ce").with_weights(w)
    value = obj(None, z, None, y, y, 1.0, counts, 12)
    torch.testing.assert_close(value, F.cross_entropy(z, y, weight=w), rtol=1e-14, atol=0)
    torch.testing.assert_close(Objective("ce").with_weights(7.5 * w)(None, z, None, y, y, 1.0, counts, 12), value,
                               rtol=1e-14, atol=0)
    # mixup: λ-weighted mean of the two weighted means (the partners permute the same labels)
    perm = torch.randperm(12, generator=g)
    mixed = obj(None, z, None, y, y[perm], 0.3, counts, 12)
    torch.testing.assert_close(mixed, 0.3 * F.cross_entropy(z, y, weight=w) +
                               0.7 * F.cross_entropy(z, y[perm], weight=w), rtol=1e-14, atol=0)
    # two processes, each with every other row: DDP's gradient average of their objectives is the global one
    halves = [obj(None, z[r::2], None, y[r::2], y[r::2], 1.0, counts, 12, world_size=2) for r in (0, 1)]
    torch.testing.assert_close((halves[0] + halves[1]) / 2, value, rtol=1e-14, atol=0)
    # without weights: exactly the plain mean, as before
    plain = Objective("ce")(None, z, None, y, y, 1.0, counts, 12)
    assert torch.equal(plain, F.cross_entropy(z, y, reduction="sum") / 12)


# ---------------------------------------------------------------- samplers
@pytest.mark.parametrize("sampler", ["class-balanced", "sqrt", "progressive"])
def test_sampler_frequencies_match_their_class_probabilities(sampler):
    labels = np.repeat(np.arange(4), COUNTS)
    rng = np.random.default_rng(1)
    epochs, N = 400, len(labels)
    seen = np.zeros(4)
    expected = np.zeros(4)
    for e in range(epochs):
        order = epoch_order(rng, labels, 4, sampler, epoch=e, epochs=epochs)
        assert order.shape == (N,) and order.min() >= 0 and order.max() < N
        per_class = np.bincount(labels[order], minlength=4)
        # within a class, samples are used in full cycles before any repeats
        for k in range(4):
            uses = np.bincount(order[labels[order] == k], minlength=N)[labels == k]
            assert uses.max() - uses.min() <= 1, (k, uses)
        seen += per_class
        expected += N * class_probabilities(sampler, COUNTS, e, epochs)
    # multinomial draws: each class count is within 5 standard deviations of its expectation
    total = epochs * N
    sd = np.sqrt(expected * (1 - expected / total))
    assert np.all(np.abs(seen - expected) < 5 * sd), (seen, expected)
    q = {"class-balanced": np.full(4, 0.25), "sqrt": np.sqrt(COUNTS) / np.sqrt(COUNTS).sum(),
         "progressive": None}[sampler]
    if q is not None:
        np.testing.assert_allclose(class_probabilities(sampler, COUNTS), q, rtol=1e-14)
        assert np.all(np.abs(seen / total - q) < 0.01)


def test_progressive_sampler_moves_from_instance_to_class_balanced():
    pi = COUNTS / COUNTS.sum()
    np.testing.assert_allclose(class_probabilities("progressive", COUNTS, 0, 10), pi, rtol=1e-14)
    np.testing.assert_allclose(class_probabilities("progressive", COUNTS, 5, 10), 0.5 * pi + 0.125, rtol=1e-14)
    np.testing.assert_allclose(class_probabilities("progressive", COUNTS, 10, 10), 0.25, rtol=1e-14)


def test_instance_sampler_is_the_plain_permutation_and_samplers_are_seeded():
    labels = np.repeat(np.arange(4), COUNTS)
    np.testing.assert_array_equal(epoch_order(np.random.default_rng(5), labels, 4),
                                  np.random.default_rng(5).permutation(len(labels)))
    a = epoch_order(np.random.default_rng(5), labels, 4, "sqrt")
    np.testing.assert_array_equal(a, epoch_order(np.random.default_rng(5), labels, 4, "sqrt"))
    assert not np.array_equal(a, epoch_order(np.random.default_rng(6), labels, 4, "sqrt"))


def test_two_processes_split_the_rows_of_the_same_class_balanced_batches():
    x = np.arange(81, dtype=np.float32)[:, None].repeat(3, 1)
    y = np.repeat(np.arange(4), COUNTS)
    norm = Normalizer(None, None, "cpu")
    make = lambda ctx: TensorTrainLoader(x, y, 4, batch_size=16, device="cpu", ctx=ctx,  # noqa: E731
                                         rng=np.random.default_rng(3), normalizer=norm, sampler="class-balanced")
    one, ranks = list(make(DistContext())), [list(make(DistContext(r, 2))) for r in (0, 1)]
    for b, batch in enumerate(one):
        assert torch.equal(ranks[0][b].x, batch.x[0::2]) and torch.equal(ranks[1][b].x, batch.x[1::2])
        assert torch.equal(ranks[0][b].counts, batch.counts)


# ---------------------------------------------------------------- training end to end, resume
REMEDIES = {
    "inverse": dict(class_weights="inverse"),
    "sqrt-weights": dict(class_weights="sqrt"),
    "cb-drw": dict(class_weights="class-balanced", drw_epoch=2),
    "class-balanced-sampler": dict(sampler="class-balanced"),
    "sqrt-sampler": dict(sampler="sqrt"),
    "progressive": dict(sampler="progressive"),
    "cosine-head": dict(cosine_scale=10.0),
    # the parametrised losses of the registry, bound to the run's counts (they run once lpm.core.losses has them)
    "la": dict(loss="la", tau=1.0),
    "cdt": dict(loss="cdt", gamma=0.2),
    "ldam-drw": dict(loss="ldam", margin=0.5, class_weights="class-balanced", drw_epoch=2),
    "vs": dict(loss="vs", tau=1.0, gamma=0.2),
}


class Crash(Exception):
    pass


def _train_interrupted(cfg, monkeypatch, after: int):
    """Train ``cfg`` but crash at the start of 0-based epoch ``after`` (its checkpoint holds ``after`` epochs)."""
    real = Trainer.epoch

    def epoch(self, index):
        if index == after:
            raise Crash
        return real(self, index)

    monkeypatch.setattr(Trainer, "epoch", epoch)
    with pytest.raises(Crash):
        train(cfg)
    monkeypatch.setattr(Trainer, "epoch", real)


@pytest.mark.parametrize("name", list(REMEDIES))
def test_each_remedy_trains_and_resumes_bit_identically(tmp_path, monkeypatch, name):
    if REMEDIES[name].get("loss", "ce") not in LOSS_NAMES:
        pytest.skip(f"the loss '{REMEDIES[name]['loss']}' is not registered in lpm.core.losses")
    settings = {**TINY, **REMEDIES[name], "epochs": 3}
    whole = train(build_config({**settings, "out": str(tmp_path / "whole")}))
    _train_interrupted(build_config({**settings, "out": str(tmp_path / "part")}), monkeypatch, after=2)
    train(build_config({**settings, "out": str(tmp_path / "part")}), resume=True)
    _assert_same_run(tmp_path / "whole", tmp_path / "part")
    saved = json.loads((tmp_path / "whole" / rf.CONFIG_FILE).read_text())["config"]
    assert all(saved[k] == v for k, v in REMEDIES[name].items())
    assert whole.metrics[-1]["train_accuracy"] > 0.3  # learnt (chance is 0.1)


def test_deferred_reweighting_switches_the_weights_on_at_its_epoch(tmp_path):
    plain = train(build_config({**TINY, "epochs": 3, "out": str(tmp_path / "plain")}))
    drw = train(build_config({**TINY, "epochs": 3, "class_weights": "inverse", "drw_fraction": 0.6,
                              "out": str(tmp_path / "drw")}))
    assert json.loads((tmp_path / "drw" / rf.CONFIG_FILE).read_text())["config"]["drw_epoch"] == 2  # round(0.6·3)
    assert [r["class_weighted"] for r in drw.metrics] == [False, False, True]
    keys = ("train_loss", "train_accuracy", "test_accuracy", "nc1")
    for a, b in zip(plain.metrics[:2], drw.metrics[:2]):  # before its epoch, DRW is the plain run, bit for bit
        assert all(a[k] == b[k] for k in keys)
    assert drw.metrics[2]["train_loss"] != plain.metrics[2]["train_loss"]
    assert "drw2" in default_run_name(build_config({**TINY, "epochs": 3, "class_weights": "inverse",
                                                    "drw_fraction": 0.6}))


def test_remedy_settings_are_checked_and_named():
    with pytest.raises(LPMInputError) as err:
        build_config({**TINY, "drw_epoch": 2})
    assert str(err.value) == ("The 'class_weights' parameter must be 'inverse', 'sqrt' or 'class-balanced' for "
                              "deferred re-weighting (drw_fraction / drw_epoch). Got 'none' instead.")
    with pytest.raises(LPMInputError, match="'tau' parameter must be left unset for loss 'ce'"):
        build_config({**TINY, "tau": 1.0})
    with pytest.raises(LPMInputError, match="'sampler' parameter must be one of 'instance', 'class-balanced'"):
        build_config({**TINY, "sampler": "balanced"})
    cfg = build_config({**TINY, "epochs": 200, "class_weights": "class-balanced", "drw_fraction": 0.8,
                        "sampler": "sqrt"})
    assert cfg.beta == 0.9999 and cfg.drw_epoch == 160  # LDAM-DRW: weights from epoch 160 of 200
    assert "_w-class-balanced0.9999_drw160_s-sqrt_" in cfg.out
    # runs without a remedy keep the folder names they had before the remedy settings existed
    assert build_config(dict(dataset="synthetic-lt", ratio=10, n_max=30, epochs=3)).out == \
        "runs/synthetic-lt_learnable_ce_R10_e3_seed0_341f2e"
    assert build_config(dict(dataset="cifar10-lt", head="fixed-etf", loss="dr")).out == \
        "runs/cifar10-lt_fixed-etf_dr_R100_e200_seed0_9310ff"


# ---------------------------------------------------------------- second stages
@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("parent") / "joint"
    train(build_config({**TINY, "epochs": 3, "head_bias": True, "subset_draw": "ldam-drw", "class_weights": "sqrt",
                        "out": str(out)}))
    return out


def _features_and_logits(run_dir, split="test"):
    """(h, z, y) of a run's model on a split of its data, computed directly."""
    cfg = json.loads((run_dir / rf.CONFIG_FILE).read_text())["config"]
    data = load_dataset(cfg["dataset"], ratio=cfg["ratio"], n_max=cfg["n_max"], subset_draw=cfg["subset_draw"])
    net = build_network("mlp", "learnable", 10, data.input_shape, feature_dim=16, head_bias=True)
    state = _state(run_dir)["model"]
    if "logit_offset" in state:
        net.set_logit_offset(torch.zeros(10))
    net.load_state_dict(state)
    net.eval()
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    with torch.no_grad():
        h, z = net(torch.from_numpy(x), with_features=True)
    return h, z, torch.from_numpy(y), net


def test_crt_retrains_a_fresh_classifier_on_frozen_features_and_resumes(parent_run, tmp_path, monkeypatch):
    cfg = stage_config("crt", parent_run, {"epochs": 2, "out": str(tmp_path / "crt")})
    assert (cfg.sampler, cfg.loss, cfg.schedule, cfg.mixup_alpha, cfg.head_bias, cfg.subset_draw, cfg.class_weights) \
        == ("class-balanced", "ce", "cosine", 0.0, True, "ldam-drw", "none")
    result = train(cfg)
    saved = json.loads((tmp_path / "crt" / rf.CONFIG_FILE).read_text())["config"]
    assert (saved["stage"], saved["parent"]) == ("crt", str(parent_run.resolve()))
    parent, child = _state(parent_run)["model"], _state(tmp_path / "crt")["model"]
    for key in parent:
        if key.startswith("backbone."):  # the features never moved: weights and BatchNorm statistics
            assert torch.equal(parent[key], child[key]), key
    assert not torch.equal(parent["head.linear.weight"], child["head.linear.weight"])
    assert result.metrics[-1]["train_loss"] < result.metrics[0]["train_loss"]
    # stopped after one epoch and resumed: the same classifier, bit for bit
    _train_interrupted(stage_config("crt", parent_run, {"epochs": 2, "out": str(tmp_path / "part")}), monkeypatch, 1)
    train(resume_config(tmp_path / "part"), resume=True)
    _assert_same_run(tmp_path / "crt", tmp_path / "part")


def test_stages_keep_the_parents_data_and_network(parent_run, tmp_path):
    with pytest.raises(LPMInputError) as err:
        stage_config("crt", parent_run, {"feature_dim": 32})
    assert str(err.value) == (f"The 'feature_dim' parameter must be 16 as in the parent run {parent_run}/config.json "
                              f"(a second stage keeps its parent's data and network). Got 32 instead.")
    with pytest.raises(LPMInputError) as err:
        stage_config("crt", tmp_path)
    assert str(err.value) == (f"The 'parent' parameter must be a finished run folder of `lpm train-deep` (holding "
                              f"config.json, checkpoint.pt and summary.json); missing config.json. Got "
                              f"'{tmp_path}' instead.")
    # a post-hoc stage keeps the whole record of how its model was trained
    post = stage_config("logit-adjust", parent_run)
    assert (post.subset_draw, post.class_weights, post.head_bias, post.epochs, post.adjust_tau) == \
        ("ldam-drw", "sqrt", True, 3, 1.0)
    with pytest.raises(LPMInputError, match="'lr' parameter must be left unset for stage 'tau-norm'"):
        stage_config("tau-norm", parent_run, {"lr": 0.5})
    fixed = tmp_path / "etf"
    train(build_config({**TINY, "epochs": 1, "head": "fixed-etf", "out": str(fixed)}))
    with pytest.raises(LPMInputError, match="classifier re-training needs the learnable head"):
        stage_config("crt", fixed)


def test_tau_norm_rescales_the_rows_and_chooses_tau_on_the_training_set(parent_run, tmp_path):
    W = _state(parent_run)["model"]["head.linear.weight"]
    given = train(stage_config("tau-norm", parent_run, {"tau_norm": 0.7, "out": str(tmp_path / "given")}))
    norms = W.norm(dim=1, keepdim=True)
    torch.testing.assert_close(_state(tmp_path / "given")["model"]["head.linear.weight"], W / norms ** 0.7,
                               rtol=1e-6, atol=0)
    h, z, y, _ = _features_and_logits(tmp_path / "given")
    assert given.metrics[0]["test_accuracy"] == pytest.approx((z.argmax(1) == y).double().mean().item(), abs=1e-12)
    assert given.metrics[0]["epoch"] == 0 and given.metrics[0]["tau_norm"] == 0.7
    same = train(stage_config("tau-norm", parent_run, {"tau_norm": 0.0, "out": str(tmp_path / "zero")}))
    assert same.metrics[0]["test_accuracy"] == rf.read_metrics(parent_run / rf.METRICS_FILE)[-1]["test_accuracy"]
    chosen = train(stage_config("tau-norm", parent_run, {"out": str(tmp_path / "chosen")})).metrics[0]
    # the recorded scores are the balanced training accuracies of each τ, computed here by hand
    h, _, y, net = _features_and_logits(parent_run, "train")
    bias = net.head.linear.bias.detach()
    for tau, score in zip(TAU_GRID, chosen["tau_norm_train_balanced_accuracy"]):
        pred = (h @ (W / norms ** tau).T + bias).argmax(1)
        by_class = [(pred[y == k] == k).double().mean().item() for k in range(10)]
        assert score == pytest.approx(np.mean(by_class), abs=1e-12)
    scores = chosen["tau_norm_train_balanced_accuracy"]
    assert chosen["tau_norm"] == TAU_GRID[int(np.argmax(scores))] and chosen["tau_norm_grid"] == TAU_GRID.tolist()


def test_logit_adjustment_subtracts_tau_log_prior(parent_run, tmp_path):
    result = train(stage_config("logit-adjust", parent_run, {"adjust_tau": 1.5, "out": str(tmp_path / "la")}))
    counts = np.asarray(json.loads((parent_run / rf.CONFIG_FILE).read_text())["data"]["train_counts"], float)
    offset = _state(tmp_path / "la")["model"]["logit_offset"]
    np.testing.assert_allclose(offset.numpy(), -1.5 * np.log(counts / counts.sum()), rtol=1e-6)
    _, z, y, _ = _features_and_logits(parent_run)  # the parent's logits
    adjusted = z - 1.5 * torch.log(torch.as_tensor(counts / counts.sum(), dtype=torch.float32))
    assert result.metrics[0]["test_accuracy"] == pytest.approx((adjusted.argmax(1) == y).double().mean().item(),
                                                               abs=1e-12)
    run = rf.load_run(tmp_path / "la")
    assert run.config["config"]["stage"] == "logit-adjust" and run.summary["epochs"] == 0
    # a second stage of a post-hoc stage: the offset travels with the weights
    train(stage_config("tau-norm", tmp_path / "la", {"tau_norm": 0.0, "out": str(tmp_path / "la-tn")}))
    assert rf.read_metrics(tmp_path / "la-tn" / rf.METRICS_FILE)[0]["test_accuracy"] == \
        result.metrics[0]["test_accuracy"]
    # resumed, a post-hoc run evaluates its saved model again and writes the same row
    again = train(resume_config(tmp_path / "la"), resume=True)
    assert again.metrics[0]["test_accuracy"] == result.metrics[0]["test_accuracy"]
    assert math.isclose(again.metrics[0]["adjust_tau"], 1.5)


def test_the_cosine_head_gives_scaled_cosines_and_records_them_as_w_h():
    torch.manual_seed(0)
    net = build_network("mlp", "learnable", 5, (12,), feature_dim=8, cosine_scale=30.0)
    x = torch.randn(7, 12)
    f = net.backbone.forward_features(x)
    V = net.head.linear.weight
    cosines = F.normalize(f, dim=1) @ F.normalize(V, dim=1).T
    h, z = net(x, with_features=True)
    torch.testing.assert_close(z, 30.0 * cosines, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z, h @ net.get_classifier().T, rtol=1e-6, atol=1e-6)  # z = W h, as for every head
    torch.testing.assert_close(net.get_classifier().norm(dim=1), torch.full((5,), 30.0))
    with pytest.raises(LPMInputError, match="'cosine_scale' parameter must be left unset for the fixed-etf head"):
        build_config({**TINY, "head": "fixed-etf", "cosine_scale": 30.0})
