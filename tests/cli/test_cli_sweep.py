"""`lpm sweep --counts`: measured class counts swept from the command line."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from lpm.cli import app
from lpm.cli._common import parse_counts
from lpm.core.errors import LPMInputError

runner = CliRunner()


def test_count_lists_come_from_repeated_options_or_semicolons():
    assert parse_counts("counts", ["500,500,5,5", "50, 5,5 ;0.5,0.25"]) == [[500, 500, 5, 5], [50, 5, 5],
                                                                            [0.5, 0.25]]
    with pytest.raises(LPMInputError, match="at least 2 class counts"):
        parse_counts("counts", ["5,1;7"])
    with pytest.raises(LPMInputError, match="one or more lists"):
        parse_counts("counts", [" ; "])


def test_sweep_over_explicit_counts(tmp_path):
    out = tmp_path / "sweep"
    res = runner.invoke(app, ["sweep", "-o", str(out), "--counts", "500,500,5,5", "--counts", "50,5,5",
                              "--loss", "ce", "--solver", "nuclear", "--no-progress"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2
    for counts, objective in zip(("500,500,5,5", "50,5,5"), table["objective"]):
        sim = runner.invoke(app, ["simulate", "--counts", counts, "--classifier", "learnable", "--loss", "ce",
                                  "--solver", "nuclear", "--json"])
        assert objective == pytest.approx(json.loads(sim.stdout)[0]["objective"], rel=1e-9)


def test_sweep_max_margin_has_no_norm_budgets(tmp_path):
    out = tmp_path / "sweep"
    res = runner.invoke(app, ["sweep", "-o", str(out), "--budget", "max-margin", "--ratios", "1,100",
                              "--EW", "1,2", "--no-progress"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2                                # one cell per R, not one per E_W
    assert table[["E_W", "E_H", "ewh"]].isna().all().all()
    assert (table["solver"] == "analytic").all() and (table["gap"] <= 1e-12).all()
    q = (101 / 2) ** 0.5                                  # SELI's minority cosine at K_A = K/2 (theory.md §15)
    assert table.loc[table["ratio"] == 100, "classifier_minority_cos"].item() == pytest.approx((q - 2) / (q + 8))
