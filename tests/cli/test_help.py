"""`--help` reads well at 80 columns; `lpm --help` and `lpm simulate` import only what they use."""
from __future__ import annotations

import re
import subprocess
import sys
from enum import Enum

import pytest
from typer.testing import CliRunner

from lpm.cli import COMMANDS, app, load_command

runner = CliRunner()


def _help(*args: str) -> str:
    res = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    return res.stdout


def _choices(param) -> list[str]:
    """The choice names of an option whose type is an Enum (typer's choices)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [m.value for m in annotation]
    return []


def test_root_help_lists_every_command_without_loading_them():
    text = _help()
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    for name, (_, summary) in COMMANDS.items():
        assert any(line.split()[:1] == [name] and summary in line for line in lines), name
    assert "--version" in text and "<bool>" not in text


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_help_is_readable_at_80_columns(name):
    text = _help(name)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80]
    assert "<bool>" not in text and "…" not in text and "{" not in lines[0]
    assert re.match(rf"Usage: \S+ {name} \[OPTIONS\]( [A-Z_]+(\.\.\.)?| \[[A-Z_]+\])*$", lines[0]), lines[0]
    assert not [line for line in lines if re.search(r"\w-$", line)], "a word broken at a hyphen"
    command = load_command(name)
    for param in command.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert re.search(rf"(^|[\s,/]){re.escape(opt)}(?=[\s,=]|$)", text, re.M), f"{opt} cut or missing"
        for choice in _choices(param):  # every choice whole, on one line
            assert re.search(rf"([<|]|^ +){re.escape(choice)}([|>]|$)", text, re.M), f"{choice} of {param.name}"
        if getattr(param, "is_flag", False):
            flag_line = next(line for line in lines if param.opts[0] in line)
            assert "<" not in flag_line.split(param.opts[-1])[-1].split("  ")[0], flag_line


def test_one_help_flag_for_every_command():
    assert runner.invoke(app, ["simulate", "-h"], env={"COLUMNS": "80"}).stdout == _help("simulate")


def _imported(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "lpm", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_root_help_imports_neither_numpy_nor_any_command():
    modules = _imported("--help")
    assert "typer" in modules  # the measurement works
    loaded = {m for m in modules if m.split(".")[0] in {"numpy", "scipy", "torch", "pandas", "cvxpy", "matplotlib"}
              or m.startswith("lpm.cli.") or m.startswith("lpm.core.solvers")}
    assert not loaded, sorted(loaded)


def test_simulate_imports_no_heavy_optional_dependency():
    modules = _imported("simulate", "--K", "4", "--ratio", "10")
    assert "lpm.core.solvers" in modules and "numpy" in modules
    heavy = {m for m in modules if m.split(".")[0] in {"torch", "cvxpy", "pandas", "matplotlib"}}
    assert not heavy, sorted(heavy)[:10]


def test_sweep_with_certifying_solvers_imports_neither_torch_nor_cvxpy(tmp_path):
    modules = _imported("sweep", "-o", str(tmp_path / "s"), "--ratios", "1,100", "--classifier",
                        "learnable,fixed-etf", "--solver", "auto", "--no-progress")
    assert "lpm.sweep" in modules
    heavy = {m for m in modules if m.split(".")[0] in {"torch", "cvxpy", "matplotlib"}}
    assert not heavy, sorted(heavy)[:10]
