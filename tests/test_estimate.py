"""bench.estimate: a method's peak by part from config.json alone, offline, and its parts against a run's."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from bench import BenchError
from bench.estimate.__main__ import main
from bench.estimate.model import Estimate, GiB, Step, estimate
from bench.estimate.overhead import REFERENCE, Overhead, measured, verdict
from methods import REGISTRY, get, names, why_unavailable

# Qwen2.5-3B's numbers (its config.json, as conf/model/qwen2.5-3b.yaml holds them)
QWEN_3B = {"layers": 36, "hidden": 2048, "kv": 256, "intermediate": 11008, "vocab": 151936, "params": 3_085_938_688}


def test_the_cli_prints_each_method_offline_for_a_hub_model(capsys):
    assert main(["model=qwen2.5-3b", "method=grpo,dpo", "quant=nf4", "peft.r=16"]) == 0
    out = capsys.readouterr().out
    assert "Model: Qwen/Qwen2.5-3B-Instruct: qwen2, 36 layers of width 2048" in out
    assert "config from conf/model arch numbers for qwen2.5-3b-instruct" in out
    assert "Qwen/Qwen2.5-3B-Instruct, bf16, quant=nf4" in out
    assert "| grpo | 4×496 |" in out and "| dpo | 8×500 |" in out  # DPO: chosen and rejected, each row
    assert "24 GiB" in out and "80 GiB" in out


def test_exact_parts_follow_from_the_audit_and_quantization(compose):
    lora = estimate(compose("model=qwen2.5-3b", "method=sft", "precision=bf16"))
    nf4 = estimate(compose("model=qwen2.5-3b", "method=sft", "precision=bf16", "quant=nf4"))
    assert lora.parts["trainable"] == lora.parts["gradients"]
    assert 0 < lora.parts["optimizer"] - 2 * lora.parts["trainable"] < 4096  # two moments, and a step counter a tensor
    assert nf4.parts["weights"] < lora.parts["weights"] / 2.5  # 4-bit linear weights, embeddings in bf16
    full = estimate(compose("model=qwen2.5-3b", "method=dpo", "precision=bf16", "peft=none"))
    assert full.parts["extra_models"] > 0  # a full DPO keeps a reference copy; with LoRA the adapter off is it
    assert estimate(compose("model=qwen2.5-3b", "method=dpo", "precision=bf16")).parts["extra_models"] == 0
    assert full.parts["trainable"] == 4 * 3_085_938_688  # every weight trains, in fp32


def test_the_peak_is_the_larger_of_the_step_and_generation():
    parts = {
        "weights": 10,
        "trainable": 1,
        "gradients": 1,
        "optimizer": 2,
        "extra_models": 0,
        "activations": 5,
        "autocast_copies": 0,
        "checkpointed": 0,
        "logits": 3,
        "head_tile": 0,
        "kv_cache": 20,
    }
    e = Estimate("grpo", "bf16", parts, Step(1, 1, 1))
    assert e.training == 22 and e.generation == 34 and e.peak == 34


@pytest.mark.parametrize("quant", ["none", "nf4"])
def test_an_8b_model_estimates_in_seconds_from_its_numbers(compose, quant):
    e = estimate(compose("model=llama3.1-8b", "method=grpo", f"quant={quant}", "precision=bf16"))
    assert 3 * GiB < e.parts["weights"] < 16 * GiB and e.parts["kv_cache"] > 0


def test_the_loss_head_follows_the_installed_trl(compose):
    """TRL 1.12 saves the scored positions' logits. A TRL whose DPO trainer patches in its chunked LM head
    (1.16) saves nothing vocabulary-wide and holds one tile instead: on a GPU only the completion
    positions go through it (TRL's Triton path), on a CPU every position does."""
    from trl.trainer import dpo_trainer

    gpu = estimate(compose("model=qwen2.5-3b", "method=dpo", "precision=bf16"))
    cpu = estimate(compose("model=qwen2.5-3b", "method=dpo", "precision=bf16", "device=cpu"))
    if hasattr(dpo_trainer, "add_fused_lm_head"):
        from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
        from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

        assert gpu.parts["logits"] == cpu.parts["logits"] == 0
        for e, positions in ((gpu, gpu.step.completion), (cpu, cpu.step.tokens)):
            rows_tokens = e.step.rows * positions
            assert e.parts["head_tile"] == min(rows_tokens, TOKEN_CHUNK_SIZE) * _CHUNKED_LOGPROB_CHUNK_SIZE * 2
        assert gpu.step.completion < gpu.step.tokens
    else:
        assert gpu.parts["head_tile"] == 0
        # every position, in fp32: mixed precision hands the trainer fp32 logits
        assert gpu.parts["logits"] == gpu.step.rows * gpu.step.tokens * 151_936 * 4
    assert gpu.training == sum(v for k, v in gpu.parts.items() if k != "kv_cache")


def test_mixed_precision_logits_are_fp32_and_autocast_copies_each_trained_weight(compose):
    """Under bf16 mixed precision accelerate hands the trainer fp32 logits (counted at 2 bytes before: 0.47-0.50
    of a measured CPU bf16 run), autocast saves a bf16 copy of every trained weight a matmul reads (counted
    nowhere before): LoRA's adapters; under full fine-tuning every linear weight and the tied head, all but
    the norms (2 layers x 2 and the final one, 64 wide), but the head's where SFT's chunked loss recomputes
    it. A full fine-tune's frozen reference is in the run's dtype, its rollouts' KV cache in fp32."""
    fp32 = estimate(compose("model=tiny", "method=kto", "precision=fp32"))
    lora = estimate(compose("model=tiny", "method=kto", "precision=bf16"))
    if lora.parts["head_tile"] == 0:  # TRL 1.12: the logits are saved (1.16's chunked head saves none)
        assert lora.parts["logits"] == fp32.parts["logits"] > 0
    # measured: mem/autocast_copies_bytes of the tiny model's KTO run in make estimate-check's bf16 runs
    assert lora.parts["autocast_copies"] == 59_392
    assert fp32.parts["autocast_copies"] == 0
    full = estimate(compose("model=tiny", "method=dpo", "peft=none", "precision=bf16"))
    params = full.parts["trainable"] // 4
    assert full.parts["autocast_copies"] == 2 * (params - 5 * 64)
    assert full.parts["extra_models"] == 2 * params  # the reference, frozen in bf16
    sft = estimate(compose("model=tiny", "method=sft", "peft=none", "precision=bf16"))
    if sft.parts["head_tile"] == 0:  # TRL 1.12's chunked_nll (1.16 runs SFT through its chunked LM head)
        assert sft.parts["autocast_copies"] == full.parts["autocast_copies"] - 2 * 49152 * 64
    kv = {
        peft: estimate(compose("model=tiny", "method=grpo", f"peft={peft}", "precision=bf16")).parts["kv_cache"]
        for peft in ("lora", "none")
    }
    assert kv["none"] == 2 * kv["lora"] > 0  # fp32 master weights generate in fp32


@pytest.mark.parametrize("peft", ["lora", "none"])
def test_the_trace_under_autocast_saves_what_a_cpu_autocast_forward_saves(compose, peft):
    """The trace on fake tensors under CPU autocast against the tiny model's real forward under CPU autocast,
    measured by the run's own SavedTensors: autocast's weight copies to the byte, the activations within 5%
    (the trace's fused attention stands in for the kernel CPU takes). The meta trace had no autocast: it
    counted the copies as activations and the inputs autocast casts down in fp32 (1.2 to 1.5x)."""
    import torch
    from transformers import AutoModelForCausalLM

    from bench.config import finetuning
    from bench.estimate.model import _in_dtypes
    from bench.estimate.precision import Tracer
    from bench.estimate.source import resolve
    from bench.estimate.trace import Saved, meta_forward
    from bench.measure.metrics import SavedTensors
    from bench.measure.params import meta_model, wrap
    from bench.measure.probes import disable_dropout

    cfg = compose("model=tiny", f"peft={peft}")
    config, lora = resolve(cfg.model).config, finetuning.peft_config(cfg.peft)

    def build(model):
        model = _in_dtypes(model if lora is None else wrap(model, lora), torch.bfloat16, train_all=lora is None)
        disable_dropout(model)
        return model.train()

    traced = build(meta_model(config))
    tracer = Tracer(traced, torch.bfloat16)
    saved = Saved(traced, config.vocab_size)
    with saved.counting(), meta_forward(), tracer.context():
        traced(input_ids=torch.zeros((4, 40), dtype=torch.long, device=tracer.device))
    torch.manual_seed(0)
    real = build(AutoModelForCausalLM.from_config(config))
    with SavedTensors([real], config.vocab_size) as measured, torch.autocast("cpu", dtype=torch.bfloat16):
        real(input_ids=torch.randint(0, config.vocab_size, (4, 40)))
    m = measured.metrics()
    assert saved.bytes["autocast_copies"] == m["mem/autocast_copies_bytes"] > 0
    assert abs(saved.bytes["activations"] / m["mem/activations_bytes"] - 1) < 0.05


def test_bco_saves_its_logits_twice(compose):
    """TRL 1.12's BCOTrainer sums its logits for metrics with autograd on: a second copy (measured 0.49 before)."""
    bco = compose("model=tiny", "method=bco", "precision=fp32", "device=cpu")
    if why_unavailable(bco.method):
        pytest.skip("BCO needs TRL 1.12 (the default lock)")
    kto = estimate(compose("model=tiny", "method=kto", "precision=fp32", "device=cpu"))
    assert estimate(bco).parts["logits"] == 2 * kto.parts["logits"] > 0


def test_several_models_and_quantizations_print_one_peak_a_cell(capsys, compose):
    assert main(["model=tiny,smollm2-135m", "quant=none,nf4", "method=dpo,kto", "precision=bf16"]) == 0
    out = capsys.readouterr().out
    assert "| method | tiny none | tiny nf4 | smollm2-135m none | smollm2-135m nf4 |" in out
    peak = estimate(compose("model=smollm2-135m", "quant=nf4", "method=kto", "precision=bf16")).peak
    lo, hi = measured("cuda").range(peak)  # a GPU's budgets: the cell's range and verdicts
    cell = f"{peak / GiB:.1f} ({lo / GiB:.1f}–{hi / GiB:.1f}) yes/yes/yes"
    assert out.splitlines()[-1].split(" | ")[-1].rstrip(" |") == cell
    assert main(["quant=none,nf4", "method=sft,ppo"]) == 0  # the model not listed: the default names its column
    out = capsys.readouterr().out
    assert "| method | smollm2-135m-instruct none | smollm2-135m-instruct nf4 |" in out
    assert ("| ppo | – | – |" in out) == bool(why_unavailable(compose("method=ppo").method))


def test_methods_the_installed_trl_lacks_are_left_out_by_name(capsys, compose):
    """PPO and BCO under TRL 1.16: said on stderr, the others estimated; none left at all is an error."""
    missing = [m for m in ("ppo", "bco") if why_unavailable(compose(f"method={m}").method)]
    if not missing:
        pytest.skip("the installed TRL has PPO and BCO (the default lock)")
    assert main(["model=tiny", f"method=kto,{missing[0]}"]) == 0
    captured = capsys.readouterr()
    assert "| kto |" in captured.out and f"| {missing[0]} |" not in captured.out
    assert "left out: method=" in captured.err
    assert main(["model=tiny", "method=" + ",".join(missing)]) == 2
    assert "none of the methods listed" in capsys.readouterr().err


def test_rollouts_hold_every_layers_keys_and_values_for_the_generation_batch(compose):
    """GRPO on Qwen2.5-3B (36 layers, 2 KV heads of 128): the KV cache of its generation batch at prompt +
    completion tokens, in bf16; its loss is taken on the completion positions alone."""
    e = estimate(compose("model=qwen2.5-3b", "method=grpo", "precision=bf16"))
    assert e.step.generate_tokens == e.step.tokens and e.step.completion == e.step.scored == 64
    assert e.parts["kv_cache"] == 2 * 36 * 2 * 128 * e.step.generate_rows * e.step.generate_tokens * 2 > 0


@pytest.fixture
def model_dir(tmp_path):
    """A local model folder holding only a config.json: a 2-layer Llama of width 64."""
    from transformers import AutoConfig

    AutoConfig.for_model(
        "llama",
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    ).save_pretrained(tmp_path)
    return tmp_path


def test_full_fine_tuning_with_activation_checkpointing_is_estimated(capsys, compose, model_dir):
    """peft=none leaves no frozen parameter to take the residual stream's dtype from (it was a bare
    StopIteration): each layer's input is kept in the embeddings' dtype, fp32 master weights here."""
    overrides = ["peft=none", "train.args.activation_checkpointing=true", "method=dpo"]
    assert main([f"model.name_or_path={model_dir}", *overrides]) == 0
    out = capsys.readouterr().out
    assert "| dpo | 8×500 |" in out
    e = estimate(compose("model=tiny", *overrides, "precision=bf16"))
    rows_tokens = e.step.rows * e.step.tokens
    assert e.parts["checkpointed"] > 2 * rows_tokens * 64 * 4  # every layer's fp32 input, and one layer's insides
    lora = estimate(compose("model=tiny", "train.args.activation_checkpointing=true", "method=dpo", "precision=bf16"))
    assert lora.parts["checkpointed"] < e.parts["checkpointed"]  # an adapter's residual stream is bf16


def _nf4_value_model_bytes(m: dict) -> int:
    """PPO's value model as the run loads it under quant=nf4 in bf16, counted by hand: the decoder's linear
    weights in NF4 (half a byte a weight and an fp32 scale per 64), their q/k/v biases, the norms, the
    embeddings and the frozen original of the score head (1 × hidden) in bf16; no lm_head."""
    h, kv, inter, layers = m["hidden"], m["kv"], m["intermediate"], m["layers"]
    linear = [h * h, h * kv, h * kv, h * h, h * inter, h * inter, inter * h]
    quantized = layers * sum(n // 2 + n // 64 for n in linear)
    bf16 = layers * (h + 2 * kv) + layers * 2 * h + h + m["vocab"] * h + h
    return quantized + 2 * bf16


def test_ppos_value_model_is_counted_as_the_run_loads_it(compose):
    """Quantized under quant=nf4, as bench.recipe.train.load_policy_copy loads it: it was counted in bf16,
    3.8 GiB too many for Qwen2.5-3B. The rotary frequencies (fp32 buffers) are the only bytes apart."""
    cfg = compose("model=qwen2.5-3b", "method=ppo", "quant=nf4", "precision=bf16")
    if why_unavailable(cfg.method):
        pytest.skip("PPO needs TRL 1.12 (the default lock)")
    e = estimate(cfg)
    assert 0 <= e.parts["extra_models"] - _nf4_value_model_bytes(QWEN_3B) <= 1024
    assert e.parts["extra_models"] < 2 * GiB  # 5.75 GiB when counted unquantized
    int8 = estimate(compose("model=qwen2.5-3b", "method=ppo", "quant=int8", "precision=bf16")).parts["extra_models"]
    assert (
        e.parts["extra_models"]
        < int8
        < estimate(compose("model=qwen2.5-3b", "method=ppo", "precision=bf16")).parts["extra_models"]
    )


def test_references_are_counted_as_trl_holds_them(compose):
    """Under full fine-tuning TRL holds a frozen reference, which the harness freezes and casts to the run's
    dtype (bench.recipe.dtypes.settle_reference; counted in fp32 it was 2.00 of a measured CPU bf16 run), fp32
    only where sync_ref_model updates it; with an adapter the base with the adapter disabled is the reference,
    no copy. A variant (IPO) has its adapter's (DPO's) reference."""
    for method in ("dpo", "ipo"):
        full = estimate(compose("model=qwen2.5-3b", f"method={method}", "precision=bf16", "peft=none"))
        assert full.parts["extra_models"] == 2 * QWEN_3B["params"], method
        synced = compose(
            "model=qwen2.5-3b", f"method={method}", "precision=bf16", "peft=none", "+method.args.sync_ref_model=true"
        )
        assert estimate(synced).parts["extra_models"] == 4 * QWEN_3B["params"], method
        assert estimate(compose("model=qwen2.5-3b", f"method={method}", "precision=bf16")).parts["extra_models"] == 0
    assert estimate(compose("model=tiny", "method=orpo", "peft=none")).parts["extra_models"] == 0  # ORPO has none


def test_the_header_names_the_model_estimated_and_its_config(capsys, model_dir):
    assert main([f"model.name_or_path={model_dir}", "method=sft"]) == 0
    out = capsys.readouterr().out
    assert (
        f"Model: {model_dir}: llama, 2 layers of width 64, 4 attention heads over 2 KV heads, vocabulary 512; "
        f"config from {model_dir / 'config.json'}." in out
    )
    assert f"one training process: {model_dir}, bf16" in out and "smollm2" not in out


def test_a_model_not_found_offline_is_refused_by_name(capsys):
    """A hub id that is neither cached nor described by a conf/model yaml: it got the default model's numbers."""
    assert main(["model.name_or_path=meta-llama/Llama-3.2-1B", "method=sft"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert "model.name_or_path='meta-llama/Llama-3.2-1B': no config.json for it here" in captured.err
    assert (
        "hf download meta-llama/Llama-3.2-1B config.json" in captured.err and "model.name_or_path=DIR" in captured.err
    )


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "intermediate_size"])
def test_a_config_json_without_a_field_the_estimate_needs_is_refused_naming_it(compose, model_dir, field):
    config = json.loads((model_dir / "config.json").read_text())
    del config[field]
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        BenchError, match=f"config.json has no {field}; transformers would put in LlamaConfig's default"
    ):
        estimate(compose(f"model.name_or_path={model_dir}", "method=sft"))


@pytest.mark.parametrize(
    "args, says",
    [
        (["method=dpp"], "method=dpp: conf/method/ has no dpp.yaml; did you mean "),
        (["method=grpo,foo"], "method=foo: conf/method/ has no foo.yaml; did you mean "),
        (["model=qwen2.5"], "model=qwen2.5: conf/model/ has no qwen2.5.yaml; did you mean qwen2.5-3b"),
        (
            ["train.args.per_device_train_batch_size=0"],
            "train.args.per_device_train_batch_size=0: it must be at least 1.",
        ),
        (
            ["train.args.per_device_train_batch_size=-1"],
            "train.args.per_device_train_batch_size=-1: it must be at least 1.",
        ),
        (["--prompt-tokens", "-5"], "--prompt-tokens -5: a prompt holds at least 1 token."),
        (["--prompt-tokens", "0"], "--prompt-tokens 0: a prompt holds at least 1 token."),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, says):
    with pytest.raises(SystemExit) as exit_:  # argparse's refusals exit; the estimate's own return 2
        sys.exit(main(["model=tiny", *args]))
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out == ""
    assert captured.err.startswith(f"bench.estimate: {says}") and len(captured.err.splitlines()) == 1


def test_an_unknown_method_gets_no_traceback_from_the_command():
    """Hydra's own refusal of method=foo was a 73-line traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.estimate", "method=foo"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("bench.estimate:")] == [
        line for line in done.stderr.splitlines() if "method=foo" in line
    ]


def test_every_shipped_adapter_declares_its_memory_facts():
    """The facts the estimate once kept in name-keyed tables, now on each adapter."""
    facts = {n: get(n).memory for n in names()}
    assert None not in facts.values()
    assert {n for n, f in facts.items() if f.reference is True} == {"dpo", "kto", "bco", "online_dpo", "ppo"}
    assert {n for n, f in facts.items() if f.reference == "beta"} == {"grpo", "rloo"}
    assert {n for n, f in facts.items() if f.nll_on_chosen} == {"orpo", "cpo"}
    assert {n: f.logits_copies for n, f in facts.items() if f.logits_copies} == {"bco": 1}
    assert {n for n, f in facts.items() if f.value_model} == {"ppo"}
    assert {n: f.completions_per_prompt for n, f in facts.items() if f.completions_per_prompt != 1} == {"online_dpo": 2}


def test_a_method_that_declares_nothing_is_estimated_saying_so(capsys, compose, monkeypatch):
    """A new adapter registered without memory facts: the estimate assumes none (no reference copy even
    under full fine-tuning) and says so in a line of its output, rather than silently."""
    names()  # discovered first, so the entry below is not overwritten
    monkeypatch.setitem(REGISTRY._entries, "mine", replace(get("dpo"), name="mine", memory=None))
    overrides = ["model=tiny", "method=dpo", "+method.adapter=mine", "peft=none"]
    e = estimate(compose(*overrides))
    assert (
        e.parts["extra_models"] == 0 < estimate(compose("model=tiny", "method=dpo", "peft=none")).parts["extra_models"]
    )
    assert e.notes == [
        "method=dpo: its adapter (mine) declares no memory facts (methods.MemoryFacts: reference "
        "model, NLL on chosen, logits copies, value model), so none of them is assumed."
    ]
    assert main(overrides) == 0
    assert f"Note: {e.notes[0]}" in capsys.readouterr().out.splitlines()
    assert estimate(compose("model=tiny", "method=dpo")).notes == []


def test_the_checks_table_gives_the_whole_peaks_range_apart_from_the_parts():
    """make estimate-check's table: the parts' count within 10%, and beside it the whole peak's range against
    the measured RSS, which the parts' count does not cover (0.51-0.93 in fp32)."""
    from bench.studies.estimate_check import PARTS, markdown

    def row(peak: tuple[int, int]) -> dict:
        parts = {part: (100, 100) for part in PARTS} | {"peak": peak, "other": 0, "head_tile": 0}
        return {"shape": "s", "method": "m", "parts": parts}

    text = markdown([row((51, 100)), row((93, 100)), row((10, 0))])
    n = 3 * len(PARTS)  # every part of every row is measured; only the peak of the third is not
    assert f"Tensor parts within: {n} of {n}" in text
    assert "Whole peak (the tensor parts and the process's runtime) / measured RSS: 0.51–0.93;" in text


def test_the_verdict_is_yes_when_the_ranges_top_fits_no_when_its_bottom_does_not_else_tight():
    budget = 24 * GiB
    assert verdict(budget - 10, budget, 24) == "yes"  # the top exactly at the budget fits
    assert verdict(budget - 10, budget + 1, 24) == "tight"
    assert verdict(budget, budget + 1, 24) == "tight"  # the bottom exactly at the budget: may still fit
    assert verdict(budget + 1, budget + 2, 24) == "no"


def test_the_range_adds_the_least_runtime_and_grows_to_the_most_runtime_over_the_allocators_share():
    """lo = peak + runtime_lo; hi = (peak + runtime_hi) / (1 − allocator_hi); the verdicts in the table follow."""
    from bench.estimate.__main__ import table
    from bench.estimate.model import PARTS

    overhead = Overhead("cpu", (1 * GiB, 2 * GiB), (0.1, 0.5), 3)
    assert overhead.range(10 * GiB) == (11 * GiB, 24 * GiB)
    parts = dict.fromkeys(PARTS, 0)
    fits = Estimate("dpo", "bf16", parts | {"weights": 10 * GiB}, Step(1, 1, 1))
    over = Estimate("kto", "bf16", parts | {"weights": 10 * GiB + 1}, Step(1, 1, 1))
    text = table([fits, over], [overhead, overhead])
    assert "| **10.00** | 11.00–24.00 | yes | yes | yes |" in text
    assert "| **10.00** | 11.00–24.00 | tight | yes | yes |" in text  # a byte over: its top passes 24 GiB
    assert Overhead.of("cpu", []).range(5) == (5, 5)  # nothing measured: the tensor peak alone


def test_the_cpu_overhead_is_read_from_the_committed_estimate_check_records(tmp_path):
    records = sorted(REFERENCE.glob("estimate-check-cpu*/**/metrics.json"))
    cpu = measured("cpu")
    assert cpu.kind == "cpu" and cpu.runs == len(records) > 0
    assert 0 < cpu.runtime[0] <= cpu.runtime[1]
    assert 0 < cpu.allocator[0] <= cpu.allocator[1] < 1
    first = json.loads(records[0].read_text())
    assert cpu.runtime[0] <= first["mem/runtime_bytes"] <= cpu.runtime[1]
    unmeasured = measured("cpu", tmp_path / "results" / "reference")  # an installed package: no results/
    assert unmeasured.kind == "unmeasured" and unmeasured.runs == 0 and "no measured overhead" in unmeasured.describe()


def test_a_cuda_estimate_borrows_the_cpus_overhead_until_a_gpu_run_is_committed(tmp_path, capsys):
    cpu, cuda = measured("cpu"), measured("cuda")
    assert (cuda.runtime, cuda.allocator, cuda.runs) == (cpu.runtime, cpu.allocator, cpu.runs)
    assert (
        cuda.note.startswith(
            f"no GPU run measured yet: the range uses the CPU's runtime and allocator, measured on {cpu.runs} runs"
        )
        and "make gpu-check" in cuda.note
        and not cpu.note
    )
    assert main(["model=tiny", "method=dpo"]) == 0  # device=auto: a GPU's budgets, so a GPU's overhead
    assert f"Note: {cuda.note}" in capsys.readouterr().out
    assert main(["model=tiny", "method=dpo", "device=cpu"]) == 0
    out = capsys.readouterr().out
    assert "no GPU run measured yet" not in out and f"measured on {cpu.runs} runs" in out
    # a committed CUDA run: its caching allocator's reserve beyond the allocated peak, and no borrowing
    run = tmp_path / "gpu-check-h100" / "grpo-none"
    run.mkdir(parents=True)
    run.joinpath("metrics.json").write_text(
        json.dumps(
            {
                "status": "success",
                "sys/device": "cuda",
                "sys/peak_mem_bytes": 6 * GiB,
                "sys/peak_reserved_bytes": 8 * GiB,
                "mem/runtime_bytes": 0,
            }
        )
    )
    # ... whose runtime (the CUDA context) the harness does not record: the CPU process's stands in, said so
    cpu_run = tmp_path / "estimate-check-cpu" / "dpo"
    cpu_run.mkdir(parents=True)
    cpu_run.joinpath("metrics.json").write_text(
        json.dumps(
            {
                "status": "success",
                "sys/device": "cpu",
                "sys/peak_mem_bytes": 2 * GiB,
                "mem/other_bytes": GiB // 2,
                "mem/runtime_bytes": GiB // 2,
            }
        )
    )
    (tmp_path / "estimate-check-cpu" / "damaged").mkdir()
    (tmp_path / "estimate-check-cpu" / "damaged" / "metrics.json").write_text('{"status": "succ')  # left out
    own = measured("cuda", tmp_path)
    assert (own.kind, own.runtime, own.allocator, own.runs) == ("cuda", (GiB // 2, GiB // 2), (0.25, 0.25), 1)
    assert own.note.startswith("the CUDA runs record no runtime")


def _check_row(tensor_peak: int, runtime: int | None, measured_peak: int, other: int) -> dict:
    from bench.studies.estimate_check import PARTS

    parts = {part: (100, 100) for part in PARTS} | {
        "peak": (tensor_peak + (runtime or 0), measured_peak),
        "other": other,
        "head_tile": 0,
    }
    return {"shape": "s", "method": "m", "parts": parts | ({} if runtime is None else {"runtime": runtime})}


def test_the_checks_table_counts_measured_peaks_in_a_leave_one_out_range():
    """Two runs with a quarter of their peak left over and one with half: left out, the third's range takes
    the others' quarter and misses its peak; counted in its own range, it would not. A row without its
    runtime (a table from before) gets no range."""
    from bench.studies.estimate_check import markdown

    rows = [
        _check_row(100, 50, 200, 50),
        _check_row(100, 50, 200, 50),
        _check_row(100, 50, 300, 150),
        _check_row(100, None, 200, 50),
    ]
    text = markdown(rows)
    assert "Measured peak within the predicted range: 2 of 3 (" in text and "leave-one-out" in text
    lines = text.splitlines()
    assert lines[2].endswith(f"| {150 / GiB:.2f}–{300 / GiB:.2f} |") and lines[4].endswith(" ✗ |")
    assert lines[5].endswith("| – |")


@pytest.mark.parametrize("folder", ["estimate-check-cpu", "estimate-check-cpu-bf16", "estimate-check-cpu-trl1.16"])
def test_the_committed_check_tables_are_their_json_and_records_table(folder):
    """The committed tables (the README's k of n) are what markdown() makes of their JSON today."""
    from bench.studies.estimate_check import markdown, rows_of

    out = REFERENCE / folder
    assert markdown(rows_of(out)) + "\n" == (out / "estimate-check.md").read_text()
