"""The evaluation of a deep run (docs/evaluation.md) and its TensorBoard log, on tiny offline data."""
import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import full_model.tensorboard_log as tb_module
from full_model import checkpoint as ckpt
from full_model import run_format as rf
from full_model.config import build_config
from full_model.data import load_dataset
from full_model.models import build_network
from full_model.train import resume_config, train
from lpm.cli import app
from lpm.core.errors import LPMInputError
from lpm.core.geometry import (ClassificationStats, ClassStats, NearestMeanAgreement, calibration_errors, measure,
                               shot_groups)

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

SETTINGS = dict(dataset="synthetic-images-lt", backbone="mlp", ratio=10, n_max=24, head="learnable", loss="ce",
                batch_size=32, warmup_epochs=0, mixup_alpha=0.0, progress=False, eval_batch_size=64, feature_dim=32,
                augment=False, tensorboard=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    return train(build_config({**SETTINGS, "epochs": 2, "out": str(out)}))


def read_log(run_dir):
    """{tag: [(step, value), ...]} of the scalars, and {tag: [steps]} of the images, in the run's log."""
    acc = EventAccumulator(str(run_dir / rf.TENSORBOARD_DIR), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    scalars = {tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
               for tag in acc.Tags()["tensors"]}
    images = {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
    return scalars, images


def expected_log(rows):
    expected: dict = {}
    for row in rows:
        for key, value in tb_module.scalars(row).items():
            expected.setdefault(key, []).append((row["epoch"], value))
    return expected


def test_tensorboard_log_holds_exactly_the_numbers_of_metrics_jsonl(run):
    rows = rf.read_metrics(run.run_dir / rf.METRICS_FILE)
    scalars, images = read_log(run.run_dir)
    expected = expected_log(rows)
    assert scalars == expected                            # every scalar, every epoch, bit for bit (float64)
    for key in ("test_accuracy", "test_top5_accuracy", "test_balanced_accuracy", "test_few_shot_accuracy",
                "test_ece", "test_mce", "nc1", "nc1_pinv", "nc1_trace_quotient", "cdnv", "gnc2", "unc3_dot_var",
                "test_nc4_agreement", "train_loss", "lr"):
        assert [step for step, _ in scalars[key]] == [1, 2], key
    assert "shot_split" not in scalars and "test_per_class_accuracy" not in scalars   # strings and lists
    assert images == {"metrics": [2], "evaluation": [2], "confusion": [2]}


def test_resume_rebuilds_the_log_without_repeating_an_epoch(run, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(run.run_dir, out)
    train(resume_config(out, {"epochs": 3, "figures": False}), resume=True)
    scalars, images = read_log(out)
    assert scalars == expected_log(rf.read_metrics(out / rf.METRICS_FILE))
    assert [step for step, _ in scalars["test_accuracy"]] == [1, 2, 3]
    assert images == {"metrics": [3], "evaluation": [3], "confusion": [3]}   # figures=False: still in the log


MISSING = ("The 'tensorboard' parameter must be false unless the tensorboard package is installed "
           "(pip install 'lpm[tensorboard]'). Got True instead.")


def test_tensorboard_without_the_package_is_a_clear_input_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tb_module, "available", lambda: False)
    with pytest.raises(LPMInputError) as err:
        train(build_config({**SETTINGS, "epochs": 1, "out": str(tmp_path / "r")}))
    assert str(err.value) == MISSING and not (tmp_path / "r").exists()
    res = CliRunner().invoke(app, ["train-deep", "--dataset", "synthetic-lt", "--epochs", "1", "--no-progress",
                                   "--tensorboard", "--out", str(tmp_path / "cli")])
    assert res.exit_code == 2 and res.stderr.strip() == f"Error: {MISSING}"
    assert not (tmp_path / "cli").exists()


def test_tracked_evaluation_equals_a_one_shot_computation(run):
    """Top-5, balanced and many/medium/few accuracy, calibration, CDNV, the NC1 variants, GNC2, UNC3 and the
    NC4 agreement of the last epoch equal the same metrics on all features computed at once."""
    data = load_dataset("synthetic-images-lt", ratio=10, n_max=24)
    net = build_network("mlp", "learnable", 10, (3, 32, 32), feature_dim=32)
    net.load_state_dict(ckpt.load(run.run_dir / rf.CHECKPOINT_FILE, "cpu")["model"])
    net.eval()
    mean, std = torch.tensor(data.mean).view(1, 3, 1, 1), torch.tensor(data.std).view(1, 3, 1, 1)
    prep = lambda x: (torch.from_numpy(x).float() / 255 - mean) / std  # noqa: E731
    with torch.no_grad():
        h, z = net(prep(data.x_train), with_features=True)
        h_test, z_test = net(prep(data.x_test), with_features=True)
    stats = ClassStats(10, 32, class_counts=data.counts)
    stats.update(h, data.y_train)
    shots = shot_groups(data.counts)
    test = ClassificationStats(10, shots=shots, confusion=True)
    test.update(z_test, data.y_test)
    agree = NearestMeanAgreement(stats.means)
    agree.update(h_test, z_test, data.y_test)
    geometry = measure(stats.means, net.get_classifier(), counts=stats.counts, within_cov=stats.within_cov,
                       class_variances=stats.class_variances, majority=7)
    last, r = run.metrics[-1], test.result()
    assert last["shot_split"] == shots[2]
    for key in ("top5_accuracy", "balanced_accuracy", "many_shot_accuracy", "medium_shot_accuracy",
                "few_shot_accuracy"):
        assert last[f"test_{key}"] == pytest.approx(r[key], abs=1e-12), key
    for key in ("ece", "mce"):
        assert last[f"test_{key}"] == pytest.approx(r[key], abs=1e-6), key
    assert last["test_nc4_agreement"] == agree.agreement()
    assert last["test_nc4_class_agreement"] == pytest.approx(agree.class_mean_agreement(), abs=1e-12)
    for key in ("nc1", "nc1_pinv", "nc1_trace_quotient", "cdnv", "gnc2", "gnc2_log_kernel_mean", "unc3_dot_var",
                "unc3_cos_cv"):
        np.testing.assert_allclose(last[key], geometry[key], rtol=2e-5, atol=1e-7, err_msg=key)
    assert last["nc1_rank"] == geometry["nc1_rank"] and last["nc1_pinv_rank"] == geometry["nc1_pinv_rank"]

    run_data = rf.load_run(run.run_dir)
    g = run_data.geometry
    np.testing.assert_array_equal(g["test_confusion"], test.confusion)
    np.testing.assert_allclose(g["class_variances"], stats.class_variances, rtol=1e-5)
    assert calibration_errors(g["test_bin_count"], g["test_bin_confidence"], g["test_bin_correct"])[0] == \
        pytest.approx(last["test_ece"], abs=1e-15)
    assert str(g["shot_split"]) == shots[2]
    s = run_data.summary
    assert s["last_shot_split"] == shots[2] and s["last_test_balanced_accuracy"] == last["test_balanced_accuracy"]
    assert s["last_test_ece"] == last["test_ece"] and s["last_nc1_pinv_rank"] == last["nc1_pinv_rank"]
    for name in (rf.EVALUATION_FIGURE_FILE, rf.CONFUSION_FIGURE_FILE):
        assert (run.run_dir / name).read_bytes()[:4] == b"\x89PNG", name
    assert json.loads((run.run_dir / rf.CONFIG_FILE).read_text())["config"]["tensorboard"] is True


def test_cli_prints_the_evaluation(tmp_path):
    (tmp_path / "cfg.toml").write_text("figures = false\n")
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["train-deep", "--dataset", "synthetic-lt", "--ratio", "10", "--n-max", "30",
                                   "--batch-size", "32", "--epochs", "1", "--no-progress", "--device", "cpu",
                                   "--config", str(tmp_path / "cfg.toml"), "--no-tensorboard", "--out", str(out)])
    assert res.exit_code == 0, res.output
    row = rf.read_metrics(out / rf.METRICS_FILE)[-1]
    shots = "/".join(f"{row[f'test_{g}_shot_accuracy']:.4f}" for g in ("many", "medium", "few"))
    assert (f"last test balanced accuracy: {row['test_balanced_accuracy']:.4f}  many/medium/few-shot: {shots} "
            f"(split by count thirds)  ECE: {row['test_ece']:.4f}") in res.stdout
    assert not (out / rf.TENSORBOARD_DIR).exists()


def test_evaluation_figures_draw_the_hand_computed_numbers():
    from full_model.plots import plot_confusion, plot_evaluation
    from lpm.core.geometry import normalised_confusion, reliability

    counts = [50, 5, 20]
    cs = ClassificationStats(3, top_k=2, confusion=True)
    cs.update(np.array([[3.0, 2, 1], [3, 2, 1], [3, 2, 1], [0, 0, 5], [1, 1, 0]]), np.array([0, 1, 2, 2, 1]))
    bins = {"count": cs.bin_count, "confidence": cs.bin_conf, "correct": cs.bin_correct}
    fig = plot_evaluation(counts, cs.result()["per_class_accuracy"], bins, shot_groups(counts))
    acc_ax, rel_ax = fig.axes
    r, res = reliability(cs.bin_count, cs.bin_conf, cs.bin_correct), cs.result()
    assert rel_ax.get_title(loc="left") == f"(b) Reliability: ECE {res['ece']:.3f}, MCE {res['mce']:.3f}"
    heights = [p.get_height() for p in rel_ax.patches[:3]]                 # the accuracy bars, bins 6, 9, 14
    np.testing.assert_allclose(heights, r["accuracy"][[6, 9, 14]])
    assert acc_ax.get_legend().get_title().get_text() == "split: count thirds"
    assert acc_ax.get_xscale() == "log"
    image = plot_confusion(cs.confusion, counts).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(image, normalised_confusion(cs.confusion, counts)[0])
    np.testing.assert_allclose(np.asarray(image)[0], [1.0, 0.0, 0.0])      # class 0 (50 samples) first
