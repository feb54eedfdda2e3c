"""The registry against conf/method/, every method's args against its TRL config, and bad input
failing fast (before any model loads) without touching earlier results."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

import methods
from bench import BenchError
from bench.config.compose import CONF_DIR
from bench.config.hashing import recorded_hash
from bench.config.validation import validate
from bench.run.runner import run
from bench.system.runtime import resolve_runtime
from tests.conftest import method_params, needs, unavailable

CPU = resolve_runtime("cpu", "auto")
YAML_METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))


def _own(name: str) -> dict:
    """A conf/method YAML as written: a variant's own keys, without what it inherits."""
    import yaml

    return yaml.safe_load((CONF_DIR / "method" / f"{name}.yaml").read_text())


VARIANTS = [name for name in YAML_METHODS if _own(name).get("adapter")]
DERIVED = {"steps_per_generation": ("generation_batch_size",)}


def test_registry_and_method_configs_match():
    # An adapter per YAML that is not a variant; a variant names a registered adapter and inherits its YAML.
    assert methods.names() == [name for name in YAML_METHODS if name not in VARIANTS]
    assert {"grpo", "ppo", "dpo", "kto", "orpo", "sft", "rloo", "cpo", "bco", "online_dpo"} <= set(methods.names())
    assert {"dapo", "dr_grpo", "bnpo", "gspo", "cispo", "ipo", "rdpo", "slic", "simpo"} <= set(VARIANTS)
    for name in VARIANTS:
        own = _own(name)
        assert own["name"] == name and own["adapter"] in methods.names(), name
        assert own["defaults"][0] == own["adapter"], f"{name}: inherit the adapter's YAML first"
        assert own.get("args"), f"{name}: a variant is its own args"


@pytest.mark.parametrize("name", method_params(VARIANTS))
def test_each_variant_trains_its_own_objective(compose, name, tmp_path):
    """Every arg the variant's YAML sets reaches the TRL config of its adapter; the rest is the parent's."""
    own = _own(name)
    checked = validate(compose(f"method={name}", "model=tiny", output_dir=tmp_path), CPU)
    assert checked.method.name == own["adapter"]
    for key, value in own["args"].items():
        assert getattr(checked.trainer_config, key) == value, (name, key)
    parent = validate(compose(f"method={own['adapter']}", "model=tiny", output_dir=tmp_path), CPU).trainer_config
    fields = [f.name for f in dataclasses.fields(parent)]
    differ = {k for k in fields if getattr(parent, k) != getattr(checked.trainer_config, k)}
    derived = {d for key in own["args"] for d in DERIVED.get(key, ())}  # TRL computes these from the args
    allowed = set(own["args"]) | derived | {"output_dir", "run_name", "logging_dir"}
    assert differ <= allowed, (name, differ - allowed)


def test_a_variant_of_a_missing_adapter_is_explained(compose, tmp_path):
    cfg = compose("method=dapo", output_dir=tmp_path)
    cfg.method.adapter = "grpx"
    with pytest.raises(BenchError, match=r"Did you mean 'grpo'.*names `adapter: grpx`"):
        validate(cfg, CPU)


def test_registry_and_task_configs_match():
    from bench.tasks import TASKS

    assert TASKS.names() == sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))


def test_method_registry_rejects_a_second_file_for_one_name():
    from bench.system.registry import Registry

    registry = Registry("thing", "methods")
    registry.add("a", 1, "one.py")
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("a", 2, "two.py")


def test_unknown_task_in_config_is_explained(compose, tmp_path):
    cfg = compose(output_dir=tmp_path)
    cfg.task.name = "arithmetc"
    with pytest.raises(BenchError, match="Did you mean 'arithmetic'.*docs/adding-a-task.md"):
        validate(cfg, CPU)


def test_every_peft_field_comes_from_the_command_line(compose, tmp_path):
    from bench.config import finetuning

    cfg = compose("peft.target_modules=all-linear", "peft.use_rslora=true", "+peft.lora_bias=true")
    config = finetuning.peft_config(cfg.peft)
    assert config.target_modules == "all-linear" and config.use_rslora and config.lora_bias
    assert validate(compose("peft=dora", output_dir=tmp_path), CPU).audit.mode == "dora"


