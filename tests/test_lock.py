"""The lock file (constraints.txt) pins every dependency that pyproject.toml names.

scripts/setup.sh installs with ``-c constraints.txt``; a dependency added to
pyproject.toml but missing from the lock would be installed at whatever
version is newest on the day, which is the drift the lock exists to stop.
"""
from __future__ import annotations

import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
INSTALLED_EXTRAS = ("dev", "distributed")  # what scripts/setup.sh installs


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: '{line}' is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version
    return pins


def test_every_dependency_that_setup_installs_is_pinned_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in INSTALLED_EXTRAS:
        wanted += project["optional-dependencies"][extra]
    pins, env = _locked(), default_environment()
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but constraints.txt does not pin it (bash scripts/lock.sh)"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]} outside pyproject.toml's range '{req.specifier}'"


def test_the_set_up_installs_from_the_lock():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in setup
