"""`lpm train-deep` with remedies and second stages: options reach config.json, one-line errors."""
import json

import pytest
from typer.testing import CliRunner

from full_model import run_format as rf
from lpm.cli import app

runner = CliRunner()
TINY = ["--dataset", "synthetic-lt", "--ratio", "10", "--n-max", "30", "--batch-size", "32", "--warmup-epochs", "0",
        "--no-progress", "--device", "cpu", "--mixup-alpha", "0"]


def _config(folder):
    return json.loads((folder / rf.CONFIG_FILE).read_text())["config"]


def test_a_remedy_run_then_its_second_stages_from_the_command_line(tmp_path):
    joint = tmp_path / "joint"
    (tmp_path / "quick.toml").write_text("figures = false\nnc4_on_train = false\nfeature_dim = 16\n")
    res = runner.invoke(app, ["train-deep", *TINY, "--config", str(tmp_path / "quick.toml"), "--epochs", "2",
                              "--class-weights", "class-balanced", "--beta", "0.99", "--drw", "0.5", "--sampler",
                              "sqrt", "--out", str(joint)])
    assert res.exit_code == 0, res.output
    saved = _config(joint)
    assert (saved["class_weights"], saved["beta"], saved["drw_fraction"], saved["drw_epoch"], saved["sampler"]) == \
        ("class-balanced", 0.99, 0.5, 1, "sqrt")
    assert [r["class_weighted"] for r in rf.read_metrics(joint / rf.METRICS_FILE)] == [False, True]
    crt = tmp_path / "crt"
    res = runner.invoke(app, ["train-deep", "--stage", "crt", "--parent", str(joint), "--epochs", "1", "--out",
                              str(crt), "--no-progress"])
    assert res.exit_code == 0, res.output
    saved = _config(crt)
    assert (saved["stage"], saved["parent"], saved["sampler"], saved["class_weights"], saved["epochs"]) == \
        ("crt", str(joint.resolve()), "class-balanced", "none", 1)
    res = runner.invoke(app, ["train-deep", "--stage", "crt", "--out", str(crt), "--resume", "--epochs", "2",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert [r["epoch"] for r in rf.read_metrics(crt / rf.METRICS_FILE)] == [1, 2]
    res = runner.invoke(app, ["train-deep", "--stage", "tau-norm", "--parent", str(joint), "--tau-norm", "1",
                              "--out", str(tmp_path / "tn")])
    assert res.exit_code == 0, res.output
    assert "epochs: 0" in res.stdout and _config(tmp_path / "tn")["tau_norm"] == 1.0


def test_the_default_folder_name_carries_the_remedies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick.toml").write_text("figures = false\nnc4_on_train = false\nfeature_dim = 16\n")
    res = runner.invoke(app, ["train-deep", *TINY, "--epochs", "1", "--class-weights", "inverse", "--drw", "1",
                              "--sampler", "progressive", "--max-batches-per-epoch", "1", "--config", "quick.toml"])
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("synthetic-lt_learnable_ce_w-inverse_drw1_s-progressive_R10_e1_seed0_")


@pytest.mark.parametrize("args,message", [
    (["--drw", "1.5"], "Error: The 'drw' parameter must be a fraction of the run in (0, 1) such as '0.8', or an "
                       "epoch >= 1 such as '160'. Got '1.5' instead."),
    (["--class-weights", "inverse", "--beta", "0.9"],
     "Error: The 'beta' parameter must be left unset unless class_weights is 'class-balanced'. Got 0.9 instead."),
    (["--parent", "/no/run"], "Error: The 'stage' parameter must be 'crt', 'tau-norm' or 'logit-adjust' with "
                              "--parent. Got 'joint' instead."),
    (["--stage", "crt"], "Error: The 'parent' parameter must be the finished run folder that stage 'crt' starts from "
                         "(--parent). Got None instead."),
    (["--stage", "crt", "--parent", "/no/run"],
     "Error: The 'parent' parameter must be a finished run folder of `lpm train-deep` (holding config.json, "
     "checkpoint.pt and summary.json); no such folder. Got '/no/run' instead."),
    (["--gamma", "1"], "Error: The 'gamma' parameter must be left unset for loss 'ce' (it takes no hyperparameter). "
                       "Got 1.0 instead."),
])
def test_bad_remedy_options_are_one_line_and_exit_2(args, message):
    res = runner.invoke(app, ["train-deep", *TINY, *args])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip() == message
