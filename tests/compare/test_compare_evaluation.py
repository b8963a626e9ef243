"""`lpm compare` shows the run's own evaluation: balanced accuracy, many/medium/few-shot accuracy
(with the split used) and ECE, from its summary.json."""
import json

import numpy as np

from lpm.compare import compare_runs, summary_lines
from lpm.compare.report import summarize

from test_compare_lib import COUNTS, write_run  # noqa: I001 (tests/compare is on sys.path)

SUMMARY = {"epochs": 1, "last_test_accuracy": 0.61, "last_test_balanced_accuracy": 0.55,
           "last_test_many_shot_accuracy": 0.9, "last_test_medium_shot_accuracy": 0.5,
           "last_test_few_shot_accuracy": 0.125, "last_test_ece": 0.0625,
           "last_shot_split": "count thirds (classes ranked by training count, split into three near-equal groups)"}


def test_compare_reports_the_runs_evaluation(tmp_path):
    rng = np.random.default_rng(0)
    means, W = rng.standard_normal((6, 8)), rng.standard_normal((6, 8))
    folder = write_run(tmp_path / "run", means, W, COUNTS)
    (folder / "summary.json").write_text(json.dumps(SUMMARY))
    old = write_run(tmp_path / "old", means, W, COUNTS)                 # a run without the evaluation
    report = compare_runs([folder, old], E_W=1.0, E_H=5.0)
    row, old_row = report.distances.iloc[0], report.distances.iloc[1]
    for key, value in SUMMARY.items():
        if key != "epochs":
            assert row[key] == value, key
    assert old_row[["last_test_balanced_accuracy", "last_shot_split", "last_test_ece"]].isna().all()
    lines = summary_lines(report)
    assert ("  test accuracy 0.61, balanced 0.55; many/medium/few-shot 0.9/0.5/0.125 (split by count thirds); "
            "ECE 0.0625 (15 bins)") in lines
    assert sum("balanced" in line for line in lines) == 1             # nothing printed for the old run
    table = summarize(report.distances.iloc[:1])
    assert table["last_test_balanced_accuracy_mean"].iloc[0] == 0.55 and table["last_test_ece_mean"].iloc[0] == 0.0625
