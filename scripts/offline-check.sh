#!/usr/bin/env bash
# make offline-check: an offline GPU node, simulated on this machine (docs/scale-out.md, "Offline"; its time in
# docs/tests.md). Two nodes, each a fresh virtual environment of this Python that plays the node's own Python,
# a virtual environment itself as on the lent node (/opt/torch/.venv):
#   1. a node with torch alone: the full wheelhouse installs with --no-index, and gpu-check validates there;
#   2. the same node with what the lent node also has (transformers and accelerate at its versions, peft,
#      pyarrow, pandas): the slim wheelhouse, made against that node's `pip freeze`, installs with --no-index,
#      and gpu-check validates there.
# With no GPU, gpu-check prints its no-GPU line and exits 0; anything else fails the check. Each step's time is
# printed. The node's own packages come from the index (pip as configured here): they are the node's image, not
# what a user carries. WORK=<folder> keeps everything there (default: a temporary folder, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PY:-.venv/bin/python}  # the project's environment: builds the wheelhouses (and the slim set's tokenizer)
if [[ -n ${WORK:-} ]]; then
    work=$(mkdir -p "$WORK" && cd "$WORK" && pwd)
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
# the lent node's versions (scripts/lent-node-packages.txt); its transformers needs huggingface-hub<2
lent=(transformers==5.17.0 accelerate==1.15.0 huggingface-hub==1.33.0)

step() { echo "offline-check: $* ($((SECONDS - start)) s)"; }
expect_no_gpu() {  # $1: the make target's output; gpu-check's own line, and no failure
    grep -q '^gpu-check: no CUDA GPU on this machine; nothing was run' "$1" ||
        { echo "offline-check: gpu-check did not end with its no-GPU line (output above)" >&2; exit 1; }
}
start=$SECONDS

"$py" scripts/wheelhouse.py --out "$work/wheelhouse" > "$work/wheelhouse.log" 2>&1 ||
    { tail -20 "$work/wheelhouse.log"; exit 1; }
step "full wheelhouse: $(tail -1 "$work/wheelhouse.log")"

python3 -m venv "$work/node"
node=$work/node/bin/python
# torch as setup.sh takes it: the lock's version, alone (the CPU build where the index offers one)
"$node" -m pip install --quiet --disable-pip-version-check -c constraints.txt torch
step "node 1: torch $("$node" -c 'import torch; print(torch.__version__)') alone"

make --no-print-directory setup OFFLINE="$work/wheelhouse" NODE_PYTHON="$node" NODE_VENV="$work/env-full"
step "node 1: full set installed from the wheelhouse"
make --no-print-directory gpu-check OFFLINE="$work/wheelhouse" NODE_PYTHON="$node" NODE_VENV="$work/env-full" \
    2>&1 | tee "$work/gpu-check-full.log"
expect_no_gpu "$work/gpu-check-full.log"
step "node 1: gpu-check validated"

grep -v -i -e '^transformers==' -e '^accelerate==' -e '^huggingface.hub==' constraints.txt > "$work/node-constraints.txt"
"$node" -m pip install --quiet --disable-pip-version-check -c "$work/node-constraints.txt" "${lent[@]}" peft pyarrow pandas
"$node" -m pip freeze > "$work/have.txt"
step "node 2: $(wc -l < "$work/have.txt") packages (torch, transformers, accelerate, peft, pyarrow, pandas and theirs)"

"$py" scripts/wheelhouse.py --slim --have "$work/have.txt" --out "$work/wheelhouse-slim" > "$work/slim.log" 2>&1 ||
    { tail -20 "$work/slim.log"; exit 1; }
grep '^wheelhouse: the node' "$work/slim.log" || true
step "slim wheelhouse: $(tail -1 "$work/slim.log")"

make --no-print-directory gpu-check OFFLINE="$work/wheelhouse-slim" NODE_PYTHON="$node" NODE_VENV="$work/env-slim" \
    2>&1 | tee "$work/gpu-check-slim.log"
expect_no_gpu "$work/gpu-check-slim.log"
step "node 2: slim set installed from the wheelhouse and gpu-check validated"
echo "offline-check: passed in $((SECONDS - start)) s (work folder $work)"
