"""The fairness audit, the shared settings the harness applies, the splits and tuning's selection rule,
all without training (the smoke sweep checks what a real sweep records)."""

from __future__ import annotations

import pytest

import methods
from bench import BenchError
from bench.config import declared as _declared
from bench.config.compose import CONF_DIR
from bench.measure import probes
from bench.report import audit
from tests.conftest import method_params

METHODS = methods.names()


def _run(method: str, declared=(), **trl) -> dict:
    base = {"learning_rate": 1e-4, "disable_dropout": True, "output_dir": f"/runs/{method}", "seed": 0}
    return {"fair/trl_config": {**base, **trl}, "fair/declared": list(declared), "fair/dropout": 0.0}


def test_audit_flags_an_undeclared_difference_and_passes_a_declared_one():
    rows = {
        "dpo": [_run("dpo", declared=["beta"], beta=0.1)],
        "kto": [_run("kto", declared=["beta"], beta=0.3)],
        # A library default that differs and that nobody chose:
        "grpo": [_run("grpo", disable_dropout=False) | {"fair/dropout": 0.05}],
    }
    found = {d.setting: d for d in audit.audit(rows)}
    assert found["beta"].declared and found["beta"].declared_by == ["dpo", "kto"]
    assert not found["disable_dropout"].declared and not found["fair/dropout"].declared
    assert "output_dir" not in found and "seed" not in found  # differ per run by construction
    text = audit.to_markdown(list(found.values()))
    assert "undeclared difference" in text and "`disable_dropout` | NOT DECLARED" in text


def test_audit_allows_rows_that_declare_to_differ_but_not_those_that_do_not():
    rows = {
        "a": [_run("a", declared=["learning_rate"], learning_rate=3e-4)],
        "b": [_run("b")],
        "c": [_run("c", learning_rate=1e-3)],  # undeclared and unlike b: flagged
    }
    (diff,) = audit.audit(rows)
    assert diff.setting == "learning_rate" and not diff.declared
    rows["c"] = [_run("c")]
    (diff,) = audit.audit(rows)
    assert diff.declared and diff.declared_by == ["a"]
    assert audit.audit({"a": [_run("a")], "b": [_run("b")]}) == []


def test_audit_shows_a_row_whose_own_seeds_disagree():
    rows = {"a": [_run("a"), _run("a", warmup_steps=3)], "b": [_run("b")]}
    (diff,) = audit.audit(rows)
    assert diff.setting == "warmup_steps" and "differs within row" in str(diff.values["a"])
    assert not diff.declared  # seeds of one row may differ only by seed


def test_a_derived_field_is_declared_with_its_source_and_inert_fields_are_not_compared():
    """GSPO's steps_per_generation sets generation_batch_size too; PPO's unused reward-model path and
    vLLM's settings with vLLM off cannot act, so trainers whose defaults differ there differ in nothing."""
    declared = _declared.declared({"steps_per_generation": 4}, {}, [])
    assert {"steps_per_generation", "generation_batch_size"} <= set(declared)
    rows = {
        "grpo": [_run("grpo", steps_per_generation=1, generation_batch_size=4, vllm_gpu_memory_utilization=0.3)],
        "gspo": [
            _run("gspo", declared, steps_per_generation=4, generation_batch_size=16, vllm_gpu_memory_utilization=0.3)
        ],
        "online_dpo": [_run("online_dpo", reward_model_path=None, vllm_gpu_memory_utilization=0.55)],
        "ppo": [_run("ppo", reward_model_path="EleutherAI/pythia-160m")],
    }
    found = {d.setting: d for d in audit.audit(rows)}
    assert found["generation_batch_size"].declared and found["steps_per_generation"].declared
    assert "reward_model_path" not in found and "vllm_gpu_memory_utilization" not in found
    for row in ("grpo", "online_dpo"):  # with vLLM on, its settings act
        rows[row][0]["fair/trl_config"]["use_vllm"] = True
    assert "vllm_gpu_memory_utilization" in {d.setting for d in audit.audit(rows)}


def test_declared_reads_yaml_args_tuned_keys_and_sweep_overrides():
    names = _declared.declared(
        {"beta": 0.1},
        {"train.args.learning_rate": 3e-4},
        ["method=dpo", "sampling.temperature=1.0", "train.disable_dropout=false", "seed=1"],
    )
    assert {"beta", "learning_rate", "temperature", "fair/temperature", "fair/dropout", "disable_dropout"} <= set(names)
    assert "seed" not in names


