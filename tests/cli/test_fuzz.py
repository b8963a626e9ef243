"""The project's own fuzz of the command line: every command × every class of
bad input (and of hostile file: special output targets, code named by a
simulation file, integers beyond any index, deeply nested or mistyped files)
ends in exit code 2 with exactly one line on stderr that names the option or
file, no traceback, and no new or changed file. Below the cases: standard
output that is full or closed, warnings, unexpected failures and a full disk.

Runs in-process (typer's CliRunner) from a fresh working folder, so that a
default output folder (results/, runs/) would land where the test looks.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from lpm.cli import app

runner = CliRunner()




def case(name, args, code, names, marks=()):
    """One row: the arguments (a function of the paths), the exit code, and
    the text (the option or file) that the one line on stderr must contain."""
    return pytest.param(args, code, names, id=name, marks=marks)


CASES = [
    # ------------------------------------------------------------------ lpm
    case("no-such-command", lambda p: ["simulat"], 2, "'simulat'"),
    case("root-unknown-option", lambda p: ["--nope"], 2, "--nope"),
    # ------------------------------------------------------------- simulate
    case("simulate-unknown-option", lambda p: ["simulate", "--nope"], 2, "--nope"),
    case("simulate-extra-argument", lambda p: ["simulate", "extra"], 2, "extra"),
    case("simulate-missing-value", lambda p: ["simulate", "--K"], 2, "--K"),
    case("simulate-bad-choice-loss", lambda p: ["simulate", "--loss", "hinge"], 2, "--loss"),
    case("simulate-bad-choice-solver", lambda p: ["simulate", "--solver", "magic"], 2, "--solver"),
    case("simulate-bad-choice-classifier", lambda p: ["simulate", "--classifier", "free"], 2, "--classifier"),
    case("simulate-bad-choice-budget", lambda p: ["simulate", "--budget", "none"], 2, "--budget"),
    case("simulate-bad-choice-profile", lambda p: ["simulate", "--profile", "zipf"], 2, "--profile"),
    case("simulate-not-an-int", lambda p: ["simulate", "--K", "ten"], 2, "--K"),
    case("simulate-fractional-int", lambda p: ["simulate", "--K", "2.5"], 2, "--K"),
    case("simulate-not-a-number", lambda p: ["simulate", "--ratio", "x"], 2, "--ratio"),
    case("simulate-K-too-small", lambda p: ["simulate", "--K", "1"], 2, "'K'"),
    case("simulate-ratio-below-1", lambda p: ["simulate", "--ratio", "0.5"], 2, "'ratio'"),
    case("simulate-ratio-nan", lambda p: ["simulate", "--ratio", "nan"], 2, "'ratio'"),
    case("simulate-ratio-inf", lambda p: ["simulate", "--ratio", "inf"], 2, "'ratio'"),
    case("simulate-EW-zero", lambda p: ["simulate", "--EW", "0"], 2, "'E_W'"),
    case("simulate-EW-inf", lambda p: ["simulate", "--EW", "inf"], 2, "'E_W'"),
    case("simulate-EH-negative", lambda p: ["simulate", "--EH", "-1"], 2, "'E_H'"),
    case("simulate-majority-too-big", lambda p: ["simulate", "--majority", "10"], 2, "'majority'"),
    case("simulate-seed-negative", lambda p: ["simulate", "--seed", "-1"], 2, "'seed'"),
    case("simulate-d-too-small-for-etf", lambda p: ["simulate", "--classifier", "fixed-etf", "--d", "3"], 2, "'d'"),
    case("simulate-cvx-solver-without-convex", lambda p: ["simulate", "--solver", "nuclear", "--cvx-solver", "SCS"], 2,
     "'cvx_solver'"),
    case("simulate-counts-not-numbers", lambda p: ["simulate", "--counts", "5,x"], 2, "'counts'"),
    case("simulate-counts-one-class", lambda p: ["simulate", "--counts", "5"], 2, "'counts'"),
    case("simulate-counts-negative", lambda p: ["simulate", "--counts", "5,-1"], 2, "'counts'"),
    case("simulate-counts-overflow", lambda p: ["simulate", "--counts", "1e309,1"], 2, "'counts'"),
    case("simulate-counts-and-K", lambda p: ["simulate", "--K", "10", "--counts", "500,500,5,5"], 2, "'K'"),
    case("simulate-counts-and-ratio", lambda p: ["simulate", "--counts", "5,1", "--ratio", "3"], 2, "'ratio'"),
    case("simulate-too-big-for-memory", lambda p: ["simulate", "--K", "100000", "--classifier", "fixed-etf"], 2,
     "GiB"),
    case("simulate-EW-overflows", lambda p: ["simulate", "--EW", "1e308"], 2, "'E_W'"),
    case("simulate-EW-underflows", lambda p: ["simulate", "--EW", "1e-300", "--EH", "1e-300", "--loss",
                                                      "dr"], 2, "'E_W'"),
    case("simulate-weight-decay-without-lambda", lambda p: ["simulate", "--loss", "ce", "--budget", "weight-decay"],
         2, "'lambda_W'"),
    case("simulate-lambda-negative", lambda p: ["simulate", "--loss", "ce", "--budget", "weight-decay",
                                                "--lambda-W", "-1", "--lambda-H", "1e-3"], 2, "'lambda_W'"),
    case("simulate-lambda-without-weight-decay", lambda p: ["simulate", "--lambda-H", "1e-3"], 2, "'lambda_H'"),
    case("simulate-out-is-a-folder", lambda p: ["simulate", "-o", str(p.folder)], 2, "'out'"),
    case("simulate-out-under-a-file", lambda p: ["simulate", "-o", str(p.file / "r.json")], 2, "'out'"),
    case("simulate-out-read-only", lambda p: ["simulate", "-o", str(p.ro / "r.json")], 2, "'out'"),
    # ---------------------------------------------------------------- sweep
    case("sweep-missing-out", lambda p: ["sweep"], 2, "--out"),
    case("sweep-unknown-option", lambda p: ["sweep", "-o", "s", "--nope"], 2, "--nope"),
    case("sweep-bad-choice-loss", lambda p: ["sweep", "-o", "s", "--loss", "ce,hinge"], 2, "'loss'"),
    case("sweep-bad-choice-solver", lambda p: ["sweep", "-o", "s", "--solver", "magic"], 2, "'solver'"),
    case("sweep-K-nan", lambda p: ["sweep", "-o", "s", "--K", "nan"], 2, "'K'"),
    case("sweep-K-inf", lambda p: ["sweep", "-o", "s", "--K", "inf"], 2, "'K'"),
    case("sweep-K-fractional", lambda p: ["sweep", "-o", "s", "--K", "2.5"], 2, "'K'"),
    case("sweep-ratios-empty", lambda p: ["sweep", "-o", "s", "--ratios", ""], 2, "'ratios'"),
    case("sweep-ratios-not-numbers", lambda p: ["sweep", "-o", "s", "--ratios", "1,x"], 2, "'ratios'"),
    case("sweep-ratio-below-1", lambda p: ["sweep", "-o", "s", "--ratios", "0.5"], 2, "'ratio'"),
    case("sweep-ratio-range-malformed", lambda p: ["sweep", "-o", "s", "--ratio-range", "1:1e4"], 2, "'ratio-range'"),
    case("sweep-ratios-and-range", lambda p: ["sweep", "-o", "s", "--ratios", "1", "--ratio-range", "1:10:2"], 2,
     "'ratios'"),
    case("sweep-setting-malformed", lambda p: ["sweep", "-o", "s", "--setting", "steps=3"], 2, "'setting'"),
    case("sweep-jobs-zero", lambda p: ["sweep", "-o", "s", "--jobs", "0"], 2, "--jobs"),
    case("sweep-counts-not-numbers", lambda p: ["sweep", "-o", "s", "--counts", "5,x"], 2, "'counts'"),
    case("sweep-counts-one-class", lambda p: ["sweep", "-o", "s", "--counts", "5"], 2, "'counts'"),
    case("sweep-counts-and-ratios", lambda p: ["sweep", "-o", "s", "--counts", "5,1", "--ratios", "1,10"], 2,
     "'ratios'"),
    case("sweep-counts-and-K", lambda p: ["sweep", "-o", "s", "--counts", "5,1", "--K", "10"], 2, "'K'"),
    case("sweep-K-1", lambda p: ["sweep", "-o", "s", "--K", "1"], 2, "'K'"),
    case("sweep-EW-0", lambda p: ["sweep", "-o", "s", "--EW", "0"], 2, "'E_W'"),
    case("sweep-seeds-negative", lambda p: ["sweep", "-o", "s", "--seeds", "-1"], 2, "'seed"),
    case("sweep-lambda-not-numbers", lambda p: ["sweep", "-o", "s", "--budget", "weight-decay", "--lambda-W", "x"],
         2, "'lambda-W'"),
    case("sweep-weight-decay-without-lambda", lambda p: ["sweep", "-o", "s", "--budget", "weight-decay"], 2,
         "'lambda_W'"),
    case("sweep-out-is-a-file", lambda p: ["sweep", "-o", str(p.file)], 2, "'out'"),
    case("sweep-out-under-a-file", lambda p: ["sweep", "-o", str(p.file / "s")], 2, "'out'"),
    case("sweep-out-read-only", lambda p: ["sweep", "-o", str(p.ro / "s")], 2, "'out'"),
    # ------------------------------------------------------------ reproduce
    case("reproduce-no-name", lambda p: ["reproduce"], 2, "'name'"),
    case("reproduce-unknown-name", lambda p: ["reproduce", "no-such-figure"], 2, "'name'"),
    case("reproduce-unknown-option", lambda p: ["reproduce", "--nope"], 2, "--nope"),
    case("reproduce-jobs-zero", lambda p: ["reproduce", "phase-diagram", "--jobs", "0"], 2, "--jobs"),
    case("reproduce-sims-dir-empty", lambda p: ["reproduce", "--sims-dir", str(p.folder), "all"], 2, "'sims-dir'"),
    case("reproduce-sims-dir-empty-list", lambda p: ["reproduce", "--sims-dir", str(p.folder), "--list"], 2,
     "'sims-dir'"),
    case("reproduce-sims-dir-a-file", lambda p: ["reproduce", "--sims-dir", str(p.file), "all"], 2, "'sims-dir'"),
    case("reproduce-out-is-a-file", lambda p: ["reproduce", "phase-diagram", "--smoke", "-o", str(p.file)], 2,
     "'out'"),
    case("reproduce-out-under-a-file", lambda p: ["reproduce", "phase-diagram", "--smoke", "-o", str(p.file / "x")],
     2, "'out'"),
    case("reproduce-out-read-only", lambda p: ["reproduce", "phase-diagram", "--smoke", "-o", str(p.ro / "x")], 2,
     "'out'"),
    # ------------------------------------------------------------- compare
    case("compare-no-run", lambda p: ["compare"], 2, "'run_dir'"),
    case("compare-run-missing", lambda p: ["compare", str(p.folder / "nowhere")], 2, "nowhere"),
    case("compare-run-is-a-file", lambda p: ["compare", str(p.file)], 2, str(Path("f"))),
    case("compare-run-not-a-run", lambda p: ["compare", str(p.folder)], 2, "'run_dir'"),
    case("compare-unknown-option", lambda p: ["compare", str(p.folder), "--nope"], 2, "--nope"),
    case("compare-bad-choice-solver", lambda p: ["compare", str(p.folder), "--solver", "gradient"], 2, "--solver"),
    case("compare-bad-choice-rule", lambda p: ["compare", str(p.folder), "--budget-rule", "guess"], 2,
     "--budget-rule"),
    case("compare-curve-points-1", lambda p: ["compare", str(p.folder), "--curve-points", "1"], 2, "--curve-points"),
    case("compare-EW-not-a-number", lambda p: ["compare", str(p.folder), "--EW", "x"], 2, "--EW"),
    case("compare-out-is-a-file", lambda p: ["compare", str(p.folder), "-o", str(p.file)], 2, "'out'"),
    case("compare-out-under-a-file", lambda p: ["compare", str(p.folder), "-o", str(p.file / "c")], 2, "'out'"),
    case("compare-out-read-only", lambda p: ["compare", str(p.folder), "-o", str(p.ro / "c")], 2, "'out'"),
    case("compare-EW-overflows", lambda p: ["compare", str(p.run()), "--EW", "1e308", "-o", "c"], 2, "'E_W'"),
    # ----------------------------------------------------------- train-deep
    case("train-deep-unknown-option", lambda p: ["train-deep", "--nope"], 2, "--nope"),
    case("train-deep-bad-choice", lambda p: ["train-deep", "--dataset", "imagenet-21k"], 2, "--dataset"),
    case("train-deep-not-an-int", lambda p: ["train-deep", "--epochs", "x"], 2, "--epochs"),
    case("train-deep-missing-value", lambda p: ["train-deep", "--lr"], 2, "--lr"),
    case("train-deep-out-is-a-file", lambda p: ["train-deep", "--dataset", "synthetic-lt", "--epochs", "1",
                                                        "--out", str(p.file)], 2, "'out'"),
    case("train-deep-out-read-only", lambda p: ["train-deep", "--dataset", "synthetic-lt", "--epochs", "1",
                                                        "--out", str(p.ro / "run")], 2, "'out'"),
]

# ------------------------------------------------------------------------------------------------
# Faults and hostile files (each class below has cases beyond the first examples found):
# outputs onto special files, code named by a file, integers beyond any index or seed, files
# nested too deeply, files of the right name with the wrong types inside, sizes that cannot be
# allocated, malformed cluster addresses, options that would have no effect, empty list entries,
# duplicate simulation names, and messages that name the argument rather than a symptom.
SIM_OK = """description = "x"
runner = "sweep"
plot = "minority_collapse"
[[grids]]
task = "solve"
name = "g"
ratio = [1.0, 10.0]
classifier = ["learnable"]
solver = ["nuclear"]
"""
FAULT_CASES = [
    # -------------------------------------------- outputs onto special files (symlinks, devices, pipes)
    case("simulate-out-symlink", lambda p: ["simulate", "-o", str(p.link)], 2, "symbolic link"),
    case("simulate-out-dangling-symlink", lambda p: ["simulate", "-o", str(p.dangling)], 2, "symbolic link"),
    case("simulate-out-fifo", lambda p: ["simulate", "-o", str(p.fifo)], 2, "named pipe"),
    case("simulate-out-device", lambda p: ["simulate", "-o", "/dev/null"], 2, "character device"),
    # -------------------------------------------- code named by a simulation file
    case("reproduce-runner-os-system", lambda p: ["reproduce", "x", "--sims-dir", p.sims(
        SIM_OK.replace('runner = "sweep"', 'runner = "os:system"'))], 2, "'runner'"),
    case("reproduce-runner-module-path", lambda p: ["reproduce", "x", "--sims-dir", p.sims(
        SIM_OK.replace('runner = "sweep"', 'runner = "subprocess:run"'))], 2, "register_runner"),
    case("reproduce-plot-os-system", lambda p: ["reproduce", "x", "--sims-dir", p.sims(
        SIM_OK.replace('plot = "minority_collapse"', 'plot = "os:system"'))], 2, "'plot'"),
    case("reproduce-plot-builtin-eval", lambda p: ["reproduce", "x", "--sims-dir", p.sims(
        SIM_OK.replace('plot = "minority_collapse"', 'plot = "builtins:eval"'))], 2, "register_plot"),
    # -------------------------------------------- integers beyond any index or seed
    case("simulate-seed-2-32", lambda p: ["simulate", "--seed", str(2**32)], 2, "'seed'"),
    case("simulate-seed-huge", lambda p: ["simulate", "--seed", "9" * 30], 2, "'seed'"),
    case("simulate-K-23-digits", lambda p: ["simulate", "--K", "1" + "0" * 22], 2, "'K'"),
    case("simulate-d-huge", lambda p: ["simulate", "--d", "9" * 25], 2, "'d'"),
    case("simulate-majority-huge", lambda p: ["simulate", "--majority", "9" * 25], 2, "'majority'"),
    case("sweep-seeds-2-32", lambda p: ["sweep", "-o", "s", "--seeds", f"0,{2**32}"], 2, "'seed'"),
    case("sweep-jobs-a-million", lambda p: ["sweep", "-o", "s", "--jobs", "1000000"], 2, "'jobs'"),
    case("sweep-jobs-25-digits", lambda p: ["sweep", "-o", "s", "--jobs", "9" * 25], 2, "'jobs'"),
    case("reproduce-cluster-local-a-million", lambda p: ["reproduce", "phase-diagram", "--smoke", "--cluster",
                                                         "local:1000000"], 2, "'cluster'"),
    case("sweep-K-23-digits", lambda p: ["sweep", "-o", "s", "--K", "1" + "0" * 22], 2, "'K'"),
    case("train-deep-seed-2-32", lambda p: ["train-deep", "--dataset", "synthetic-lt", "--seed", str(2**32),
                                            "--out", "r"], 2, "'seed'"),
    case("train-deep-config-head-seed-huge", lambda p: ["train-deep", "--config", p.write(
        "c.json", '{"dataset": "synthetic-lt", "head_seed": 1e400}'), "--out", "r"], 2, "'head_seed'"),
    case("train-deep-config-epochs-huge", lambda p: ["train-deep", "--config", p.write(
        "c.json", '{"dataset": "synthetic-lt", "epochs": ' + "9" * 30 + '}'), "--out", "r"], 2, "'epochs'"),
    # -------------------------------------------- files nested very deeply
    case("train-deep-config-deep-json", lambda p: ["train-deep", "--config", p.write(
        "c.json", '{"a":' * 3000 + "1" + "}" * 3000), "--out", "r"], 2, "nested"),
    case("train-deep-config-deep-toml", lambda p: ["train-deep", "--config", p.write(
        "c.toml", "a = " + "[" * 3000 + "]" * 3000), "--out", "r"], 2, "nested"),
    case("train-deep-config-deep-but-parsable", lambda p: ["train-deep", "--config", p.write(
        "c.json", '{"a":' * 40 + "1" + "}" * 40), "--out", "r"], 2, "nested"),
    case("reproduce-sims-deep-toml", lambda p: ["reproduce", "--list", "--sims-dir", p.sims(
        SIM_OK + "extra = " + "[" * 3000 + "]" * 3000)], 2, "nested"),
    case("reproduce-sims-deep-table", lambda p: ["reproduce", "--list", "--sims-dir", p.sims(
        SIM_OK + "[options]\nx = " + "{a = " * 40 + "1" + "}" * 40)], 2, "nested"),
    case("train-deep-config-a-folder", lambda p: ["train-deep", "--config", p.folder_named("c.json"),
                                                  "--out", "r"], 2, "c.json"),
    case("train-deep-config-not-utf8", lambda p: ["train-deep", "--config", p.write_bytes("c.toml", b"a = '\xff'"),
                                                  "--out", "r"], 2, "c.toml"),
    # -------------------------------------------- run files with the right names, wrong types inside
    case("compare-config-not-a-table", lambda p: ["compare", p.bad_run(config=lambda c: c.update(config=[1]))],
         2, "config.json"),
    case("compare-data-not-a-table", lambda p: ["compare", p.bad_run(config=lambda c: c.update(data="x"))],
         2, "config.json"),
    case("compare-majority-text", lambda p: ["compare", p.bad_run(
        config=lambda c: c["data"].update(majority="many"))], 2, "config.json"),
    case("compare-means-text", lambda p: ["compare", p.bad_run(class_means=np.array([["a"]]))], 2,
         "final_geometry.npz"),
    case("compare-epoch-an-array", lambda p: ["compare", p.bad_run(epoch=np.arange(3))], 2, "final_geometry.npz"),
    case("compare-head-a-number", lambda p: ["compare", p.bad_run(head=np.float64(1.0))], 2, "final_geometry.npz"),
    case("compare-summary-epochs-text", lambda p: ["compare", p.bad_run(summary=lambda s: s.update(epochs="1"))],
         2, "summary.json"),
    case("compare-summary-deep", lambda p: ["compare", p.bad_run(summary_text="[" * 5000 + "]" * 5000)], 2,
         "summary.json"),
    case("compare-files-of-two-runs", lambda p: ["compare", p.bad_run(summary=lambda s: s.update(run_id="f" * 32))],
         2, "summary.json is from run ffffffff"),
    case("compare-epochs-disagree", lambda p: ["compare", p.bad_run(epoch=np.int64(7))], 2, "final_geometry.npz 7"),
    # -------------------------------------------- sizes that cannot be allocated, estimated first
    case("train-deep-feature-dim-huge", lambda p: ["train-deep", "--config", p.write(
        "c.json", '{"dataset": "synthetic-lt", "feature_dim": 100000000}'), "--out", "r"], 2, "'feature_dim'"),
    case("train-deep-n-max-trillion", lambda p: ["train-deep", "--dataset", "synthetic-lt", "--n-max",
                                                 "1000000000000", "--out", "r"], 2, "'n_max'"),
    case("train-deep-n-max-huge-images", lambda p: ["train-deep", "--dataset", "synthetic-images-lt", "--n-max",
                                                    "100000000", "--out", "r"], 2, "'n_max'"),
    case("simulate-K-trillion-names-K", lambda p: ["simulate", "--K", "1000000000000"], 2, "'K'"),
    case("sweep-K-trillion-names-K", lambda p: ["sweep", "-o", "s", "--K", "1000000000000"], 2, "'K'"),
    case("simulate-counts-1e308-no-warning", lambda p: ["simulate", "--counts", "1e308,1e308", "--loss", "ce",
                                                        "--budget", "weight-decay", "--lambda-W", "1e-3",
                                                        "--lambda-H", "1e-3"], 2, "'counts'"),
    case("sweep-counts-1e308-weight-decay", lambda p: ["sweep", "-o", "s", "--counts", "1e308,1e308", "--budget",
                                                       "weight-decay", "--lambda-W", "1e-3", "--lambda-H", "1e-3"],
         2, "'counts'"),
    # -------------------------------------------- simulation files checked whole before any cell runs
    case("reproduce-unknown-plot-option", lambda p: ["reproduce", "x", "--sims-dir", p.sims(
        'plot_options = { colour = "red" }\n' + SIM_OK)], 2, "colour"),
    case("reproduce-options-with-sweep-runner", lambda p: ["reproduce", "x", "--sims-dir", p.sims(
        'options = { speed = 2 }\n' + SIM_OK)], 2, "'options'"),
    case("reproduce-unknown-table", lambda p: ["reproduce", "x", "--sims-dir", p.sims(
        'table = "nope"\n' + SIM_OK)], 2, "'table'"),
    case("reproduce-smoke-override-of-no-grid", lambda p: ["reproduce", "x", "--smoke", "--sims-dir", p.sims(
        SIM_OK + '[[smoke.grids]]\nname = "h"\nratio = [1.0]\n')], 2, "'smoke.grids'"),
    case("reproduce-duplicate-names", lambda p: ["reproduce", "--list", "--sims-dir", p.sims(
        'name = "same"\n' + SIM_OK, 'name = "same"\n' + SIM_OK)], 2, "'same'"),
    case("reproduce-duplicate-name-of-stem", lambda p: ["reproduce", "x", "--sims-dir", p.sims(
        SIM_OK, 'name = "x"\n' + SIM_OK)], 2, "'x'"),
    # -------------------------------------------- malformed cluster addresses, unsupported schemes
    case("sweep-cluster-http", lambda p: ["sweep", "-o", "s", "--cluster", "http://host:8786"], 2, "'http'"),
    case("sweep-cluster-bad-ipv6", lambda p: ["sweep", "-o", "s", "--cluster", "tcp://[::1"], 2, "'cluster'"),
    case("sweep-cluster-port-text", lambda p: ["sweep", "-o", "s", "--cluster", "tcp://host:port"], 2, "'cluster'"),
    case("sweep-cluster-port-too-big", lambda p: ["sweep", "-o", "s", "--cluster", "tcp://host:99999"], 2,
         "'cluster'"),
    case("sweep-cluster-with-path", lambda p: ["sweep", "-o", "s", "--cluster", "tcp://host:1/x"], 2, "'cluster'"),
    case("sweep-cluster-space", lambda p: ["sweep", "-o", "s", "--cluster", "tcp://ho st:1"], 2, "'cluster'"),
    case("reproduce-cluster-ucx", lambda p: ["reproduce", "phase-diagram", "--smoke", "--cluster", "ucx://h:1"], 2,
         "'ucx'"),
    # -------------------------------------------- options with no effect in the chosen mode
    case("compare-lambda-W-without-rule", lambda p: ["compare", str(p.run()), "--lambda-W", "1e-3"], 2,
         "'lambda_W'"),
    case("compare-lambda-H-with-loss-rule", lambda p: ["compare", str(p.run()), "--budget-rule", "loss",
                                                       "--lambda-H", "1e-3"], 2, "'lambda_H'"),
    case("compare-EW-with-weight-decay-rule", lambda p: ["compare", str(p.run()), "--budget-rule", "weight-decay",
                                                         "--EW", "2"], 2, "'E_W'"),
    case("sweep-lambda-without-weight-decay", lambda p: ["sweep", "-o", "s", "--lambda-W", "1e-3"], 2,
         "'lambda_W'"),
    case("sweep-EW-with-ewh", lambda p: ["sweep", "-o", "s", "--ewh", "5", "--EW", "2"], 2, "'EW'"),
    case("sweep-EH-with-ewh", lambda p: ["sweep", "-o", "s", "--ewh", "5", "--EH", "2"], 2, "'EH'"),
    case("simulate-EW-with-weight-decay", lambda p: ["simulate", "--classifier", "learnable", "--loss", "ce",
                                                     "--budget", "weight-decay", "--lambda-W", "1e-3",
                                                     "--lambda-H", "1e-3", "--EW", "3"], 2, "'E_W'"),
    case("train-deep-dr-form-without-dr", lambda p: ["train-deep", "--dataset", "synthetic-lt", "--dr-form",
                                                     "released", "--out", "r"], 2, "'dr-form'"),
    case("train-deep-milestones-with-cosine", lambda p: ["train-deep", "--dataset", "synthetic-lt", "--schedule",
                                                         "cosine", "--milestones", "0.5", "--out", "r"], 2,
         "'milestones'"),
    case("train-deep-root-for-offline-set", lambda p: ["train-deep", "--dataset", "mnist1d-lt", "--root",
                                                       str(p.folder), "--out", "r"], 2, "'root'"),
    case("train-deep-num-workers-for-offline-set", lambda p: ["train-deep", "--dataset", "digits-lt",
                                                              "--num-workers", "2", "--out", "r"], 2, "'num-workers'"),
    case("train-deep-allow-degenerate-with-ce", lambda p: ["train-deep", "--dataset", "synthetic-lt",
                                                           "--allow-degenerate", "--out", "r"], 2,
         "'allow-degenerate'"),
    case("reproduce-list-with-name", lambda p: ["reproduce", "phase-diagram", "--list"], 2, "'name'"),
    case("reproduce-list-with-out", lambda p: ["reproduce", "--list", "-o", "x"], 2, "'out'"),
    case("reproduce-runs-dir-without-deep-runs", lambda p: ["reproduce", "phase-diagram", "--smoke", "--runs-dir",
                                                            "rd"], 2, "'runs-dir'"),
    # -------------------------------------------- empty entries in lists
    case("simulate-counts-empty-entry", lambda p: ["simulate", "--counts", "5,,5"], 2, "'counts'"),
    case("simulate-counts-trailing-comma", lambda p: ["simulate", "--counts", "5,5,"], 2, "'counts'"),
    case("sweep-counts-empty-entry", lambda p: ["sweep", "-o", "s", "--counts", "5,,5"], 2, "'counts'"),
    case("sweep-ratios-empty-entry", lambda p: ["sweep", "-o", "s", "--ratios", "1,,10"], 2, "'ratios'"),
    case("sweep-loss-empty-entry", lambda p: ["sweep", "-o", "s", "--loss", "ce,,dr"], 2, "'loss'"),
    case("sweep-seeds-leading-comma", lambda p: ["sweep", "-o", "s", "--seeds", ",1"], 2, "'seeds'"),
    case("train-deep-milestones-empty-entry", lambda p: ["train-deep", "--dataset", "synthetic-lt", "--milestones",
                                                         "0.5,,0.9", "--out", "r"], 2, "'milestones'"),
]
CASES += FAULT_CASES


def read_only_folder(tmp: Path) -> Path:
    """A folder nobody can create files in: chmod 555, or /sys when running as root."""
    folder = tmp / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no folder on this machine refuses new files")


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns)
            for root in roots if root.is_dir() and os.access(root, os.W_OK) and str(root) != "/sys"
            for f in root.rglob("*") if f.is_file()}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-epoch run folder of `lpm train-deep` (made on first use)."""
    made = []

    def make() -> Path:
        if not made:
            out = tmp_path_factory.mktemp("run") / "run"
            res = runner.invoke(app, ["train-deep", "--dataset", "synthetic-lt", "--ratio", "10", "--epochs", "1",
                                      "--backbone", "mlp", "--max-batches-per-epoch", "1", "--no-progress",
                                      "--out", str(out)])
            assert res.exit_code == 0, res.output
            made.append(out)
        return made[0]

    return make


