#!/usr/bin/env bash
# make gpu-check: bench.studies.gpu_check with the project's environment (docs/scale-out.md). Offline: no weights are
# downloaded (random weights) and the Hub is never asked.
# MODEL_DIR=<folder>: the config and tokenizer files a slim wheelhouse carries instead of the embedded model's
# package (make gpu-check OFFLINE=<wheelhouse> sets it), unless the arguments name a model.name_or_path.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
if [[ -n ${MODEL_DIR:-} && " $* " != *" model.name_or_path="* ]]; then
    set -- "model.name_or_path=$MODEL_DIR" "$@"
fi
exec "${PY:-.venv/bin/python}" -m bench.studies.gpu_check "$@"
