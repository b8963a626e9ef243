"""Simulation files: schema checks and the runner / plot plug-in points."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from lpm.core.errors import LPMInputError
from lpm.figures import register_plot
from lpm.reproduce import build_grid, get_simulation, load_simulation, register_runner, reproduce

CALLS: list[dict] = []


def fake_runner(sim, out_dir, *, smoke=False, progress=True, executor=None, runs_dir=None):
    """A plug-in runner, as a later theory-vs-practice file would register."""
    CALLS.append({"name": sim.name, "smoke": smoke, "executor": executor.describe(), "runs_dir": runs_dir,
                  "options": sim.options})
    return {"points": pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [sim.options["slope"] * v for v in (1, 2, 3)]})}


def fake_plot(table, ax=None, marker="o"):
    fig, ax = plt.subplots() if ax is None else (ax.figure, ax)
    ax.plot(table["x"], table["y"], marker=marker)
    ax.set_xlabel("x")
    return fig


def write(folder, name, text):
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_custom_runner_and_plot_registered_in_python(tmp_path):
    register_runner("fake-runner")(fake_runner)
    register_plot("fake-plot")(fake_plot)
    sims = tmp_path / "sims"
    sims.mkdir()
    write(sims, "plugin", '''
name = "plugin"
description = "a plug-in"
runner = "fake-runner"
plot = "fake-plot"
table = "points"
plot_options = { marker = "s" }
options = { slope = 2.5 }
''')
    CALLS.clear()
    result = reproduce("plugin", tmp_path / "out", smoke=True, jobs=2, sims_dir=sims, progress=False)
    assert CALLS == [{"name": "plugin", "smoke": True, "executor": "local pool of 2 processes", "runs_dir": None,
                      "options": {"slope": 2.5}}]
    assert [p.name for p in result.figures] == ["plugin.png", "plugin.pdf"]
    assert result.tables["points"]["y"].tolist() == [2.5, 5.0, 7.5]


def test_unknown_keys_and_names_are_user_errors(tmp_path):
    path = write(tmp_path, "bad", 'name = "bad"\nrunner = "sweep"\ncolour = "red"\n')
    with pytest.raises(LPMInputError, match=r"The 'key' parameter of simulation file bad.toml must be one of .*"
                                            r"Got 'colour' instead."):
        load_simulation(path)
    with pytest.raises(LPMInputError, match=r"keys of a 'solve' grid"):
        build_grid({"task": "solve", "ratios": [1, 2]})
    with pytest.raises(LPMInputError, match=r"The 'task' parameter of grid must be one of 'solve', 'threshold', "
                                            r"'regularised', 'convergence', 'tuning'. Got 'train' instead."):
        build_grid({"task": "train"})
    ok_dir = tmp_path / "ok"
    ok_dir.mkdir()
    write(ok_dir, "first", 'name = "first"\n')
    with pytest.raises(LPMInputError, match=r"The 'name' parameter of lpm reproduce must be one of 'first' "
                                            r"\(or 'all'\). Got 'second' instead."):
        get_simulation("second", ok_dir)


def test_smoke_overrides_replace_ratio_ranges():
    sim = get_simulation("minority-collapse")
    full = {g["name"]: build_grid(g) for g in sim.grid_specs()}
    smoke = {g["name"]: build_grid(g) for g in sim.grid_specs(smoke=True)}
    assert len(full["certified"].ratio) == 41 and smoke["certified"].ratio == (1.0, 10.0, 1000.0)
    assert smoke["certified"].solver == full["certified"].solver == ("convex", "nuclear")


@pytest.mark.parametrize("key, ref", [("runner", "os:system"), ("runner", "lpm_marker_module:run"),
                                      ("plot", "os:system"), ("plot", "lpm_marker_module:run"),
                                      ("runner", "subprocess:call")])
def test_a_simulation_file_cannot_name_code(tmp_path, monkeypatch, key, ref):
    """Only registered runners and figures run: a file naming a standard-library function, or a
    module that would act when imported, is refused before anything is imported or run."""
    from typer.testing import CliRunner

    from lpm.cli import app

    marker = tmp_path / "imported"
    (tmp_path / "lpm_marker_module.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef run(*a, **k): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sims = tmp_path / "sims"
    sims.mkdir()
    fields = {"runner": "sweep", "plot": "minority_collapse", key: ref}
    write(sims, "x", f'description = "x"\nrunner = "{fields["runner"]}"\nplot = "{fields["plot"]}"\n'
                     '[[grids]]\nname = "g"\nratio = [1.0]\nsolver = ["nuclear"]\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["reproduce", "x", "--sims-dir", str(sims), "-o", str(out), "--no-progress"])
    assert res.exit_code == 2, res.output
    register = "lpm.reproduce.register_runner" if key == "runner" else "lpm.figures.register_plot"
    assert res.stderr.startswith(f"Error: simulation file x.toml: The '{key}' parameter must be one of "), res.stderr
    assert register in res.stderr and f"Got '{ref}' instead." in res.stderr and len(res.stderr.splitlines()) == 1
    assert not marker.exists() and not out.exists()
    with pytest.raises(LPMInputError, match="simulation files cannot name other code"):
        reproduce("x", out, sims_dir=sims, progress=False)  # the Python API refuses it too
    assert not marker.exists()


def test_the_shipped_paths_of_registered_code_still_read():
    """Files written before names were required keep working: the module path of a shipped runner or
    figure is accepted, since it names registered code."""
    from lpm.figures import get_plot
    from lpm.figures.compare import plot_collapse_vs_ratio
    from lpm.reproduce import _RUNNERS, resolve

    assert get_plot("lpm.figures.compare:plot_collapse_vs_ratio") is plot_collapse_vs_ratio
    assert get_plot("collapse_vs_ratio") is plot_collapse_vs_ratio
    practice = resolve("lpm.compare.practice:run_theory_vs_practice", _RUNNERS, "runner")
    assert practice is resolve("theory-vs-practice", _RUNNERS, "runner")