@pytest.fixture
def paths(tmp_path, monkeypatch, tiny_run):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "f").write_text("a regular file\n")
    (work / "empty").mkdir()
    (work / "link").symlink_to(work / "f")
    (work / "dangling").symlink_to(work / "nowhere.json")
    os.mkfifo(work / "fifo")
    made = tmp_path / "made"  # files the cases read, outside the watched folder
    made.mkdir()

    def write(name, text):
        (made / name).write_text(text)
        return str(made / name)

    def write_bytes(name, data):
        (made / name).write_bytes(data)
        return str(made / name)

    def folder_named(name):
        (made / name).mkdir()
        return str(made / name)

    def sims(*texts):
        folder = made / "sims"
        folder.mkdir()
        for i, text in enumerate(texts):
            (folder / ("x.toml" if i == 0 else f"y{i}.toml")).write_text(text)
        return str(folder)

    def bad_run(config=None, summary=None, summary_text=None, **arrays):
        """A copy of the tiny run with one file changed."""
        run = made / "bad-run"
        shutil.copytree(tiny_run(), run)
        if config is not None:
            data = json.loads((run / "config.json").read_text())
            config(data)
            (run / "config.json").write_text(json.dumps(data))
        if summary is not None:
            data = json.loads((run / "summary.json").read_text())
            summary(data)
            (run / "summary.json").write_text(json.dumps(data))
        if summary_text is not None:
            (run / "summary.json").write_text(summary_text)
        if arrays:
            with np.load(run / "final_geometry.npz") as npz:
                values = dict(npz)
            values.update(arrays)
            np.savez(run / "final_geometry.npz", **values)
        return str(run)

    yield SimpleNamespace(file=work / "f", folder=work / "empty", ro=read_only_folder(tmp_path), work=work,
                          run=tiny_run, link=work / "link", dangling=work / "dangling", fifo=work / "fifo",
                          write=write, write_bytes=write_bytes, folder_named=folder_named, sims=sims, bad_run=bad_run)
    (tmp_path / "read-only").chmod(0o755)


