#!/usr/bin/env bash
# Regenerate every figure shown in the README: runs `lpm reproduce all`
# (resuming whatever is already in results/) and copies the PNGs to docs/figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
.venv/bin/lpm reproduce all --out results --jobs "${JOBS:-2}" "$@"
echo "lpm reproduce all: $(( $(date +%s) - start )) s"
mkdir -p docs/figures
for png in results/*/*.png; do
  name=$(basename "$(dirname "$png")")
  [ "$(basename "$png" .png)" = "$name" ] && cp "$png" docs/figures/
done
ls docs/figures
