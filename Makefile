# Every target sets up its environment first (idempotent: free when nothing changed). LOCK=current: TRL 1.16
# and the newest of the rest (constraints-current.txt, .venv-current); the default lock has TRL 1.12 and PPO.
LOCK ?= default
VENV := $(if $(filter current,$(LOCK)),.venv-current,.venv)
PY := $(VENV)/bin/python
# Every registered method (conf/method/*.yaml); or e.g. make bench METHODS=grpo,dpo
METHODS := glob(*)
ARGS ?=
# A new folder per invocation: a rerun never overwrites an earlier sweep's results.
SWEEP := results/sweeps/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: help list setup bench smoke test test-fast lint report params provenance docs
.DEFAULT_GOAL := help

help:  ## every target with what it does (this list)
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z_-]+):.*## /\1\t/' | awk -F'\t' '{printf "  %-15s %s\n", $$1, $$2}'

list: setup  ## the methods (trainer, adapter, on this TRL?), tasks, models, experiments and entry points
	@$(PY) -m bench --list

# A node's environment (.venv-node): on top of NODE_PYTHON's packages and its torch, which it never installs.
# OFFLINE=<wheelhouse>: from `make wheelhouse`'s folder, with no network (docs/scale-out.md, "Offline").
OFFLINE ?=
# The project's own .venv where `make setup` made one (its torch is then the machine's), else the node's python3.
NODE_PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
NODE_VENV ?= .venv-node

setup:  ## the environment of the lock (LOCK=current: TRL 1.16): idempotent, free when nothing changed; OFFLINE=<wheelhouse>: a node's, offline
	@LOCK=$(LOCK) OFFLINE=$(OFFLINE) NODE_PYTHON=$(NODE_PYTHON) NODE_VENV=$(NODE_VENV) bash scripts/setup.sh

.PHONY: node-setup
node-setup:  ## gpu-check's environment: .venv-node over the node's Python (NODE_PYTHON) and its torch; OFFLINE=<wheelhouse>: no network
	@LOCK=$(LOCK) OFFLINE=$(OFFLINE) NODE_PYTHON=$(NODE_PYTHON) NODE_VENV=$(NODE_VENV) bash scripts/setup.sh --node

# SLIM=1: only what a node like the lent one lacks for gpu-check (HAVE=<pip freeze of another node>;
# NO_BNB=1 leaves bitsandbytes out); PYTHON_VERSION=3.12: wheels for that CPython on manylinux x86_64
# (BUILD_PYTHON=python3.12 builds the few published only as source that hold compiled code: pycosat).
PYTHON_VERSION ?=
BUILD_PYTHON ?=
SLIM ?=
HAVE ?=
NO_BNB ?=
WHEELHOUSE ?= wheelhouse$(if $(SLIM),-slim)$(if $(PYTHON_VERSION),-cp$(subst .,,$(PYTHON_VERSION)))$(if $(NO_BNB),-no-bnb)
.PHONY: wheelhouse
wheelhouse: setup  ## on a machine with PyPI: the lock but torch as wheels, for `make setup OFFLINE=` (wheelhouse*/, sizes in MANIFEST.tsv)
	$(PY) scripts/wheelhouse.py --lock $(if $(filter current,$(LOCK)),constraints-current.txt,constraints.txt) \
		--out $(WHEELHOUSE) $(if $(PYTHON_VERSION),--python-version $(PYTHON_VERSION)) $(if $(SLIM),--slim) \
		$(if $(HAVE),--have $(HAVE)) $(if $(NO_BNB),--no-bitsandbytes) $(if $(BUILD_PYTHON),--build-python $(BUILD_PYTHON))

.PHONY: offline-check
offline-check: setup  ## an offline node simulated here: wheelhouses, installs with --no-index, gpu-check there (~3.5 min on 2 cores; docs/tests.md)
	bash scripts/offline-check.sh

# The sweep writes its report (summary.md/csv/json, plots, W&B table) and prints the table at its end.
bench: setup  ## the main job: every method on the embedded default model; then the table
	$(PY) -m bench -m 'method=$(METHODS)' hydra.sweep.dir=$(SWEEP) $(ARGS)

