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
