#!/usr/bin/env bash
# Create .venv and install agentdistill into it (idempotent: reinstalls only when pyproject/constraints change).
#   bash scripts/setup.sh            # package + test tools + shipped models
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.agentdistill-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # torch first, by exact version: on these machines that wheel lies on disk (CPU build); anything else downloads GBs.
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[test,models]"
    echo "$want" > "$stamp"
fi