smoke: setup  ## the same sweep at the smallest real settings (minutes on a CPU)
	$(PY) -m bench -m 'method=$(METHODS)' debug=smoke hydra.sweep.dir=$(SWEEP)-smoke $(ARGS)

# Two pytest-xdist workers, a test file each at a time (a file's shared sweep runs once, on one worker);
# tests/conftest.py gives each worker half of the cores. WORKERS=0: one process, as plain pytest.
WORKERS ?= 2
XDIST = $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile)

test: setup  ## the whole suite, real trainers included (docs/tests.md: the measured time)
	$(PY) -m pytest $(XDIST) $(ARGS)

test-fast: setup  ## everything that trains no model (about a minute)
	$(PY) -m pytest -m "not slow" $(XDIST) $(ARGS)

lint: setup  ## ruff (rules, then the formatter at 120 columns), the types (mypy: ~25 s cold, ~1 s cached), the import layers (import-linter) and the docs site (mkdocs build --strict)
	$(PY) -m ruff check bench methods tests scripts
	$(PY) -m ruff format --check bench methods tests scripts
	$(PY) -m mypy  # bench/ and methods/, as [tool.mypy] in pyproject.toml says; its cache: .mypy_cache/
	$(VENV)/bin/lint-imports  # the layers declared in pyproject.toml: imports run one way, no circles
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir .site  # dead links and missing pages fail

params: setup  ## the LoRA parameter audit, e.g. make params ARGS="model=qwen3-0.6b peft.r=32"
	$(PY) -m bench.studies.params $(ARGS)

.PHONY: fallbacks
fallbacks: setup  ## the offline data's gold-fallback share against K and temperature (a table; ~15 min)
	$(PY) -m bench.studies.fallbacks experiment=headline --samples 16 --temperatures 0.7,1.0 $(ARGS)

.PHONY: overhead
overhead: setup  ## harness vs plain TRL, same settings: step and run time ratios (a table; ~10 min on 2 cores)
	$(PY) -m bench.studies.overhead --fast $(ARGS)

.PHONY: tune
# The picks go to conf/experiment/tuned.yaml (experiment=tuned); rerun the same command to resume.
tune: setup  ## each method at its own learning rate and knob, picked on validation, then 3 test seeds (~3 h on 2 cores)
	$(PY) -m bench.studies.tune tune=headline --out results/reference/tuning-headline-smollm2-arithmetic-cpu --write $(ARGS)

.PHONY: tune-full
# The picks are copied by hand into conf/experiment/claims/lora_memory.yaml (tuned.<method>+full).
tune-full: setup  ## full fine-tuning's learning rate for GRPO, DPO and SFT, picked on validation (~1 h on 2 cores)
	$(PY) -m bench.studies.tune tune=full peft=none --out results/reference/tuning-full-smollm2-arithmetic-cpu --no-final $(ARGS)

.PHONY: tune-sft
# The pick is copied by hand into conf/experiment/claims/lora_memory.yaml (tuned.sft+lora).
tune-sft: setup  ## LoRA SFT's learning rate, picked on validation (~20 min on 2 cores)
	$(PY) -m bench.studies.tune tune=sft --out results/reference/tuning-sft-smollm2-arithmetic-cpu --no-final $(ARGS)

.PHONY: decode
decode: setup  ## one decode step along each generation path beside the machine's bound (a table; ~5 min)
	$(PY) -m bench.studies.decode $(ARGS)

