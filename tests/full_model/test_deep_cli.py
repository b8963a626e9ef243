"""``lpm train-deep`` on the command line: thin over the library, one-line errors."""
import json

import pytest
from typer.testing import CliRunner

from full_model import run_format as rf
from lpm.cli import app

runner = CliRunner()
TINY = ["--dataset", "synthetic-lt", "--ratio", "10", "--n-max", "30", "--batch-size", "32", "--warmup-epochs", "0",
        "--no-progress", "--device", "cpu"]


def test_train_deep_runs_from_a_config_file_and_resumes(tmp_path):
    (tmp_path / "cfg.toml").write_text('head = "fixed-etf"\nloss = "dr"\nepochs = 1\nfeature_dim = 16\n'
                                       'figures = false\nmixup_alpha = 0.0\n')
    out = tmp_path / "run"
    res = runner.invoke(app, ["train-deep", *TINY, "--config", str(tmp_path / "cfg.toml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"run folder: {out}" in res.stdout and "epochs: 1" in res.stdout
    saved = json.loads((out / rf.CONFIG_FILE).read_text())["config"]
    assert (saved["head"], saved["loss"], saved["feature_dim"], saved["ratio"], saved["n_max"]) == \
        ("fixed-etf", "dr", 16, 10.0, 30)
    res = runner.invoke(app, ["train-deep", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert [r["epoch"] for r in rf.read_metrics(out / rf.METRICS_FILE)] == [1, 2]
    res = runner.invoke(app, ["train-deep", "--out", str(out), "--resume", "--lr", "0.5"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"Error: The 'lr' parameter must be 0.1 as saved in {out / rf.CONFIG_FILE} when "
                                  "resuming that run. Got 0.5 instead.")


@pytest.mark.parametrize("args,message", [
    (["--dataset", "cifar10-lt", "--root", "/no/such/dir"],
     "Error: The 'root' parameter must be an existing folder with the cifar10-lt files (cifar-10-python.tar.gz "
     "from https://www.cs.toronto.edu/~kriz/cifar.html, extracted, giving root/cifar-10-batches-py/data_batch_1 … "
     "data_batch_5 and test_batch (the CIFAR-10 python pickles)). Got '/no/such/dir' instead."),
    (["--dataset", "mnist1d-lt", "--seeds", "0,1", "--seed", "3"],
     "Error: The 'seeds' parameter must be given without --seed (--seeds runs one run per seed). Got '0,1' instead."),
    (["--dataset", "mnist1d-lt", "--seeds", "0,0"],
     "Error: The 'seeds' parameter must be a comma-separated list of distinct integers >= 0, e.g. '0,1,2'. "
     "Got '0,0' instead."),
    (["--dataset", "mnist1d-lt", "--ratio", "0.5"],
     "Error: The 'ratio' parameter must be a number >= 1. Got 0.5 instead."),
    (["--dataset", "mnist1d-lt", "--head", "learnable", "--loss", "dr"],
     "Error: The 'loss' parameter must be 'ce' with the learnable head (DR with a learnable classifier is "
     "degenerate: every w_k and h_k can share one vector and reach zero loss, theory.md §5; set allow_degenerate "
     "(--allow-degenerate) to run it anyway). Got 'dr' instead."),
    (["--dataset", "mnist1d-lt", "--milestones", "0.5,3"],
     "Error: The 'milestones' parameter must be fractions of the run in (0, 1) such as '0.8,0.9', or epochs >= 1 "
     "such as '160,180'. Got '0.5,3' instead."),
    (["--dataset", "mnist1d-lt", "--config", "/no/cfg.toml"],
     "Error: The 'config' parameter must be an existing .json or .toml file. Got '/no/cfg.toml' instead."),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    res = runner.invoke(app, ["train-deep", *args])
    assert res.exit_code == 2
    assert res.stderr.strip() == message
    assert "Traceback" not in res.output


def test_unknown_dataset_is_rejected_by_the_option():
    res = runner.invoke(app, ["train-deep", "--dataset", "imagenet-21k"])
    assert res.exit_code == 2
    assert "Invalid value for '--dataset'" in res.output and "Traceback" not in res.output


def test_resume_without_a_run_is_refused(tmp_path):
    res = runner.invoke(app, ["train-deep", *TINY, "--out", str(tmp_path / "none"), "--resume"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"Error: The 'out' parameter must be a run folder holding config.json and "
                                  f"checkpoint.pt to resume. Got '{tmp_path / 'none'}' instead.")


def test_milestones_option_takes_fractions_or_epochs(tmp_path):
    for text, fractions, epochs in (("0.5,0.75", [0.5, 0.75], [5, 8]), ("3,6", [0.8, 0.9], [3, 6])):
        out = tmp_path / text
        res = runner.invoke(app, ["train-deep", *TINY, "--epochs", "10", "--milestones", text, "--out", str(out),
                                  "--max-batches-per-epoch", "1", "--track-every", "10"])
        assert res.exit_code == 0, res.output
        saved = json.loads((out / rf.CONFIG_FILE).read_text())["config"]
        assert (saved["milestone_fractions"], saved["milestones"]) == (fractions, epochs)
        lrs = [r["lr"] for r in rf.read_metrics(out / rf.METRICS_FILE)]
        assert lrs == pytest.approx([0.1 * 0.1 ** sum(e >= m for m in epochs) for e in range(10)])


def test_seeds_run_one_run_per_seed_each_in_its_own_folder(tmp_path):
    """--seeds 0,1,2 trains three runs in one call: OUT/seed0, OUT/seed1, OUT/seed2, each with its own seed
    (so their weights differ) and otherwise the same settings; --resume --seeds continues each of them."""
    out = tmp_path / "runs"
    args = ["train-deep", *TINY, "--epochs", "1", "--mixup-alpha", "0", "--seeds", "0,1,2", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    folders = [out / f"seed{s}" for s in (0, 1, 2)]
    assert sorted(p for p in out.iterdir()) == folders
    configs = [json.loads((f / rf.CONFIG_FILE).read_text())["config"] for f in folders]
    assert [c["seed"] for c in configs] == [0, 1, 2]
    for c in configs:
        del c["seed"], c["out"]
    assert all(c == configs[0] for c in configs)
    assert res.stdout.count("run folder: ") == 3
    losses = [rf.read_metrics(f / rf.METRICS_FILE)[0]["train_loss"] for f in folders]
    assert len(set(losses)) == 3  # three different initialisations
    res = runner.invoke(app, ["train-deep", "--resume", "--seeds", "0,1,2", "--out", str(out), "--epochs", "2",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert all([r["epoch"] for r in rf.read_metrics(f / rf.METRICS_FILE)] == [1, 2] for f in folders)



def test_the_suggested_quick_pair_is_valid_and_in_the_readme(tmp_path):
    """The three commands `lpm train-deep` suggests (and the README shows) run as given: here shortened to
    one epoch of two batches, each into tmp_path; the README quotes them verbatim."""
    import shlex
    from pathlib import Path

    from lpm.cli.train_deep import NO_DATASET, QUICK_COMMANDS
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert all(c in readme and c in NO_DATASET for c in QUICK_COMMANDS)
    folders = {}
    for command in QUICK_COMMANDS[:2]:
        args = shlex.split(command)[1:]
        folders[args[-1]] = tmp_path / Path(args[-1]).name
        res = runner.invoke(app, [*args, "--epochs", "1", "--max-batches-per-epoch", "2", "--no-progress",
                                  "-o", str(folders[args[-1]])])
        assert res.exit_code == 0, res.output
    args = shlex.split(QUICK_COMMANDS[2])[1:]
    args = [str(folders.get(a, a)) for a in args[:-1]] + [str(tmp_path / "compare")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "compare" / "distances.csv").is_file()
