"""End-to-end deep runs on tiny offline data: training, fixed heads, resume, run folder."""
import json
import math
import re

import numpy as np
import pytest
import torch

import full_model.train as train_module
from full_model import checkpoint as ckpt
from full_model import run_format as rf
from full_model.config import build_config
from full_model.data import load_dataset, long_tail_counts
from full_model.errors import RunWarning
from full_model.models import build_network
from full_model.plots import plot_metrics
from full_model.train import train
from lpm.core.errors import LPMInputError
from lpm.core.etf import simplex_etf
from lpm.core.geometry import ClassificationStats, ClassStats, class_groups, measure

TIMING = ("epoch_time_s", "images_per_s", "eval_time_s")
# augmentation, mixup and in-batch balancing all draw random numbers: a demanding case for resume
RICH = dict(dataset="synthetic-images-lt", backbone="mlp", ratio=10, n_max=24, head="fixed-etf", loss="dr",
            dr_form="released", batch_size=32, warmup_epochs=1, milestones=[2], mixup_alpha=1.0, progress=False,
            eval_batch_size=128, feature_dim=32)


@pytest.fixture(scope="module")
def rich_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rich") / "run"
    return train(build_config({**RICH, "epochs": 3, "out": str(out)}))


PAIRS = [("learnable", "ce", "paper"), ("fixed-etf", "ce", "paper"), ("fixed-etf", "dr", "paper"),
         ("fixed-etf", "dr", "released"), ("fixed-random", "ce", "paper"), ("fixed-random", "dr", "paper")]


@pytest.mark.parametrize("head,loss,form", PAIRS)
def test_every_allowed_pairing_lowers_the_training_loss(tmp_path, head, loss, form):
    cfg = build_config(dict(dataset="synthetic-lt", ratio=10, n_max=60, head=head, loss=loss, dr_form=form, epochs=4,
                            batch_size=32, warmup_epochs=0, lr_decay=1.0, mixup_alpha=0, out=str(tmp_path / "r"),
                            progress=False, feature_dim=32, nc4_on_train=False, figures=False))
    result = train(cfg)
    losses = [row["train_loss"] for row in result.metrics]
    # lower bounds: DR ≥ 0; with unit h and unit rows, CE ≥ log(1 + (K−1) e^{−K/(K−1)}) for the ETF
    # (theory.md §5, Thm 1) and CE ≥ log(1 + (K−1) e^{−2}) for any fixed rows (logit gaps are at most 2)
    floor = {("fixed-etf", "ce"): math.log(1 + 9 * math.exp(-10 / 9)),
             ("fixed-random", "ce"): math.log(1 + 9 * math.exp(-2))}.get((head, loss), 0.0)
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 0.2 * (losses[0] - floor) and min(losses) > floor, losses
    assert result.metrics[-1]["train_accuracy"] > 0.8
    state = ckpt.load(tmp_path / "r" / rf.CHECKPOINT_FILE, "cpu")["model"]
    if head == "learnable":  # really learnable: the classifier moved away from its initialisation
        torch.manual_seed(cfg.seed)
        start = build_network("mlp", "learnable", 10, (32,), feature_dim=32).get_classifier().detach()
        assert (state["head.linear.weight"] - start).norm() > 0.1 * start.norm()


def test_fixed_etf_buffer_is_bit_identical_after_training_and_restore(rich_run):
    state = ckpt.load(rich_run.run_dir / rf.CHECKPOINT_FILE, "cpu")["model"]
    M = torch.from_numpy(simplex_etf(10, 32, 0)).float()
    assert torch.equal(state["head.M"], M)
    net = build_network("mlp", "fixed-etf", 10, (3, 32, 32), feature_dim=32, head_seed=1)
    assert not torch.equal(net.head.M, M)
    net.load_state_dict(state)
    assert torch.equal(net.get_classifier(), M.T)
    run = rf.load_run(rich_run.run_dir)
    np.testing.assert_array_equal(run.geometry["classifier"], M.T.double().numpy())


def test_resume_continues_exactly(rich_run, tmp_path):
    out = tmp_path / "resumed"
    with pytest.warns(RunWarning, match="the lr decay at milestone 2 never happens in a 2-epoch run"):
        train(build_config({**RICH, "epochs": 2, "out": str(out), "figures": False}))
    with pytest.raises(LPMInputError, match="a new run folder"):
        train(build_config({**RICH, "epochs": 3, "out": str(out)}))
    train(build_config({**RICH, "epochs": 3, "out": str(out), "figures": False}), resume=True)
    a = ckpt.load(rich_run.run_dir / rf.CHECKPOINT_FILE, "cpu")
    b = ckpt.load(out / rf.CHECKPOINT_FILE, "cpu")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(x["momentum_buffer"], y["momentum_buffer"])
    assert a["rng"]["data"] == b["rng"]["data"] and a["scheduler"] == b["scheduler"] and a["epoch"] == 3
    rows_a, rows_b = rf.read_metrics(rich_run.run_dir / rf.METRICS_FILE), rf.read_metrics(out / rf.METRICS_FILE)
    assert [r["epoch"] for r in rows_b] == [1, 2, 3]
    strip = lambda r: {k: v for k, v in r.items() if k not in TIMING}  # noqa: E731
    assert [strip(r) for r in rows_a] == [strip(r) for r in rows_b]


