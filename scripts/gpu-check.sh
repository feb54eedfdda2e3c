#!/usr/bin/env bash
# make gpu-check: bench.studies.gpu_check with the project's environment (docs/scale-out.md). Offline: no weights are
# downloaded (random weights) and the Hub is never asked.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
exec "${PY:-.venv/bin/python}" -m bench.studies.gpu_check "$@"
