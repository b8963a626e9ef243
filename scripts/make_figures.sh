#!/usr/bin/env bash
# Regenerate every figure shown in the README: runs `lpm reproduce all`
# (resuming whatever is already in results/) and copies into docs/figures/, per figure NAME,
# NAME.png, NAME.json (its figure.json: simulation-file and table hashes, time) and NAME.csv.gz
# (the table it was drawn from). tests/figures/test_committed_figures.py checks the three agree
# with each other, with sims/NAME.toml and with what the plotting code draws from that table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
.venv/bin/lpm reproduce all --out results --jobs "${JOBS:-2}" "$@"
echo "lpm reproduce all: $(( $(date +%s) - start )) s"
mkdir -p docs/figures
for png in results/*/*.png; do
  name=$(basename "$(dirname "$png")")
  if [ "$(basename "$png" .png)" = "$name" ]; then
    cp "$png" docs/figures/
    cp "results/$name/figure.json" "docs/figures/$name.json"
    cp "results/$name/figure_table.csv.gz" "docs/figures/$name.csv.gz"
  fi
done
ls docs/figures