@pytest.mark.parametrize("name", method_params(sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))))
def test_every_method_gets_the_shared_dropout_and_sampling_settings(compose, name):
    """Built exactly as validation builds it: the TRL config each trainer will receive (variants too)."""
    from bench.config.validation import validate
    from bench.system.runtime import resolve_runtime

    # The tiny model's shapes: the subject is each trainer's config, not the audit of a large model's layers.
    cfg = compose(f"method={name}", "experiment=headline", "model=tiny", "output_dir=/tmp/unused")
    method = methods.get(methods.adapter_name(cfg.method))
    args = validate(cfg, resolve_runtime("cpu", "auto")).trainer_config
    if hasattr(args, "disable_dropout"):
        assert args.disable_dropout is True
    for key, field in method.sampling.items():
        assert getattr(args, field) == cfg.sampling[key], (key, field)
    if name == "grpo":
        assert args.loss_type == "grpo" and args.temperature == 0.7


def test_a_method_yaml_may_override_sampling_and_it_is_declared(compose):
    from bench.config.validation import validate
    from bench.system.runtime import resolve_runtime

    cfg = compose("method=grpo", "+method.args.temperature=1.0", "output_dir=/tmp/unused")
    args = validate(cfg, resolve_runtime("cpu", "auto")).trainer_config
    assert args.temperature == 1.0
    assert _declared.sampling_declared({"temperature": 1.0}, methods.get("grpo").sampling) == ["fair/temperature"]


def test_dropout_is_the_harness_s_setting_not_a_method_s(compose):
    from bench.config.validation import validate
    from bench.system.runtime import resolve_runtime

    cfg = compose("method=dpo", "+method.args.disable_dropout=false", "output_dir=/tmp/unused")
    with pytest.raises(BenchError, match="train.disable_dropout"):
        validate(cfg, resolve_runtime("cpu", "auto"))


def test_dropout_helpers_find_lora_and_functional_attention_dropout():
    import torch

    class Attention(torch.nn.Module):
        attention_dropout = 0.1

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.05), Attention())
    assert probes.active_dropout(model) == 0.1
    model.eval()
    assert probes.active_dropout(model) == 0.0  # not active outside training mode
    model.train()
    probes.disable_dropout(model)
    assert probes.active_dropout(model) == 0.0


# ---- the three splits ------------------------------------------------------------------------------


def _keys(examples):
    return {(ex.prompt, tuple(sorted((k, str(v)) for k, v in ex.fields.items()))) for ex in examples}


@pytest.mark.parametrize(
    "overrides",
    [
        ["task=arithmetic"],
        ["task=reverse"],
        ["task=wordle"],
        ["task=reasoning_gym", "task.num_train=60", "task.num_test=30", "task.num_validation=30"],
    ],
    ids=["arithmetic", "reverse", "wordle", "reasoning_gym"],
)
def test_every_task_has_three_disjoint_splits(compose, overrides):
    from bench.tasks import load_task

    cfg = compose(*overrides)
    task = load_task(cfg.task)
    train, test, val = _keys(task.train), _keys(task.test), _keys(task.validation)
    assert (len(task.train), len(task.test), len(task.validation)) == (
        cfg.task.num_train,
        cfg.task.num_test,
        cfg.task.num_validation,
    )
    assert len(train) == len(task.train) and not train & test and not train & val and not test & val
    assert task.split("validation") == task.validation and task.split("test") == task.test
    with pytest.raises(BenchError, match="split"):
        task.split("train")


def test_adding_validation_left_train_and_test_as_they_were(compose):
    """The untuned headline's prompts and test items stay comparable with every later table."""
    from bench.tasks import load_task

    for name in ("arithmetic", "reverse", "wordle"):
        with_val = load_task(compose(f"task={name}").task)
        without = load_task(compose(f"task={name}", "task.num_validation=0").task)
        assert with_val.train == without.train and with_val.test == without.test, name


def test_gsm8k_validation_is_a_seeded_slice_of_its_train_file(compose, gsm8k_dir):
    from bench.tasks import load_task

    task = load_task(compose("task=gsm8k", f"task.data_dir={gsm8k_dir}").task)
    lines = sum(1 for line in open(gsm8k_dir / "train.jsonl") if line.strip())
    assert len(task.train) + len(task.validation) == lines and len(task.validation) == 200
    assert not _keys(task.train) & _keys(task.validation)
    assert not _keys(task.test) & _keys(task.validation)
    again = load_task(compose("task=gsm8k", f"task.data_dir={gsm8k_dir}").task)
    assert again.validation == task.validation  # fixed by task.seed, not by the run


def test_an_unknown_split_fails_at_validation(compose):
    from bench.config.validation import validate
    from bench.system.runtime import resolve_runtime

    with pytest.raises(BenchError, match="eval.split"):
        validate(compose("eval.split=train", "output_dir=/tmp/unused"), resolve_runtime("cpu", "auto"))


# ---- tuning: selection reads validation only -------------------------------------------------------


def _point(value, score, split="validation", status="success"):
    return {"_value": value, "eval/accuracy": score, "eval/split": split, "status": status, "eval/n": 200}


