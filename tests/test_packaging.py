"""`pip install .` (a wheel, not editable) works outside the checkout.

The wheel is built from a copy of the sources, installed without its
dependencies into a fresh virtual environment that sees the dependencies of
the interpreter running the tests (offline and quick), and run from another
folder with a clean environment.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import lpm

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("lpm", "full_model", "sims", "pyproject.toml", "setup.py", "README.md")


def _setuptools_version() -> tuple[int, ...]:
    try:
        from importlib.metadata import version

        return tuple(int(p) for p in version("setuptools").split(".")[:2])
    except Exception:  # not installed, or an odd version string
        return (0,)


def _run(args, cwd, env=None, timeout=600):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, clean environment, a working folder outside the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                          if (ROOT / name).is_dir() else {}))
    # build with the installed setuptools when it is new enough (offline, fast), else as pip does by default
    isolation = ["--no-build-isolation"] if _setuptools_version() >= (77,) else []
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", *isolation, "-q", "-w", str(tmp / "dist")],
         cwd=tmp)
    [wheel] = (tmp / "dist").glob("lpm-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)
                .strip())
    # the dependencies, as plain paths: .pth files there (an editable lpm) are not run
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "lpm_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LPM_SIMS_DIR", "VIRTUAL_ENV")}
    env["MPLBACKEND"] = "Agg"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "--ignore-installed", "-q", str(wheel)], cwd=tmp, env=env)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return bin_dir, env, elsewhere, site


@pytest.mark.slow
def test_installed_wheel_carries_the_simulations_and_runs_one(installed):
    bin_dir, env, elsewhere, site = installed
    lpm_exe = str(bin_dir / "lpm")
    where = _run([str(bin_dir / "python"), "-c", "import lpm; print(lpm.__file__); print(lpm.sims_dir())"],
                 cwd=elsewhere, env=env).split()
    assert Path(where[0]).is_relative_to(site), "the test must run the installed copy, not the checkout"
    assert Path(where[1]) == site / "lpm" / "sims"

    assert _run([lpm_exe, "--version"], cwd=elsewhere, env=env).strip() == f"lpm {lpm.__version__}"

    listed = [line.split()[0] for line in _run([lpm_exe, "reproduce", "--list"], cwd=elsewhere, env=env)
              .splitlines() if line and not line.startswith(" ")]
    assert listed == sorted(p.stem for p in (ROOT / "sims").glob("*.toml"))

    _run([lpm_exe, "reproduce", "phase-diagram", "--smoke", "--no-progress", "-o", "pd"], cwd=elsewhere, env=env)
    out = elsewhere / "pd"
    assert (out / "phase-diagram.png").stat().st_size > 0 and (out / "phase-diagram.pdf").stat().st_size > 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert Path(sweep["config"]["file"]) == site / "lpm" / "sims" / "phase-diagram.toml"
    assert not (elsewhere / "results").exists()  # -o was honoured


def test_version_is_defined_once():
    """pyproject.toml reads the version from lpm.__version__; `lpm --version` prints it."""
    from typer.testing import CliRunner

    from lpm.cli import app

    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'version = {attr = "lpm.__version__"}' in text
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"lpm {lpm.__version__}\n"


def test_checkout_uses_its_own_sims_folder():
    assert lpm.sims_dir() == ROOT / "sims"
