"""Selecting and summarising rows of a results table for a figure (no drawing here)."""
from __future__ import annotations

from typing import Sequence

import pandas as pd


def aggregate(table: pd.DataFrame, x: str, y: str, by: Sequence[str] = ()) -> pd.DataFrame:
    """mean, std, median, min, max and n of ``y`` over seeds, per ``by`` group and ``x``."""
    keys = [*by, x]
    sub = table.dropna(subset=[x]).copy()
    sub[y] = pd.to_numeric(sub[y], errors="coerce")
    out = sub.groupby(keys, dropna=False)[y].agg(["mean", "std", "median", "min", "max", "count"]).reset_index()
    return out.sort_values(keys)


def only(table: pd.DataFrame, **equals) -> pd.DataFrame:
    """Rows whose columns equal the given values (absent columns → no rows)."""
    mask = pd.Series(True, index=table.index)
    for col, value in equals.items():
        if col not in table:
            return table.iloc[0:0]
        mask &= table[col] == value
    return table[mask]


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["outcome"] == "ok"] if "outcome" in table else table
