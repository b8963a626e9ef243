"""One writer per training folder: a run holds the folder's lock (naming itself in it), a second
run into the folder is refused without touching it, and a folder whose files come from two runs
is refused by `--resume` and by `lpm compare`, naming the files that disagree."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from typer.testing import CliRunner

import full_model.train as train_module
from full_model import run_format as rf
from full_model.config import build_config
from lpm.cli import app
from lpm.core.errors import LPMInputError
from lpm.core.io import LOCK_FILE, folder_lock

runner = CliRunner()
TINY = dict(dataset="synthetic-lt", ratio=10, n_max=30, batch_size=32, warmup_epochs=0, feature_dim=16,
            mixup_alpha=0.0, progress=False, figures=False, nc4_on_train=False, device="cpu", backbone="mlp")


def _train(out, epochs, **extra):
    return train_module.train(build_config({**TINY, "epochs": epochs, "out": str(out), **extra}))


def _files(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.exists() else None


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("lock")
    _train(base / "a", 2, seed=0)
    _train(base / "b", 2, seed=1)
    return base / "a", base / "b"


def test_a_second_writer_is_refused_and_the_folder_left_alone(tmp_path, two_runs):
    out = tmp_path / "run"
    shutil.copytree(two_runs[0], out)
    before = _files(out)
    with folder_lock(out, "out", "training run"):  # as a running `lpm train-deep` holds it
        holder = (out / LOCK_FILE).read_text()
        assert holder.startswith(f"lpm process {os.getpid()} (")
        res = runner.invoke(app, ["train-deep", "--out", str(out), "--resume", "--epochs", "3", "--no-progress"])
        assert res.exit_code == 2
        assert res.stderr == (f"Error: The 'out' parameter must be a folder that no other training run is writing "
                              f"to ({holder.strip()} holds {out / LOCK_FILE}; wait for it to finish, or choose "
                              f"another folder). Got '{out}' instead.\n")
        with pytest.raises(LPMInputError, match="no other training run is writing to"):
            _train(out, 1)  # the Python API as well
        assert {k: v for k, v in _files(out).items() if k != LOCK_FILE} == before
    assert _files(out) == before  # and the holder's lock is gone with it


def test_a_finished_run_leaves_no_lock(two_runs):
    assert not (two_runs[0] / LOCK_FILE).exists()
    ids = {json.loads((two_runs[0] / rf.CONFIG_FILE).read_text())["run_id"],
           json.loads((two_runs[0] / rf.SUMMARY_FILE).read_text())["run_id"],
           str(rf.load_run(two_runs[0]).geometry["run_id"]),
           torch.load(two_runs[0] / rf.CHECKPOINT_FILE, weights_only=True)["run_id"]}
    assert len(ids) == 1 and len(ids.pop()) == 32  # one run id in every file


@pytest.mark.parametrize("swapped", [rf.SUMMARY_FILE, rf.GEOMETRY_FILE, rf.CONFIG_FILE])
def test_compare_refuses_a_folder_whose_files_come_from_two_runs(tmp_path, two_runs, swapped):
    a, b = two_runs
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    shutil.copy(b / swapped, mixed / swapped)
    res = runner.invoke(app, ["compare", str(mixed), "-o", str(tmp_path / "c")])
    assert res.exit_code == 2 and len(res.stderr.splitlines()) == 1, res.output
    run_a = json.loads((a / rf.SUMMARY_FILE).read_text())["run_id"][:8]
    run_b = json.loads((b / rf.SUMMARY_FILE).read_text())["run_id"][:8]
    assert f"{swapped} is from run {run_b}" in res.stderr and f"from run {run_a}" in res.stderr, res.stderr
    assert not (tmp_path / "c").exists()


def test_resume_refuses_another_runs_checkpoint_naming_both_files(tmp_path, two_runs):
    a, b = two_runs
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    shutil.copy(b / rf.CHECKPOINT_FILE, mixed / rf.CHECKPOINT_FILE)
    before = _files(mixed)
    res = runner.invoke(app, ["train-deep", "--out", str(mixed), "--resume", "--epochs", "3", "--no-progress"])
    run_a = json.loads((a / rf.CONFIG_FILE).read_text())["run_id"][:8]
    run_b = json.loads((b / rf.CONFIG_FILE).read_text())["run_id"][:8]
    assert res.exit_code == 2, res.output
    assert (f"its files disagree: {rf.CHECKPOINT_FILE} is from run {run_b} but {rf.CONFIG_FILE} is from run "
            f"{run_a}") in res.stderr, res.stderr
    assert _files(mixed) == before


def test_resume_with_tensors_that_do_not_fit_names_the_checkpoint(tmp_path, two_runs):
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    state = torch.load(run / rf.CHECKPOINT_FILE, weights_only=True)
    key = next(iter(state["model"]))
    state["model"][key] = torch.zeros(3, 3)
    torch.save(state, run / rf.CHECKPOINT_FILE)
    before = _files(run)
    res = runner.invoke(app, ["train-deep", "--out", str(run), "--resume", "--epochs", "3", "--no-progress"])
    assert res.exit_code == 2 and len(res.stderr.splitlines()) == 1, res.output
    assert res.stderr.startswith(f"Error: The 'out' parameter must be a run folder whose {rf.CHECKPOINT_FILE} fits "
                                 f"the model of its settings ({rf.CHECKPOINT_FILE} does not: ")
    assert f"size mismatch for {key}" in res.stderr
    assert _files(run) == before


def test_a_full_disk_at_the_checkpoint_names_it_and_keeps_the_last_one(tmp_path, two_runs, monkeypatch):
    import errno

    from full_model import checkpoint as ckpt

    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    kept = (run / rf.CHECKPOINT_FILE).read_bytes()

    def full(obj, fh):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full)
    res = runner.invoke(app, ["train-deep", "--out", str(run), "--resume", "--epochs", "3", "--no-progress"])
    assert res.exit_code == 1
    assert res.stderr == f"Error: cannot write {run / rf.CHECKPOINT_FILE}: No space left on device.\n"
    assert (run / rf.CHECKPOINT_FILE).read_bytes() == kept  # the last good checkpoint stays whole
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp") or p.name == LOCK_FILE]


def test_a_setting_that_differs_from_the_checkpoint_names_the_checkpoint(tmp_path, two_runs):
    """A checkpoint of another run without a run id (older lpm): the setting that differs is
    blamed on checkpoint.pt, where it came from, not on config.json."""
    a, b = two_runs
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    state = torch.load(b / rf.CHECKPOINT_FILE, weights_only=True)
    del state["run_id"]
    torch.save(state, mixed / rf.CHECKPOINT_FILE)
    res = runner.invoke(app, ["train-deep", "--out", str(mixed), "--resume", "--epochs", "3", "--no-progress"])
    assert res.exit_code == 2
    assert res.stderr == (f"Error: The 'seed' parameter must be 1 as saved in {mixed / rf.CHECKPOINT_FILE} when "
                          "resuming that run. Got 0 instead.\n")


def test_an_unreadable_config_is_bad_input_naming_the_file(tmp_path, monkeypatch):
    from pathlib import Path

    config = tmp_path / "c.json"
    config.write_text("{}")
    real = Path.read_bytes

    def denied(self):
        if self == config:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    res = runner.invoke(app, ["train-deep", "--config", str(config), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert res.stderr == (f"Error: The 'config' parameter must be a file you can read (cannot read it: Permission "
                          f"denied). Got '{config}' instead.\n")
    assert not (tmp_path / "r").exists()