@pytest.mark.parametrize("name", method_params(YAML_METHODS))
@pytest.mark.parametrize("debug", [None, "smoke"])
def test_every_method_args_build_its_trl_config(compose, name, debug, tmp_path):
    # The tiny model's shapes (validation wraps them on the meta device): the subject is the method's args.
    overrides = [f"method={name}", "model=tiny"] + ([f"debug={debug}"] if debug else [])
    cfg = compose(*overrides, output_dir=tmp_path)
    checked = validate(cfg, CPU)
    method, args = checked.method, checked.trainer_config
    assert isinstance(args, method.config_class)
    assert cfg.method.name == name and method.name == methods.adapter_name(cfg.method)
    # Precision follows the device: fp32 on CPU, never TRL's bf16 default.
    assert args.bf16 is False and args.fp16 is False
    assert args.seed == cfg.seed and args.report_to in ([], "none", ["none"])


def test_method_args_come_straight_from_the_command_line(compose, tmp_path):
    args = validate(compose("method=dpo", "method.args.beta=0.2", output_dir=tmp_path), CPU).trainer_config
    assert args.beta == 0.2
    args = validate(
        compose(
            "method=grpo",
            "++method.args.num_generations=8",
            "train.args.per_device_train_batch_size=8",
            output_dir=tmp_path,
        ),
        CPU,
    ).trainer_config
    assert args.num_generations == 8 and args.per_device_train_batch_size == 8


def test_unknown_trainer_argument_fails_with_a_hint(compose, tmp_path):
    with pytest.raises(BenchError, match=r"DPOConfig has no field\(s\) betta \(did you mean beta\?\)"):
        validate(compose("method=dpo", "++method.args.betta=0.2", output_dir=tmp_path), CPU)


@pytest.mark.parametrize("override", ["++method.args.bf16=true", "++train.args.seed=3", "++method.args.output_dir=x"])
def test_settings_the_harness_owns_cannot_be_overridden_silently(compose, tmp_path, override):
    with pytest.raises(BenchError, match="which the harness owns"):
        validate(compose("method=dpo", override, output_dir=tmp_path), CPU)


def test_trl_rejects_inconsistent_settings_before_training(compose, tmp_path):
    cfg = compose("method=grpo", "method.args.num_generations=3", output_dir=tmp_path)
    with pytest.raises(BenchError, match="GRPOConfig rejected the settings"):
        validate(cfg, CPU)


def test_unknown_method_lists_the_known_ones(compose):
    with pytest.raises(BenchError, match="conf/method/ has no grpp.yaml; did you mean grpo"):
        compose("method=grpp")
    with pytest.raises(KeyError, match="Did you mean 'grpo'"):
        methods.get("grp")


def test_method_yaml_without_adapter_is_explained(compose, tmp_path):
    cfg = compose(output_dir=tmp_path)
    cfg.method.name = "simpo"
    with pytest.raises(BenchError, match="add its adapter file in methods/"):
        validate(cfg, CPU)


@pytest.mark.parametrize(
    "override, message",
    [
        ("peft.r=0", "`r` should be a positive integer"),
        ("peft.lora_dropout=1.5", "dropout probability has to be between 0 and 1"),
        ("+peft.use_dorra=true", r"use_dorra \(did you mean use_dora\?\)"),
        ("peft.target_modules=[qproj]", "not found in the base model.*q_proj"),
        ("quant=nf4,peft=none", "fully fine-tune a quantized base"),
        ("task=gsm8k", None),  # hub-only without data_dir: fails at data load, still before training
        ("model.name_or_path=./no/such/model", "looks like a local folder but does not exist"),
        ("++method.args.not_a_field=1", "has no field"),
        ("method=grpo,method.args.num_generations=3", "GRPOConfig rejected the settings"),
        ("method=kto,train.args.per_device_train_batch_size=1", "KTOConfig rejected|batch size"),
        ("method=dpo,train.rollout=merged", "does not generate while training"),
        ("method=grpo,quant=nf4,train.rollout=merged", "rounds them"),
        ("method=grpo,peft=none,train.rollout=merged", "no adapter to merge"),
        ("train.rollout=vllm", "trl .* or merged"),
        ("eval.path=fused", "merged .* or adapter"),
        ("init_from=/no/such/run", "names no run folder"),
        pytest.param(
            "method=ppo,method.reward=model,quant=nf4",
            "reward model does not work on a quantized base",
            marks=needs("ppo"),
        ),
        ("method=grpo,++method.args.use_vllm=true,++method.args.vllm_mode=server", "separate `trl vllm-serve`"),
        ("train.args.dataloader_num_workers=2", "worker processes, whose memory and time"),
        ("method=grpo,++method.args.use_transformers_paged=true", "casts the whole model to bf16"),
    ],
)
def test_bad_input_fails_fast_and_leaves_earlier_results_alone(compose, tmp_path, override, message):
    earlier = tmp_path / "earlier" / "metrics.json"
    earlier.parent.mkdir()
    earlier.write_text(json.dumps({"status": "success", "eval/accuracy": 0.42}))
    before = earlier.read_bytes()
    cfg = compose("debug=smoke", "isolate=false", *override.split(","), output_dir=tmp_path / "new")
    if override == "task=gsm8k":
        cfg.task.data_dir = str(tmp_path / "missing")
        message = "lacks train.jsonl"
    started = time.perf_counter()
    record = run(cfg)
    assert record["status"] == "failed"
    assert message is None or __import__("re").search(message, record["error"])
    assert "model/path" not in record  # no model was loaded
    assert time.perf_counter() - started < 120
    saved = json.loads((tmp_path / "new" / "metrics.json").read_text())
    assert saved["status"] == "failed" and saved["error"] == record["error"]
    assert earlier.read_bytes() == before


