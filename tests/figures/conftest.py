"""Shared fixtures of the figure tests."""
from __future__ import annotations

import pytest

from lpm.reproduce import reproduce


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``run(NAME)``: reproduce simulation NAME on its smoke grid, once per test module."""
    done: dict[str, object] = {}

    def get(name):
        if name not in done:
            done[name] = reproduce(name, tmp_path_factory.mktemp(name), smoke=True, progress=False)
        return done[name]
    return get
