#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded defaults (CPU, shipped models and data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/agentdistill distill configs/quickstart.toml "$@"