.PHONY: claims
CLAIMS_DIR ?= results/claims
# Each sweep resumes where it stopped: rerun `make claims` to go on (every finished run is skipped).
claims: setup  ## every claim's sweep, then each claim's verdict (a table and a plot; ~5 h on 2 cores)
	@for sweep in $$($(PY) -m bench.studies.claims --sweeps); do \
	  $(PY) -m bench -m experiment=claims/$$sweep hydra.sweep.dir=$(CLAIMS_DIR)/$$sweep $(ARGS) || echo "claims: sweep $$sweep had failed runs (see its summary.md)"; \
	done
	@$(PY) -m bench.studies.claims --measures $(CLAIMS_DIR) | while read -r cmd; do \
	  $(PY) $${cmd#python } || echo "claims: measurement failed: $$cmd"; \
	done
	$(PY) -m bench.studies.claims $(CLAIMS_DIR)

# TRL 1.12 against 1.16 at the headline's tuned settings, one seed, both locks, one report with a row per
# method and TRL (bench.report groups rows by versions/trl). DPO, KTO and ORPO run in full (minutes on a
# CPU); GRPO runs GRPO_STEPS of its 64 steps (all 64 take ~45 minutes per lock on 2 cores; GRPO_STEPS=-1).
# Both locks share the cache, so the offline data and the base scores are the same bytes on both sides.
GRPO_STEPS ?= 8
TRL_DIFF := results/trl-diff/$(shell date +%Y-%m-%d_%H-%M-%S)
.PHONY: trl-diff
trl-diff:  ## PPO-less headline on TRL 1.12 and 1.16: memory parts, step time, tokens/s, accuracy (~35 min on 2 cores)
	@for lock in default current; do \
		$(MAKE) --no-print-directory setup LOCK=$$lock || exit 1; \
		py=$$([ $$lock = current ] && echo .venv-current || echo .venv)/bin/python; \
		$$py -m bench -m experiment=tuned 'method=dpo,kto,orpo' seed=0 hydra.sweep.dir=$(TRL_DIFF)/$$lock-offline $(ARGS) || exit 1; \
		$$py -m bench -m experiment=tuned method=grpo seed=0 train.args.max_steps=$(GRPO_STEPS) \
			hydra.sweep.dir=$(TRL_DIFF)/$$lock-grpo $(ARGS) || exit 1; \
	done
	.venv/bin/python -m bench.report $(TRL_DIFF)/default-offline $(TRL_DIFF)/default-grpo \
		$(TRL_DIFF)/current-offline $(TRL_DIFF)/current-grpo --out $(TRL_DIFF)

.PHONY: gpu-check
# The node's own torch (NODE_PYTHON: .venv's where there is one, else python3's). A slim wheelhouse's model folder
# (config and tokenizer, no weights) stands in for the embedded model's package, which it leaves out.
gpu-check: node-setup  ## every CUDA path at smoke size on one GPU with the node's torch, random weights, one table (results/gpu-check/<gpu>/; ~8 min); without a GPU: validates and says so
	PY=$(NODE_VENV)/bin/python MODEL_DIR=$(if $(OFFLINE),$(wildcard $(abspath $(OFFLINE))/smollm2-135m-instruct)) bash scripts/gpu-check.sh $(ARGS)

.PHONY: gpu-rehearsal
gpu-rehearsal: setup  ## gpu-check's runs on this CPU in bf16 on the tiny model (outputs/gpu-check-rehearsal/; ~3 min on 2 cores)
	PY=$(PY) bash scripts/gpu-check.sh --rehearse $(ARGS)

provenance: setup  ## rewrite results/reference/*/PROVENANCE.md and make committed paths relative (after adding results)
	$(PY) scripts/relative-paths.py
	$(PY) scripts/provenance.py

docs: setup  ## the docs site, served at http://127.0.0.1:8000 while you edit
	$(VENV)/bin/mkdocs serve

.PHONY: estimate estimate-check
estimate: setup  ## each method's predicted peak by part, and whether it fits in 24/40/80 GiB, e.g. ARGS="model=qwen2.5-3b 'method=grpo,dpo' quant=nf4"
	$(PY) -m bench.estimate $(ARGS)

estimate-check: setup  ## the estimate against measured runs, part by part (a table; ~15 min on 2 cores; ARGS=--quick: ~2 min; LOCK=current: TRL 1.16's chunked LM head)
	$(PY) -m bench.studies.estimate_check $(ARGS)