@pytest.mark.parametrize("args, code, names", CASES)
def test_bad_input_is_one_line(args, code, names, paths):
    before = snapshot(paths.work, paths.ro)
    res = runner.invoke(app, args(paths))
    lines = res.stderr.splitlines()
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit), res.output
    assert res.exit_code == code, res.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert names in lines[0], lines[0]
    assert snapshot(paths.work, paths.ro) == before, "files were written"


def test_the_memory_refusal_says_how_much_is_needed(monkeypatch, paths):
    from lpm.core.problem import Problem
    from lpm.core.solvers import registry

    monkeypatch.setattr(registry, "physical_memory", lambda: 2**30)
    res = runner.invoke(app, ["simulate", "--K", "5000", "--classifier", "fixed-etf"])
    assert res.exit_code == 2
    assert res.stderr == ("Error: The 'K' parameter must be small enough to fit in memory: K=5000, d=5000 needs "
                          "about 1.9 GiB, this machine has 1.0 GiB. Got 5000 instead.\n")
    problem = Problem.from_profile(K=3000, ratio=10, d=3000)
    assert problem.memory_bytes() == 10 * 8 * 3000 * 3000
    registry.check_memory(problem, available=10 * 8 * 3000 * 3000)  # fits exactly: accepted


# ------------------------------------------------------------------ standard output
ROOT = Path(__file__).resolve().parents[2]


