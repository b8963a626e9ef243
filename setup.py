"""Packaging beyond pyproject.toml: the repository's top-level ``sims/``
folder ships inside the package as ``lpm/sims`` (the package data of
``lpm.sims``), so that an installed ``lpm reproduce`` finds its simulation
files (see :func:`lpm.sims_dir`). Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["lpm", "lpm.*", "full_model", "full_model.*"]), "lpm.sims"],
    package_dir={"lpm.sims": "sims"},
    package_data={"lpm": ["py.typed"], "lpm.sims": ["*.toml", "README.md"]},
)
