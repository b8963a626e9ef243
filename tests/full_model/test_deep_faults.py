"""Faults a deep run meets: damaged or crafted run files, resumes, divergence, bad output folders.

Each case ends in one line naming the file or option, what is wrong and how to recover (exit 2 for
bad input, 1 for a diverged run), with nothing half-written; the recoveries named are then tried.
"""
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import full_model.train as train_module
from full_model import checkpoint as ckpt
from full_model import run_format as rf
from full_model.config import build_config
from full_model.data import load_dataset
from full_model.distributed import DistContext
from full_model.errors import NonFiniteOutputs, TrainingDiverged
from full_model.loader import Normalizer, TensorEvalLoader
from full_model.losses import Objective
from full_model.models import build_network
from full_model.tracking import track
from lpm.cli import app
from lpm.cli.train_deep import NO_DATASET
from lpm.core.errors import LPMInputError
from lpm.core.geometry import class_groups

runner = CliRunner()
TINY = dict(dataset="synthetic-lt", ratio=10, n_max=30, batch_size=32, warmup_epochs=0, feature_dim=16,
            mixup_alpha=0.0, progress=False, figures=False, nc4_on_train=False, device="cpu")


def _train(out, epochs, **extra):
    return train_module.train(build_config({**TINY, "epochs": epochs, "out": str(out), **extra}))


def _resume(out, *args):
    return runner.invoke(app, ["train-deep", "--out", str(out), "--resume", "--no-progress", *args])


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """A finished 2-epoch run (checkpoint.prev.pt holds epoch 1), copied by each test that damages it."""
    out = tmp_path_factory.mktemp("faults") / "run"
    _train(out, 2, head="learnable")
    return out


def _copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# ------------------------------------------------------------------------------------------- resume
def test_resume_extends_the_run_and_updates_config_json(two_epochs, tmp_path):
    out = _copy(two_epochs, tmp_path)
    before = json.loads((out / rf.CONFIG_FILE).read_text())
    assert before["config"]["epochs"] == 2 and before["resumes"] == []
    res = _resume(out, "--epochs", "4")
    assert res.exit_code == 0, res.output
    assert "Warning" not in res.stderr  # metrics.jsonl matched the checkpoint's history; the schedule is kept
    after = json.loads((out / rf.CONFIG_FILE).read_text())
    assert after["config"]["epochs"] == 4
    assert after["config"]["milestones"] == before["config"]["milestones"]  # the schedule the run started with
    assert [(r["from_epoch"], r["epochs"]) for r in after["resumes"]] == [(2, 4)]
    assert after["provenance"] == before["provenance"]  # the start's provenance stays
    assert [r["epoch"] for r in rf.read_metrics(out / rf.METRICS_FILE)] == [1, 2, 3, 4]
    assert ckpt.load(out / rf.CHECKPOINT_FILE)["epoch"] == 4
    assert ckpt.load(out / rf.PREVIOUS_CHECKPOINT_FILE)["epoch"] == 3
    res = _resume(out, "--epochs", "3")
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"Error: The 'epochs' parameter must be at least the 4 epochs already done in "
                                  f"{out}. Got 3 instead.")


def test_what_compare_needs_is_in_the_run_folder(two_epochs):
    """Per-class training accuracy (to flag unfitted classes) and the head's weight decay (λ_W, theory.md §9)."""
    run = rf.load_run(two_epochs)
    K = int(run.geometry["num_classes"])
    assert run.geometry["train_per_class_accuracy"].shape == (K,)
    np.testing.assert_allclose(run.geometry["train_per_class_accuracy"],
                               run.metrics[-1]["train_per_class_accuracy"])
    model = run.config["model"]
    assert (model["head_trainable"], model["head_weight_decay"]) == (True, run.config["config"]["weight_decay"])


def test_a_cosine_schedule_stretched_on_resume_is_warned_about(tmp_path):
    _train(tmp_path / "run", 2, schedule="cosine")
    res = _resume(tmp_path / "run", "--epochs", "6")
    assert res.exit_code == 0, res.output
    # cosine factors ½(1 + cos(π e/E)): e = 1 of E = 2 gives 0.5, e = 2 of E = 6 gives 0.75
    assert ("Warning: the lr schedule is now that of a 6-epoch run, resumed at epoch 3 with lr 0.075; the first 2 "
            "epochs followed that of a 2-epoch run (lr 0.05 in epoch 2)") in res.stderr


# ------------------------------------------------------------------------------------ damaged files
def test_a_truncated_checkpoint_names_the_previous_one_which_then_resumes(two_epochs, tmp_path):
    out = _copy(two_epochs, tmp_path)
    path, previous = out / rf.CHECKPOINT_FILE, out / rf.PREVIOUS_CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    res = _resume(out, "--epochs", "3")
    assert res.exit_code == 2 and "Traceback" not in res.output
    line = res.stderr.strip()
    assert "\n" not in line
    assert line.startswith("Error: The 'out' parameter must be a run folder with a readable checkpoint.pt to resume "
                           "(checkpoint.pt is truncated or corrupt (RuntimeError: PytorchStreamReader failed")
    assert line.endswith(f"; the previous checkpoint is kept at '{previous}': rename it to checkpoint.pt to resume "
                         f"from the epoch before, or delete the run folder and start again). Got '{out}' instead.")
    os.replace(previous, path)  # the recovery the message names
    res = _resume(out, "--epochs", "3")
    assert res.exit_code == 0, res.output
    assert [r["epoch"] for r in rf.read_metrics(out / rf.METRICS_FILE)] == [1, 2, 3]


