#!/usr/bin/env bash
# Set everything up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# two test workers share the cores: one BLAS/OpenMP thread each (more threads per
# worker oversubscribe the cores and run many times slower)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" \
       MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
exec "${LPM_VENV:-.venv}/bin/python" -m pytest -n 2 -q "$@"
