#!/usr/bin/env bash
# Rewrite constraints.txt, the lock file, from what .venv holds now: the exact versions the suite
# was last run with. Run it after `bash scripts/test.sh` (or scripts/test-latest.sh) passed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
{
  echo "# The exact versions the test suite last passed with (pip constraints; scripts/setup.sh installs"
  echo "# from it). pyproject.toml keeps ranges for users. Regenerate with: bash scripts/lock.sh"
  echo "# Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'), written $(date -u +%Y-%m-%d)."
  # torch's local tag (+cpu, +cu128) names a build, not a version: the set-up picks the build
  "$VENV/bin/python" -m pip freeze --exclude-editable --all | grep -viE '^(lpm|pip|setuptools|wheel)==' \
    | sed -E 's/^(torch==[^+]*)\+.*/\1/' | LC_ALL=C sort -f
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) pins)"
