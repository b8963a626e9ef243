"""The scripts in examples/ run as documented and print what their docstrings promise."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(name: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_examples_folder_holds_the_three_scripts():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == [
        "solve_one_setting.py", "sweep_and_plot.py", "train_and_compare.py"]


def test_solve_one_setting_certifies_collapse_and_its_absence():
    out = _run("solve_one_setting.py").splitlines()
    assert out[0].startswith("learnable + ce: solver nuclear, status optimal, objective 0.0913")
    assert out[1] == "  minority classifier cosine +1.0000, collapse index 0.0000 (1 = ETF, 0 = merged)"
    assert out[2].startswith("fixed-etf + dr: solver analytic, status optimal")
    assert out[3] == "  minority classifier cosine -0.1111, collapse index 1.0000 (1 = ETF, 0 = merged)"


def test_sweep_and_plot_finds_the_collapse_and_draws_it(tmp_path):
    out = _run("sweep_and_plot.py", str(tmp_path / "sweep")).splitlines()
    assert out[0].startswith("21 certified solves; worst relative gap ")
    assert float(out[0].rsplit(" ", 1)[1]) < 1e-8
    # R* ≈ 12.2 (docs/theory.md §4.3): the first grid ratio above it, 10^(1.2)
    assert out[1] == "first ratio with merged minority classifiers: 15.85"
    assert (tmp_path / "sweep" / "plot_classifier_minority_cos_vs_ratio.png").stat().st_size > 10_000


@pytest.mark.filterwarnings("ignore")
def test_train_and_compare_sets_two_runs_beside_the_lpm(tmp_path):
    out = _run("train_and_compare.py", str(tmp_path / "runs"))
    assert "learnable-ce: K=10 d=64 learnable+CE R=10; LPM by nuclear (optimal" in out
    # a fixed ETF head keeps its minority rows at -1/(K-1), as the LPM does
    assert "collapse index run 1 vs LPM 1; minority classifier cosine run -0.1111 vs LPM -0.1111" in out
    assert (tmp_path / "runs" / "compare" / "distances.csv").is_file()
