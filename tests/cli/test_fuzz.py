"""The project's own fuzz of the command line (issue 14): every command × every
class of bad input ends in exit code 2 with exactly one line on stderr that
names the option or file, no traceback, and no new or changed file.

Runs in-process (typer's CliRunner) from a fresh working folder, so that a
default output folder (results/, runs/) would land where the test looks.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

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
    yield SimpleNamespace(file=work / "f", folder=work / "empty", ro=read_only_folder(tmp_path), work=work,
                          run=tiny_run)
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