def test_a_full_stdout_is_one_line_for_every_command(tmp_path, tiny_run):
    """`> /dev/full`: exit 1 and one line naming standard output, for every command that prints;
    what the command writes to files is whole (the sweep's table is there)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    commands = {
        "help": ["--help"], "version": ["--version"], "simulate": ["simulate", "--K", "4"],
        "simulate-json": ["simulate", "--K", "4", "--json"],
        "sweep": ["sweep", "-o", str(tmp_path / "s"), "--solver", "nuclear", "--no-progress"],
        "reproduce": ["reproduce", "--list"],
        "compare": ["compare", str(tiny_run()), "-o", str(tmp_path / "c")],
        "train-deep": ["train-deep", "--dataset", "synthetic-lt", "--ratio", "10", "--epochs", "1", "--backbone",
                       "mlp", "--max-batches-per-epoch", "1", "--no-progress", "--out", str(tmp_path / "r")],
    }
    for name, args in commands.items():
        with open("/dev/full", "w") as full:
            res = subprocess.run(
                [sys.executable, "-m", "lpm", *args], cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True,
                timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
        assert res.returncode == 1, (name, res.stderr)
        assert res.stderr == "Error: cannot write to standard output: No space left on device.\n", (name, res.stderr)
    assert (tmp_path / "s" / "results.csv").is_file() and (tmp_path / "r" / "summary.json").is_file()


@pytest.mark.parametrize("args", [["reproduce", "--list"], ["simulate", "--K", "4"], ["--help"]],
                         ids=["reproduce-list", "simulate", "help"])
def test_a_closed_pipe_ends_quietly(tmp_path, args):
    """`lpm ... | head -1`: the reader stops reading; lpm exits 0 and says nothing."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "lpm", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == "", err


