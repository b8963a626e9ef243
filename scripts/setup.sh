#!/usr/bin/env bash
# Create (or update) the project's virtual environment (.venv, or $LPM_VENV).
# Prefers the small CPU build of PyTorch when no NVIDIA GPU is present.
# Installs the exact versions of constraints.txt (the lock file: what the suite last passed with);
# LPM_LOCK=0 installs the newest versions that pyproject.toml's ranges admit instead
# (scripts/test-latest.sh runs the suite that way, in its own environment).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${LPM_VENV:-.venv}
LOCK=${LPM_LOCK:-1}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python
stamp=$VENV/.lpm-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ] \
   && [ "$(cat "$stamp")" = "lock=$LOCK" ]; then
  exit 0
fi
if [ "$LOCK" = 1 ]; then
  pins=(-c constraints.txt)
  upgrade=()
else
  pins=()
  upgrade=(--upgrade --upgrade-strategy eager)
fi
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[setup] NVIDIA GPU found: installing the default (CUDA) PyTorch build" >&2
    "$VPY" -m pip install -q "torch>=2.1,<3"
  else
    echo "[setup] no GPU found: installing the CPU build of PyTorch (torch 2.13.0+cpu)" >&2
    # The wheel alone from PyTorch's CPU index (or from a local wheel folder, pip's find-links, where
    # that index cannot be reached), then its dependencies from the usual index; PyPI's own 2.13.0
    # would be the multi-GB CUDA build.
    "$VPY" -m pip install -q --no-deps "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
        --timeout 10 --retries 0 2>/dev/null || true
    "$VPY" -m pip install -q "torch==2.13.0" 2>/dev/null || "$VPY" -m pip install -q "torch>=2.1,<3"
  fi
fi
if [ "$LOCK" != 1 ]; then
  # torch stays the build installed above: its newest release is a CUDA build of several GB
  keep=$("$VPY" -c 'import torch; print(torch.__version__.split("+")[0])')
  echo "torch==$keep" > "$VENV/keep-torch.txt"
  pins=(-c "$VENV/keep-torch.txt")
fi
if [ "$LOCK" = 1 ]; then
  echo "[setup] installing lpm and the locked versions of its dependencies (constraints.txt) into $VENV" >&2
else
  echo "[setup] installing lpm and the newest versions of its dependencies (torch $keep kept) into $VENV (no lock)" >&2
fi
# the cluster tests need the distributed extra
if ! "$VPY" -m pip install -q ${pins[@]+"${pins[@]}"} ${upgrade[@]+"${upgrade[@]}"} -e ".[dev,distributed]"; then
  if [ "$LOCK" = 1 ]; then
    echo "[setup] the locked versions in constraints.txt could not be installed for $("$VPY" -V)." >&2
    echo "[setup] LPM_LOCK=0 bash scripts/setup.sh installs the newest versions pyproject.toml admits." >&2
  fi
  exit 1
fi
echo "lock=$LOCK" > "$stamp"
