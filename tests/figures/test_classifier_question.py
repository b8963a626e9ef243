"""`lpm reproduce classifier-question` on its smoke grid: the design (arms, stages, pairing by
seed), the statistics of summary.csv recomputed from runs.csv with scipy, the rank correlation,
resuming, and the findings page whose claims are re-derived from the tables."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lpm.compare.classifier_question import METRICS, design, run_settings
from lpm.compare.findings import check_claims, claims_of, findings_markdown
from lpm.core.errors import LPMInputError
from lpm.reproduce import get_simulation, reproduce

ARMS = ["learnable-ce", "learnable-la", "learnable-ldam-drw", "learnable-ce-cbs", "etf-dr-paper", "etf-dr-released",
        "etf-ce", "learnable-ce-crt"]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return reproduce("classifier-question", tmp_path_factory.mktemp("cq"), smoke=True, progress=False, jobs=1)


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())["config"]


def test_design_stages_and_pairing(smoke):
    runs = smoke.tables["runs"]
    assert sorted(runs["arm"].unique()) == sorted(ARMS) and len(runs) == len(ARMS) * 2
    assert [p.name for p in smoke.figures] == ["classifier-question.png", "classifier-question.pdf"]
    assert all(p.stat().st_size > 5000 for p in smoke.figures)
    root = smoke.out_dir / "runs"
    for seed in (0, 1):
        name = lambda arm: f"{arm}_synthetic-lt_terminal_R10_seed{seed}"  # noqa: E731
        crt = _config(root / name("learnable-ce-crt"))
        # the cRT arm is a second stage on the CE run of the same seed, with Kang et al.'s defaults
        assert crt["stage"] == "crt" and Path(crt["parent"]) == (root / name("learnable-ce")).resolve()
        assert crt["sampler"] == "class-balanced" and crt["epochs"] == 2 and crt["mixup_alpha"] == 0.0
        ldam = _config(root / name("learnable-ldam-drw"))
        assert ldam["loss"] == "ldam" and ldam["class_weights"] == "class-balanced" and ldam["drw_epoch"] == 6
        assert _config(root / name("etf-dr-released"))["balance_batch"] is True
        assert _config(root / name("learnable-ce-cbs"))["sampler"] == "class-balanced"
        assert _config(root / name("learnable-la"))["tau"] == 1.0
        # one seed, one data set: the same training counts in every arm
        counts = {arm: np.load(root / name(arm) / "final_geometry.npz")["train_counts"] for arm in ARMS}
        for arm in ARMS:
            np.testing.assert_array_equal(counts[arm], counts["learnable-ce"])
    paper = run_settings(get_simulation("classifier-question"), smoke.out_dir)
    by = {(r["arm"], r["recipe"]): r["settings"] for r in paper if r["seed"] == 0 and r["dataset"] == "mnist1d-lt"
          and r["ratio"] == 100}
    assert by["learnable-ce", "paper"]["mixup_alpha"] == 1.0 and by["learnable-ce", "terminal"]["mixup_alpha"] == 0.0
    assert by["learnable-ce", "paper"]["milestone_fractions"] == [0.8, 0.9]
    assert len(paper) == 8 * 2 * 2 * 2 * 5  # arms x data sets x ratios x recipes x seeds (with the cRT stages)


def test_summary_recomputed_from_runs(smoke):
    runs, summary = smoke.tables["runs"], smoke.tables["summary"].set_index("arm")
    base = runs[runs["arm"] == "learnable-ce"].set_index("seed")
    assert summary.loc["learnable-ce", ["balanced_diff", "balanced_p"]].isna().all()
    p_raw, p_adj = {}, {}
    for metric in METRICS:
        for arm in ARMS[1:]:
            values = runs[runs["arm"] == arm].set_index("seed")[metric].loc[base.index]
            diff = values - base[metric]
            row = summary.loc[arm]
            assert row[metric] == pytest.approx(values.mean())
            assert row[f"{metric}_diff"] == pytest.approx(diff.mean())
            half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
            assert row[f"{metric}_diff_high"] - row[f"{metric}_diff"] == pytest.approx(half, nan_ok=True)
            if np.ptp(diff) > 0:
                assert row[f"{metric}_p"] == pytest.approx(stats.ttest_rel(values, base[metric]).pvalue)
            p_raw[metric, arm], p_adj[metric, arm] = row[f"{metric}_p"], row[f"{metric}_p_adj"]
        # Holm over the family of this metric: sorted raw p times (m - i), running max, capped at 1
        family = [(p_raw[metric, a], p_adj[metric, a]) for a in ARMS[1:] if np.isfinite(p_raw[metric, a])]
        family.sort()
        expected = np.minimum(1, np.maximum.accumulate([(len(family) - i) * p for i, (p, _) in enumerate(family)]))
        np.testing.assert_allclose([q for _, q in family], expected)


def test_correlation_is_spearman_over_arm_means(smoke):
    summary, corr = smoke.tables["summary"], smoke.tables["correlation"].iloc[0]
    t = summary[["lpm_classifier_minority_cos", "few"]].dropna()
    assert corr["arms"] == len(t)
    if corr["distinct_predictions"] >= 2 and len(t) >= 3:
        rho = stats.spearmanr(t["lpm_classifier_minority_cos"], t["few"]).statistic
        assert corr["spearman_rho"] == pytest.approx(rho)
    # a fixed-ETF arm's LPM optimum is the simplex ETF: minority cosine -1/(K-1)
    etf = smoke.tables["runs"].query("head == 'fixed-etf'")["lpm_classifier_minority_cos"].dropna()
    np.testing.assert_allclose(etf, -1 / 9, atol=1e-6)


def test_rerun_reuses_runs_and_comparisons(smoke, monkeypatch):
    import lpm.compare.core as core

    monkeypatch.setattr(core, "compare_run", lambda *a, **k: pytest.fail("a finished run was compared again"))
    again = reproduce("classifier-question", smoke.out_dir, smoke=True, progress=False, jobs=1)
    record = json.loads((smoke.out_dir / "classifier-question.json").read_text())
    assert {r["action"] for r in record["runs"]} == {"reused"}
    pd.testing.assert_frame_equal(again.tables["summary"], smoke.tables["summary"])


def test_findings_claims_are_derived_and_checked(smoke):
    summary, corr = smoke.tables["summary"], smoke.tables["correlation"]
    page = findings_markdown(summary, corr, source="summary.csv", scope="smoke grid")
    claims = claims_of(page)
    assert {c["type"] for c in claims} == {"tally", "difference", "best", "correlation", "fitted"}
    assert check_claims(page, summary, corr) == []
    # reverse one difference: exactly that claim (and the tallies counting it, if significant) fail
    claim = next(c for c in claims if c["type"] == "difference")
    flipped = summary.copy()
    at = (flipped["arm"] == claim["arm"]) & (flipped["recipe"] == claim["recipe"])
    flipped.loc[at, f"{claim['metric']}_diff"] *= -1
    wrong = [c for c, _ in check_claims(page, flipped, corr)]
    assert claim in wrong and all(c["type"] in ("difference", "tally") for c in wrong)
    # make it significant: the claim's significance no longer holds
    flipped = summary.copy()
    flipped.loc[at, f"{claim['metric']}_p_adj"] = 0.0 if not claim["significant"] else 0.5
    assert claim in [c for c, _ in check_claims(page, flipped, corr)]
    # the best arm: another arm raised above it
    best = next(c for c in claims if c["type"] == "best")
    raised = summary.copy()
    raised.loc[raised["arm"] != best["arm"], "few"] = raised["few"].max() + 1
    assert best in [c for c, _ in check_claims(page, raised, corr)]


def test_docs_page_claims_hold_on_its_table():
    """docs/classifier-question.md states only what docs/classifier-question/summary.csv gives."""
    page = DOCS / "classifier-question.md"
    if not page.exists():
        pytest.skip("no findings page yet")
    tables = DOCS / "classifier-question"
    summary, corr = pd.read_csv(tables / "summary.csv"), pd.read_csv(tables / "correlation.csv")
    text = page.read_text()
    assert claims_of(text) and check_claims(text, summary, corr) == []


def test_design_errors_name_the_file(tmp_path):
    sim = get_simulation("classifier-question")
    bad = sim.__class__(**{**sim.__dict__, "options": {**sim.options, "design": {**sim.options["design"],
                                                                                  "baseline": "nope"}}})
    message = r"'baseline' parameter of simulation file classifier-question.toml must be the name of an arm"
    with pytest.raises(LPMInputError, match=message):
        design(bad)
    grids = [dict(g, parent="nope") if g["name"] == "learnable-ce-crt" else g for g in sim.grids]
    with pytest.raises(LPMInputError, match="the name of another arm"):
        run_settings(sim.__class__(**{**sim.__dict__, "grids": grids}), tmp_path)


def test_findings_command_writes_a_consistent_page(smoke, tmp_path, capsys):
    from lpm.compare.findings import _main

    page = tmp_path / "page.md"
    assert _main([str(smoke.out_dir), str(page), "smoke grid"]) == 0
    text = page.read_text()
    assert "smoke grid" in text and "classifier-question.png" in text
    assert check_claims(text, smoke.tables["summary"], smoke.tables["correlation"]) == []
    for argv, code, message in (([], 2, "Usage: python -m lpm.compare.findings"),
                                ([str(tmp_path / "none"), str(page), "x"], 2, "Error: cannot write the findings page")):
        assert _main(argv) == code
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