def test_warnings_are_one_line(paths, monkeypatch):
    """A warning raised inside a command (NumPy's RuntimeWarning, say) prints as one line."""
    import warnings

    import lpm.simulate as sim

    real = sim.simulate

    def noisy(*a, **k):
        warnings.warn("overflow encountered in divide", RuntimeWarning)
        return real(*a, **k)

    monkeypatch.setattr(sim, "simulate", noisy)
    res = runner.invoke(app, ["simulate", "--K", "4"])
    assert res.exit_code == 0
    assert res.stderr == "Warning: overflow encountered in divide\n"


def test_an_unexpected_failure_is_one_line(paths, monkeypatch):
    import lpm.simulate as sim

    monkeypatch.delenv("LPM_DEBUG", raising=False)
    monkeypatch.setattr(sim, "simulate", lambda *a, **k: {}["missing"])
    res = runner.invoke(app, ["simulate", "--K", "4"])
    assert res.exit_code == 1
    assert res.stderr == ("Error: unexpected failure (KeyError: 'missing'); set LPM_DEBUG=1 to see where.\n")


def test_a_full_disk_names_the_file_and_keeps_the_old_one(paths, monkeypatch):
    """Disk full while a result is written: one line naming the file and the operation, exit 1,
    and the file as it was (no temporary left)."""
    import errno

    from lpm.core import io

    target = paths.work / "r.json"
    target.write_text("old\n")
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "replace", full)
    res = runner.invoke(app, ["simulate", "--K", "4", "-o", str(target)])
    monkeypatch.setattr(io.os, "replace", real_replace)
    assert res.exit_code == 1
    assert res.stderr == f"Error: cannot write {target}: No space left on device.\n"
    assert target.read_text() == "old\n" and not [p for p in paths.work.iterdir() if p.name.endswith(".tmp")]