def test_selection_picks_the_best_validation_point_and_breaks_ties_low():
    from bench.studies.tune import select

    picked = select([_point(3e-5, 0.30), _point(1.7e-4, 0.42), _point(1e-3, 0.42)], "lr")
    assert picked["value"] == 1.7e-4 and picked["score"] == 0.42
    diverged = select([_point(1e-3, None, status="diverged"), _point(3e-5, 0.1)], "lr")
    assert diverged["value"] == 3e-5 and len(diverged["points"]) == 2


def test_selection_never_reads_the_test_split():
    from bench.studies.tune import select

    with pytest.raises(BenchError, match="validation only"):
        select([_point(3e-5, 0.3), _point(1e-3, 0.9, split="test")], "lr")
    with pytest.raises(BenchError):
        select([_point(1e-3, None, status="failed")], "lr")  # nothing scored: nothing to pick


def test_tuned_settings_apply_per_method_and_are_recorded_in_the_config(compose, tmp_path):
    path = tmp_path / "tuned.yaml"
    path.write_text("tuned:\n  dpo: {train.args.learning_rate: 0.0003, method.args.beta: 0.3}\n")
    cfg = compose("method=dpo", f"tuned={path}")
    assert cfg.train.args.learning_rate == 0.0003 and cfg.method.args.beta == 0.3
    other = compose("method=kto", f"tuned={path}")
    assert other.train.args.learning_rate == 1e-4  # another method keeps the shared value
    # A key the command line sets keeps its value; the table's other keys still apply (a rate swept at
    # the tuned beta). The same holds for a run, which reads its own recorded overrides.
    swept = compose("method=dpo", f"tuned={path}", "train.args.learning_rate=1e-5")
    assert swept.train.args.learning_rate == 1e-5 and swept.method.args.beta == 0.3
    from bench.config.compose import apply_tuned

    cfg.train.args.learning_rate, cfg.overrides = 1e-5, ["train.args.learning_rate=1e-5"]
    assert apply_tuned(cfg).train.args.learning_rate == 1e-5
    path.write_text("tuned:\n  dpo: {nowhere.args.beta: 0.3}\n")
    with pytest.raises(BenchError, match="nowhere"):
        compose("method=dpo", f"tuned={path}")


def test_each_fine_tuning_mode_takes_its_own_tuned_entry_and_other_runs_keep_their_hash(compose, tmp_path):
    from bench.config.hashing import recorded_hash

    path = tmp_path / "tuned.yaml"
    path.write_text("tuned:\n  dpo: {train.args.learning_rate: 0.0003, method.args.beta: 0.3}\n")
    lora_before = recorded_hash(compose("method=dpo", f"tuned={path}"))
    path.write_text(
        "tuned:\n  dpo: {train.args.learning_rate: 0.0003, method.args.beta: 0.3}\n"
        "  dpo+full: {train.args.learning_rate: 1.0e-5}\n"
    )
    lora, full = compose("method=dpo", f"tuned={path}"), compose("method=dpo", "peft=none", f"tuned={path}")
    assert lora.train.args.learning_rate == 0.0003 and lora.method.args.beta == 0.3
    assert full.train.args.learning_rate == 1e-5 and full.method.args.beta == 0.3  # laid over dpo's entry
    assert recorded_hash(lora) == lora_before  # a table that gains full entries leaves LoRA runs resumable
    other = tmp_path / "other.yaml"  # the full rate is still hashed, through the value it set
    other.write_text(path.read_text().replace("1.0e-5", "3.0e-5"))
    assert recorded_hash(full) != recorded_hash(compose("method=dpo", "peft=none", f"tuned={other}"))
    full_before = recorded_hash(full)  # and an adapter-only entry leaves full runs as they were
    path.write_text(path.read_text() + "  dpo+lora: {train.args.learning_rate: 0.001}\n")
    lora, full = compose("method=dpo", f"tuned={path}"), compose("method=dpo", "peft=none", f"tuned={path}")
    assert lora.train.args.learning_rate == 0.001 and full.train.args.learning_rate == 1e-5
    assert recorded_hash(full) == full_before and recorded_hash(lora) != lora_before


def test_the_written_experiment_file_reuses_the_picks_on_top_of_the_tuned_experiment(compose, tmp_path):
    from bench.studies.tune import experiment_file

    study = {
        "spec": {"experiment": "headline"},
        "methods": {"dpo": {"picked": {"train.args.learning_rate": 3e-5, "method.args.beta": 0.03}}},
    }
    text = experiment_file(study, "python -m bench.studies.tune tune=headline", "abc1234")
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "mytuned.yaml").write_text(text)
    cfg = compose("method=dpo", "experiment=mytuned", f"hydra.searchpath=[file://{tmp_path}]")
    assert cfg.train.args.learning_rate == 3e-5 and cfg.method.args.beta == 0.03
    assert cfg.data.samples_per_prompt == 8  # experiment=headline's own settings came with it
    assert "abc1234" in text
