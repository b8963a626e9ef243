"""``lpm plot`` and :func:`lpm.figures.table_plot.plot_table`: any sweep table as a figure."""
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lpm.cli import app
from lpm.core.errors import LPMInputError
from lpm.figures.table_plot import plot_table

runner = CliRunner()


def _table():
    """Two solvers × three ratios × three seeds; y = ratio·(1 + seed/10) for nuclear, 2·ratio for convex."""
    rows = []
    for solver in ("nuclear", "convex"):
        for ratio in (1.0, 10.0, 100.0):
            for seed in (0, 1, 2):
                y = ratio * (1 + seed / 10) if solver == "nuclear" else 2 * ratio
                rows.append({"solver": solver, "ratio": ratio, "seed": seed, "loss": "ce", "K": 10, "value": y,
                             "signed": y - 50, "outcome": "ok"})
    return pd.DataFrame(rows)


def test_one_line_per_hue_through_the_median_with_a_lowest_to_highest_band():
    fig = plot_table(_table(), "ratio", "value", hue="solver", logx=True, logy=True)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"solver = convex", "solver = nuclear"}
    np.testing.assert_allclose(lines["solver = nuclear"].get_ydata(), [1.1, 11.0, 110.0])  # median of 3 seeds
    np.testing.assert_allclose(lines["solver = convex"].get_ydata(), [2.0, 20.0, 200.0])
    from matplotlib.colors import to_rgb
    nuclear = to_rgb(lines["solver = nuclear"].get_color())
    [band] = [c for c in ax.collections if tuple(c.get_facecolor()[0][:3]) == pytest.approx(nuclear)]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(1.0) and ys.max() == pytest.approx(120.0)  # seeds 0 and 2 at R = 1 and 100
    assert ax.get_xscale() == ax.get_yscale() == "log"


def test_facets_are_panels_and_where_keeps_rows():
    fig = plot_table(_table(), "ratio", "value", facet="solver")
    assert [a.get_title(loc="left") for a in fig.axes] == ["solver = convex", "solver = nuclear"]
    fig = plot_table(_table(), "ratio", "value", where={"solver": "convex"})
    [line] = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), [2.0, 20.0, 200.0])


def test_settings_are_never_pooled_silently():
    with pytest.raises(LPMInputError) as err:
        plot_table(_table(), "ratio", "value")
    assert str(err.value) == ("The 'hue' parameter must be a column that separates the settings the rows mix "
                              "(solver takes convex, nuclear): give them as --hue or --facet, or keep one with "
                              "--where solver=VALUE. Got None instead.")


def test_unknown_column_and_unknown_value_are_named():
    with pytest.raises(LPMInputError, match=r"^The 'y' parameter must be a column of the table: solver, ratio, seed, "
                                            r"loss, K, value, signed, outcome\. Got 'nope' instead\.$"):
        plot_table(_table(), "ratio", "nope", hue="solver")
    with pytest.raises(LPMInputError, match=r"^The 'where' parameter must be a value that solver takes in the table: "
                                            r"convex, nuclear\. Got 'solver=adam' instead\.$"):
        plot_table(_table(), "ratio", "value", where={"solver": "adam"})


def test_a_log_axis_leaves_out_non_positive_values_and_says_so():
    fig = plot_table(_table(), "ratio", "signed", hue="solver", logy=True)
    ydata = np.concatenate([line.get_ydata() for line in fig.axes[0].get_lines()])
    assert (ydata > 0).all() and len(ydata) == 2  # only R = 100 is above 0 for both solvers
    note = " ".join(fig.legends[0].get_title().get_text().split())
    assert "12 rows with values <= 0 left out for the log axis." in note


def test_cli_draws_a_sweep_folder_as_png_and_pdf(tmp_path):
    sweep = tmp_path / "sweep"
    res = runner.invoke(app, ["sweep", "--ratios", "1,10,100", "--solver", "nuclear", "-o", str(sweep),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["plot", str(sweep), "--x", "ratio", "--y", "classifier_minority_cos", "--hue", "solver",
                              "--logx"])
    assert res.exit_code == 0, res.output
    png, pdf = sweep / "plot_classifier_minority_cos_vs_ratio.png", sweep / "plot_classifier_minority_cos_vs_ratio.pdf"
    assert res.stdout.strip() == f"wrote {png}, {pdf}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    res = runner.invoke(app, ["plot", str(sweep), "--x", "ratio", "--y", "minority_cos"])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("Error: The 'y' parameter must be a column of results.csv: cell_id, ")
    res = runner.invoke(app, ["plot", str(tmp_path / "none"), "--x", "ratio", "--y", "objective"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"Error: The 'results' parameter must be a sweep folder holding results.csv (lpm "
                                  f"sweep -o FOLDER) or a CSV file. Got '{tmp_path / 'none'}' instead.")


def test_seed_band_stays_inside_the_seeds_on_a_log_axis():
    """One straying seed (180 where the others read 1e-3) widens the band to that seed only; the band never
    reaches 0 or below, where a mean ± std band on a log axis would become a full-height bar."""
    from matplotlib.figure import Figure

    from lpm.figures.style import line_with_band
    from lpm.figures.tables import aggregate
    t = pd.DataFrame({"it": [0, 0, 0, 1, 1, 1], "angle": [1e-3, 2e-3, 180.0, 1e-4, 1e-4, 1e-4]})
    ax = Figure().subplots()
    ax.set_yscale("log")
    line_with_band(ax, aggregate(t, "it", "angle"), "it")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [2e-3, 1e-4])
    ys = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(1e-4) and ys.max() == pytest.approx(180.0)


def test_coinciding_groups_curves_within_the_tolerance():
    from lpm.figures.style import coinciding
    curves = {"a": np.array([1.0, 2.0]), "b": np.array([1.0, 2.0 + 1e-9]), "c": np.array([1.0, 2.5]),
              "d": np.array([1.0])}
    assert coinciding(curves) == [["a", "b"]]
    assert coinciding(curves, tol=1.0) == [["a", "b", "c"]]