def test_a_corrupt_config_json_is_named_and_deleting_it_recovers(two_epochs, tmp_path):
    out = _copy(two_epochs, tmp_path)
    (out / rf.CONFIG_FILE).write_text('{"format_version": 1, "config": {"epochs": ')
    res = _resume(out, "--epochs", "3")
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"Error: The 'out' parameter must be a run folder with a readable config.json to resume (config.json is not "
        f"valid JSON: Expecting value: line 1 column 44 (char 43); delete it and resume again: it is written again "
        f"from the settings kept in checkpoint.pt). Got '{out}' instead.")
    (out / rf.CONFIG_FILE).unlink()
    res = _resume(out, "--epochs", "3")
    assert res.exit_code == 0, res.output
    assert f"Warning: {out / rf.CONFIG_FILE} is missing: resuming with the settings kept in checkpoint.pt (and " \
           "writing config.json again)" in res.stderr
    assert json.loads((out / rf.CONFIG_FILE).read_text())["config"]["epochs"] == 3


@pytest.mark.parametrize("damage", ["delete", "garble", "shorten"])
def test_resume_rebuilds_metrics_jsonl_from_the_checkpoint_and_says_so(two_epochs, tmp_path, damage):
    out = _copy(two_epochs, tmp_path)
    path = out / rf.METRICS_FILE
    original = rf.read_metrics(path)
    if damage == "delete":
        path.unlink()
    elif damage == "garble":
        path.write_text(path.read_text()[:-40] + "\n")
    else:
        path.write_text(path.read_text().splitlines(keepends=True)[0])
    res = _resume(out, "--epochs", "3")
    assert res.exit_code == 0, res.output
    problem = {"delete": "is missing", "garble": "is damaged",
               "shorten": "holds 1 epochs that do not match the checkpoint's 2"}[damage]
    assert (f"Warning: {path} {problem}: rewritten from the history of 2 epochs kept in checkpoint.pt"
            in res.stderr)
    rows = rf.read_metrics(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[:2] == original


def test_stale_temporaries_are_removed_on_the_next_start(two_epochs, tmp_path):
    out = _copy(two_epochs, tmp_path)
    stale = [out / ".checkpoint.pt.k3j2_x.tmp", out / ".metrics.jsonl.abc.tmp", out / ".checkpoint.prev.pt.z.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    mine = out / ".notes.txt.tmp"
    mine.write_text("a user's file")
    res = _resume(out, "--epochs", "3")
    assert res.exit_code == 0, res.output
    assert not any(p.exists() for p in stale) and mine.read_text() == "a user's file"
    assert not list(out.glob(".*.tmp"))[1:]  # only the user's file is left


def test_a_truncated_final_geometry_is_named_and_a_resume_rewrites_it(two_epochs, tmp_path):
    out = _copy(two_epochs, tmp_path)
    good = dict(np.load(out / rf.GEOMETRY_FILE))
    path = out / rf.GEOMETRY_FILE
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(LPMInputError) as err:
        rf.load_run(out)
    assert str(err.value) == (
        f"The 'run_dir' parameter must be a run folder written by `lpm train-deep` (final_geometry.npz is truncated "
        f"or corrupt (BadZipFile: File is not a zip file); run `lpm train-deep --resume --out {out}` to write it "
        f"again from checkpoint.pt). Got '{out}' instead.")
    res = runner.invoke(app, ["compare", str(out)])
    assert res.exit_code == 2 and res.stderr.strip() == f"Error: {err.value}"
    assert _resume(out).exit_code == 0  # the recovery the message names: the final model is measured again
    again = rf.load_run(out).geometry
    for key in ("class_means", "classifier", "within_class_cov", "train_per_class_accuracy"):
        np.testing.assert_array_equal(again[key], good[key], err_msg=key)


# ------------------------------------------------------------------------------------------ security
class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_is_refused_without_running_anything(two_epochs, tmp_path):
    out = _copy(two_epochs, tmp_path)
    marker = tmp_path / "pwned"
    state = ckpt.load(out / rf.CHECKPOINT_FILE)
    state["config"] = _RunsACommand(marker)
    torch.save(state, out / rf.CHECKPOINT_FILE)
    res = _resume(out, "--epochs", "3")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip().startswith(
        "Error: The 'out' parameter must be a run folder with a readable checkpoint.pt to resume (checkpoint.pt "
        "holds objects other than tensors and plain values, so it was not written by this version of lpm and is not "
        "loaded, since that could run code (")
    assert "posix.system" in res.stderr
    assert not marker.exists()
    with pytest.raises(LPMInputError):
        ckpt.load(out / rf.CHECKPOINT_FILE)
    assert not marker.exists()


def test_checkpoints_hold_only_tensors_and_plain_values(two_epochs):
    state = torch.load(two_epochs / rf.CHECKPOINT_FILE, weights_only=True)  # would raise on anything else
    assert state["checkpoint_version"] == ckpt.CHECKPOINT_VERSION and state["epoch"] == 2
    assert [r["epoch"] for r in state["metrics"]] == [1, 2]


# ---------------------------------------------------------------------------------------- divergence
def test_a_diverging_run_stops_with_one_line_and_exit_1(tmp_path):
    out = tmp_path / "div"
    res = runner.invoke(app, ["train-deep", "--dataset", "digits-lt", "--ratio", "10", "--epochs", "3",
                              "--warmup-epochs", "0", "--lr", "100", "--out", str(out), "--no-progress"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    line = res.stderr.strip()
    assert re.fullmatch(
        r"Error: Training diverged at epoch 1, step \d of 4: the training loss (is nan|is inf|reached \S+, over 10000 "
        r"times max\(1, its first value \S+\)) \(lr 100\)\. Nothing of epoch 1 was written; no checkpoint was "
        r"written \(no epoch finished\)\. Start again with a lower learning rate \(--lr\) or a longer warm-up "
        r"\(--warmup-epochs\)\.", line), line
    assert _files(out) == ["config.json"]  # no metrics, no checkpoint, no summary: nothing looks like a result


def test_divergence_after_good_epochs_keeps_their_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = Objective.__call__

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = real(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 7 else loss  # 118 rows, batches of 32: step 3 of epoch 2

    monkeypatch.setattr(Objective, "__call__", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as err:
        _train(out, 4, head="learnable")
    assert (err.value.epoch, err.value.step) == (2, 3)
    assert str(err.value) == (
        f"Training diverged at epoch 2, step 3 of 4: the training loss is nan (lr 0.1). Nothing of epoch 2 was "
        f"written; the last good checkpoint ({out / rf.CHECKPOINT_FILE}) is kept. Start again in a new folder with a "
        "lower learning rate (--lr) or a longer warm-up (--warmup-epochs).")
    assert ckpt.load(out / rf.CHECKPOINT_FILE)["epoch"] == 1
    assert [r["epoch"] for r in rf.read_metrics(out / rf.METRICS_FILE)] == [1]
    assert not (out / rf.SUMMARY_FILE).exists() and not (out / rf.GEOMETRY_FILE).exists()
    monkeypatch.setattr(Objective, "__call__", real)
    result = train_module.train(build_config({**TINY, "epochs": 4, "out": str(out), "head": "learnable"}),
                                resume=True)  # the kept checkpoint is good
    assert [r["epoch"] for r in result.metrics] == [1, 2, 3, 4]
    assert all(np.isfinite(r["train_loss"]) for r in result.metrics)


def test_tracking_refuses_features_that_are_not_finite():
    data = load_dataset("synthetic-lt", ratio=10, n_max=30)
    net = build_network("mlp", "learnable", 10, data.input_shape, feature_dim=16)
    with torch.no_grad():
        next(net.parameters()).fill_(float("inf"))
    loaders = [TensorEvalLoader(x, y, batch_size=64, device="cpu", ctx=DistContext(),
                                normalizer=Normalizer(None, None, "cpu"))
               for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test))]
    with pytest.raises(NonFiniteOutputs, match="^the network's features or logits on the training split are not "
                                               "finite$"):
        track(net, *loaders, num_classes=10, groups=class_groups(10), majority=3, ctx=DistContext(),
              autocast=torch.no_grad)


# ------------------------------------------------------------------------- options refused up front
def test_out_that_cannot_be_a_folder_is_refused_before_any_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out, message in [
        (afile, f"Error: The 'out' parameter must be a folder, not an existing file. Got '{afile}' instead."),
        (afile / "run", f"Error: The 'out' parameter must be a path whose parents are folders ('{afile}' is not a "
                        f"folder). Got '{afile / 'run'}' instead."),
    ]:
        res = runner.invoke(app, ["train-deep", "--dataset", "synthetic-lt", "--out", str(out)])
        assert res.exit_code == 2 and res.stderr.strip() == message
    assert _files(tmp_path) == ["afile"] and afile.read_text() == "keep me"


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train-deep", "--dataset", "digits-lt", "--batch-size", "10000", "--out", str(out)])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("Error: The 'batch_size' parameter must be at most the 242 training samples of this "
                                  "run (use 242 for full-batch training). Got 10000 instead.")
    assert not out.exists()


def test_no_data_set_prints_a_usage_with_an_offline_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in ([], ["--epochs", "3"]):
        res = runner.invoke(app, ["train-deep", *args])
        assert res.exit_code == 2 and res.stderr.strip() == NO_DATASET
    assert "lpm train-deep --dataset mnist1d-lt" in NO_DATASET and _files(tmp_path) == []


def test_resume_needs_the_run_folder():
    res = runner.invoke(app, ["train-deep", "--resume", "--epochs", "5"])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("Error: The 'out' parameter must be the run folder to continue (--resume needs "
                                  "--out). Got None instead.")
