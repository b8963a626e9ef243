#!/usr/bin/env bash
# Run the whole suite against the newest releases that pyproject.toml's ranges admit (no lock),
# in a separate environment (.venv-latest), and list every version that differs from the lock
# (constraints.txt). Run it before trusting a dependency change, and now and then, so that an
# upstream release that breaks the suite is seen here first. CI switch: LPM_LOCK=0 bash .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
LPM_VENV=.venv-latest LPM_LOCK=0 bash scripts/setup.sh
echo "[latest] versions that differ from constraints.txt:" >&2
.venv-latest/bin/python -m pip freeze --exclude-editable --all | grep -viE '^(lpm|pip|setuptools|wheel)==' \
  | sed -E 's/^(torch==[^+]*)\+.*/\1/' | LC_ALL=C sort -f > .venv-latest/freeze.txt
changes=$(grep -v '^#' constraints.txt | diff - .venv-latest/freeze.txt | grep '^[<>]' || true)
echo "${changes:-  (none)}" >&2
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" \
       MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
exec .venv-latest/bin/python -m pytest -n 2 -q "$@"
