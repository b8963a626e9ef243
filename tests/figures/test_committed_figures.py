"""The figures in docs/figures are what the documented command (scripts/make_figures.sh) draws.

``bash scripts/make_figures.sh`` runs ``lpm reproduce all`` and copies, per figure NAME, the PNG,
its ``figure.json`` (as NAME.json) and the table it was drawn from (NAME.csv.gz). For each committed
figure this test checks, without rerunning the sweeps:

* it was made with the full grid (not ``--smoke``) from the simulation file as it is now
  (SHA-256 of ``sims/NAME.toml``), so a changed simulation file needs a new figure;
* the committed table is the one drawn (SHA-256 of its CSV text);
* the plotting code as it is now draws exactly the committed PNG from that table (pixel for pixel,
  with the matplotlib version that made it; another version may place text differently, so there
  only the hashes are checked), so a changed figure function needs a new figure too.
"""
import gzip
import hashlib
import io
import json
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from lpm.figures import get_plot
from lpm.figures.style import save_figure
from lpm.reproduce import get_simulation

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "docs" / "figures"
NAMES = sorted(p.stem for p in FIGURES.glob("*.png"))
#: committed figures not yet redrawn with their provenance (strict: once one is, its entry must go)
NOT_YET_REDRAWN: dict[str, str] = {}


def test_every_simulation_has_its_committed_figure():
    sims = sorted(p.stem for p in (ROOT / "sims").glob("*.toml"))
    assert NAMES == sims


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(n in NOT_YET_REDRAWN, strict=True,
                                                                           reason=NOT_YET_REDRAWN.get(n, "")))
                                  for n in NAMES])
def test_committed_figure_is_what_the_command_draws(name, tmp_path):
    record = json.loads((FIGURES / f"{name}.json").read_text())
    assert record["simulation"] == name and record["smoke"] is False and record["failed_cells"] == 0
    sim_hash = hashlib.sha256((ROOT / "sims" / f"{name}.toml").read_bytes()).hexdigest()
    assert record["simulation_sha256"] == sim_hash, f"sims/{name}.toml changed since docs/figures/{name}.png was made"
    text = gzip.decompress((FIGURES / f"{name}.csv.gz").read_bytes())
    assert hashlib.sha256(text).hexdigest() == record["table_sha256"]
    if record["matplotlib"] != matplotlib.__version__:
        pytest.skip(f"drawn with matplotlib {record['matplotlib']}; this is {matplotlib.__version__}")
    sim = get_simulation(name)
    fig = get_plot(sim.plot)(pd.read_csv(io.BytesIO(text)), **sim.plot_options)
    [png, _] = save_figure(fig, tmp_path / name)
    drawn, committed = (matplotlib.image.imread(p) for p in (png, FIGURES / f"{name}.png"))
    assert drawn.shape == committed.shape, f"docs/figures/{name}.png is not what the plotting code draws now"
    assert np.array_equal(drawn, committed), f"docs/figures/{name}.png is not what the plotting code draws now"