def test_tracked_geometry_equals_a_one_shot_computation(rich_run):
    """The streamed per-epoch metrics equal measure() on all features computed at once."""
    cfg = build_config({**RICH, "epochs": 3})
    data = load_dataset("synthetic-images-lt", ratio=10, n_max=24)
    net = build_network("mlp", "fixed-etf", 10, (3, 32, 32), feature_dim=32)
    net.load_state_dict(ckpt.load(rich_run.run_dir / rf.CHECKPOINT_FILE, "cpu")["model"])
    net.eval()
    mean, std = torch.tensor(data.mean).view(1, 3, 1, 1), torch.tensor(data.std).view(1, 3, 1, 1)
    x = (torch.from_numpy(data.x_train).float() / 255 - mean) / std
    with torch.no_grad():
        h, z = net(x, with_features=True)
    stats = ClassStats(10, 32)
    stats.update(h, data.y_train)
    acc = ClassificationStats(10, class_groups(10))
    acc.update(z, data.y_train)
    expected = measure(stats.means, net.get_classifier(), counts=stats.counts, within_cov=stats.within_cov,
                       majority=7, groups=class_groups(10), center=cfg.center)
    last = rich_run.metrics[-1]
    for key in ("nc1", "nc2", "nc3", "y22_gap", "y22_self_cos_mean", "collapse_index", "feature_collapse_index"):
        np.testing.assert_allclose(last[key], expected[key], rtol=2e-5, atol=1e-7, err_msg=key)
    assert last["train_accuracy"] == acc.result()["accuracy"]
    assert last["train_tail_accuracy"] == acc.result()["tail_accuracy"]


def test_run_folder_is_complete_and_loadable(rich_run):
    run = rf.load_run(rich_run.run_dir)
    assert [r["epoch"] for r in run.metrics] == [1, 2, 3]
    assert run.config["format_version"] == rf.FORMAT_VERSION and run.config["config"]["head"] == "fixed-etf"
    counts = list(long_tail_counts(10, 10, "exp", 24))
    assert run.config["data"]["train_counts"] == counts
    assert run.geometry["class_means"].shape == (10, 32) and int(run.geometry["num_classes"]) == 10
    np.testing.assert_array_equal(run.train_counts, counts)
    np.testing.assert_array_equal(run.geometry["class_counts"], counts)
    assert [r["lr"] for r in run.metrics] == pytest.approx([0.1, 0.1, 0.01])  # warm-up 1, ×0.1 from epoch 2
    tests = [r["test_accuracy"] for r in run.metrics]
    assert run.summary["best_test_accuracy"] == max(tests) and run.summary["last_test_accuracy"] == tests[-1]
    png = (rich_run.run_dir / rf.FIGURE_FILE).read_bytes()
    assert png[:4] == b"\x89PNG"
    # 14×11 inches at 200 dpi (the IHDR chunk holds width and height)
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (2800, 2200)


def test_load_run_names_what_is_wrong(rich_run, tmp_path):
    with pytest.raises(LPMInputError) as err:
        rf.load_run(tmp_path)
    assert str(err.value) == (f"The 'run_dir' parameter must be a run folder written by `lpm train-deep` "
                              f"(missing config.json). Got '{tmp_path}' instead.")
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(rich_run.run_dir, copy)
    config = json.loads((copy / rf.CONFIG_FILE).read_text())
    config["format_version"] = 99
    (copy / rf.CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(LPMInputError, match="config.json has format_version 99, this lpm reads 1"):
        rf.load_run(copy)


def test_progress_bar_follows_the_running_loss_and_nc1_is_rounded(tmp_path, monkeypatch, capsys):
    postfixes = []

    class Recording(train_module.tqdm):
        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            postfixes.append(dict(kwargs))
            super().set_postfix(ordered_dict, refresh, **kwargs)

    monkeypatch.setattr(train_module, "tqdm", Recording)
    monkeypatch.setattr(train_module, "POSTFIX_EVERY_S", 0.0)  # refresh at every step
    cfg = build_config(dict(dataset="synthetic-lt", ratio=10, n_max=60, epochs=1, batch_size=16, warmup_epochs=0,
                            mixup_alpha=0, out=str(tmp_path / "r"), feature_dim=16, figures=False, device="cpu"))
    row = train(cfg).metrics[0]
    steps = -(-236 // 16)  # 236 training rows
    assert len(postfixes) == steps and len({p["loss"] for p in postfixes}) > 1  # it moves with the batches
    assert postfixes[-1] == {"loss": f"{row['train_loss']:.4f}", "acc": f"{row['batch_accuracy']:.3f}"}
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("epoch 1/1"))
    assert re.search(r"  nc1 (\S+)$", line).group(1) == f"{row['nc1']:.4g}"


def test_metrics_figure_names_every_series_and_says_which_coincide():
    rows = [{"epoch": e, "train_loss": 2 / e, "train_accuracy": 0.5 + e / 20, "test_accuracy": 0.4, "nc1": 3 / e,
             "nc2": 0.5, "nc2_classifier": 0.0, "nc3": 0.3, "collapse_index": 1.0, "classifier_norm_ratio": 1.0,
             "feature_collapse_index": 0.8 + e / 100, "feature_norm_ratio": 0.9, "y22_cos_means_mean": -0.05,
             "y22_cos_classifiers_mean": -1 / 9, "y22_self_cos_mean": 0.5, "train_per_class_accuracy": [1.0] * 10}
            for e in range(1, 6)]
    fig = plot_metrics(rows)
    assert [ax.get_ylabel() != "" and ax.get_xlabel() == "epoch" for ax in fig.axes] == [True] * 6
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert "norm ratio minority/majority of W (= collapse index of W)" in labels
    assert "ETF: −1/(K−1), K = 10" in labels
    assert not [label for label in labels if "_" in label]  # plain names, no metric keys
    lines = fig.axes[5].get_lines()
    assert lines[0].get_linewidth() > lines[2].get_linewidth()  # the later, equal curve is drawn thinner on top