def test_override_of_a_key_the_task_lacks_fails_at_composition(compose):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="Could not override 'task.data_dir'"):
        compose("task.data_dir=/no/such/dir")  # arithmetic is generated; only gsm8k reads files


def test_config_hash_ignores_where_results_go(compose, tmp_path):
    a = compose(output_dir=tmp_path / "a")
    b = compose(output_dir=tmp_path / "b")
    c = compose("peft.r=8", output_dir=tmp_path / "a")
    assert recorded_hash(a) == recorded_hash(b) != recorded_hash(c)


EXPERIMENTS = sorted(
    str(p.relative_to(CONF_DIR / "experiment").with_suffix("")) for p in (CONF_DIR / "experiment").rglob("*.yaml")
)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(compose, name, tmp_path):
    """Each experiment, and each job of a claim's sweep (its hydra.sweeper.params), validates."""
    import itertools

    from omegaconf import OmegaConf

    raw = OmegaConf.load(CONF_DIR / "experiment" / f"{name}.yaml")
    params = OmegaConf.select(raw, "hydra.sweeper.params", default=None)
    grid = OmegaConf.to_container(params) if params is not None else {}
    # Seeds change no setting that validation checks: one is enough.
    axes = [[f"{key}={value}" for value in str(values).split(",")] for key, values in grid.items() if key != "seed"]
    for job in itertools.product(*axes) if axes else [()]:
        cfg = compose(f"experiment={name}", *job, output_dir=tmp_path)
        if cfg.get("init_from"):  # a second stage: its first is an earlier job of this very sweep
            import re

            first = re.search(r"\*_(\w+)_seed", str(cfg.init_from)).group(1)
            order = str(grid["method"]).split(",")
            assert order.index(first) < order.index(cfg.method.name), (first, order)
            assert list(grid)[0] == "seed"  # seed by seed: each second stage finds its own first stage done
            cfg.init_from = None  # not run here: the rest of the job must validate
        if unavailable(cfg.method.name) is not None:  # PPO on TRL 1.16: refused (tests/test_trl_versions.py)
            continue
        checked = validate(cfg, CPU)
        assert isinstance(checked.trainer_config, checked.method.config_class), job


def test_a_step_that_clearly_cannot_fit_is_named_before_any_weights_load(compose, tmp_path, caplog, monkeypatch):
    """A long prompt, a batch and a model whose layer inputs alone outgrow the memory: said with the figures,
    from the shapes (the run's setup calls this once the prompts are cut, before any weights load)."""
    import collections

    import psutil

    from bench.config.fit import memory_floor, warn_if_it_cannot_fit

    cfg = compose("model=tiny", "method=dpo", "train.max_prompt_length=100000", output_dir=tmp_path)
    checked = validate(cfg, CPU)
    floor = memory_floor(cfg, CPU, checked.audit, "preference", batch=4, prompt_tokens=100_000, available=10**9)
    # 4 rows of chosen and rejected, 100,064 tokens, 64 wide, 2 layers, fp32; the weights in fp32.
    assert floor["activations"] == 8 * 100_064 * 64 * 2 * 4 and floor["weights"] == 4 * checked.audit.base_params
    full = validate(compose("model=tiny", "method=sft", "peft=none", output_dir=tmp_path / "full"), CPU)
    assert memory_floor(cfg, CPU, full.audit, "gold", 1, 1, 1)["weights"] == 16 * full.audit.base_params  # + Adam
    monkeypatch.setattr(psutil, "virtual_memory", lambda: collections.namedtuple("vm", "available")(10**8))
    with caplog.at_level("WARNING", logger="bench.config"):
        warn_if_it_cannot_fit(cfg, CPU, checked, 100_000)
    assert "method=dpo will not fit: a training step needs at least 0.4 GB" in caplog.text
    assert "8 rows x 100064 tokens x 64 wide x 2 layers" in caplog.text
