#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv.
# Prefers the small CPU build of PyTorch when no NVIDIA GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.lpm-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
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
echo "[setup] installing lpm and its dependencies into .venv" >&2
"$VPY" -m pip install -q -e ".[dev,distributed]"  # the cluster tests need the distributed extra
touch "$stamp"
