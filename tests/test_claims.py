"""Each claim's verdict rule on made-up results: every rule can support, refute and leave a claim
inconclusive; and `python -m bench.studies.claims` on a made-up sweep writes the table, the JSON and the plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.config.finetuning import FULL
from bench.studies.claims import names
from bench.studies.claims.__main__ import main
from bench.studies.claims.rules import (
    INCONCLUSIVE,
    REFUTED,
    SUPPORTED,
    Verdict,
    all_of,
    improves,
    not_worse,
    saves,
    steadier,
)


@pytest.mark.parametrize(
    "a, b, verdict",
    [
        ([90.0, 91.0, 90.5], [100.0, 101.0, 100.5], SUPPORTED),  # 10% lower, tight seeds
        ([99.0, 100.0, 99.5], [100.0, 101.0, 100.5], REFUTED),  # 1% lower: under the 5% that counts
        ([80.0, 100.0, 90.0], [100.0, 101.0, 100.5], INCONCLUSIVE),  # 10% lower on average, seeds spread wide
    ],
)
def test_saves(a, b, verdict):
    result = saves(a, b, "peak memory", margin=0.05)
    assert result.verdict == verdict, result.evidence
    assert (result.budget != "") == (verdict == INCONCLUSIVE)
    if verdict == INCONCLUSIVE:
        assert "seeds" in result.budget and int(result.budget.split()[1]) > 3


def test_saves_with_one_seed_says_it_has_no_spread():
    result = saves([90.0], [100.0], "time")
    assert result.verdict == SUPPORTED and "one seed" in result.evidence


ITEMS = 200


def _items(correct: int) -> list[float]:
    return [1.0] * correct + [0.0] * (ITEMS - correct)


@pytest.mark.parametrize(
    "a, b, verdict",
    [
        (_items(100), _items(100), SUPPORTED),  # the same items right: delta 0, interval inside ±0.05
        (_items(40), _items(100), REFUTED),  # 30 points worse
        (_items(95), _items(100), INCONCLUSIVE),  # 2.5 points worse: the interval straddles −0.05
    ],
)
def test_not_worse(a, b, verdict):
    result = not_worse(a, b, "accuracy", margin=0.05)
    assert result.verdict == verdict, result.evidence
    if verdict == INCONCLUSIVE:
        assert result.budget.startswith("about ") and int(result.budget.split()[1]) > ITEMS


@pytest.mark.parametrize(
    "trained, verdict",
    [(_items(140), SUPPORTED), (_items(60), REFUTED), (_items(103), INCONCLUSIVE)],
)
def test_improves(trained, verdict):
    result = improves(trained, _items(100), "training")
    assert result.verdict == verdict, result.evidence


@pytest.mark.parametrize(
    "a, b, verdict",
    [
        ([0.500, 0.501, 0.502, 0.500], [0.1, 0.5, 0.9, 0.3], SUPPORTED),
        ([0.1, 0.5, 0.9, 0.3], [0.500, 0.501, 0.502, 0.500], REFUTED),
        ([0.40, 0.50, 0.45], [0.35, 0.55, 0.45], INCONCLUSIVE),
    ],
)
def test_steadier(a, b, verdict):
    result = steadier(a, b, "final accuracy")
    assert result.verdict == verdict, result.evidence
    if verdict == INCONCLUSIVE:
        assert "seeds" in result.budget or "too close" in result.budget


def test_a_claim_of_parts_is_as_strong_as_its_weakest_part():
    ok, no, maybe = (Verdict(v, v) for v in (SUPPORTED, REFUTED, INCONCLUSIVE))
    assert all_of([ok, ok]).verdict == SUPPORTED
    assert all_of([ok, maybe]).verdict == INCONCLUSIVE
    assert all_of([maybe, no, ok]).verdict == REFUTED
    with pytest.raises(ValueError):
        Verdict("probably", "")


def _record(method: str, mode: str, seed: int, peak: float, correct: int) -> dict:
    items = _items(correct)
    return {
        "method": method,
        "model": "m",
        "task": "arithmetic",
        "quant": "none",
        "peft/mode": mode,
        "peft/r": 16 if mode == "lora" else None,
        "weights": "pretrained",
        "seed": seed,
        "status": "success",
        "sys/peak_mem_bytes": peak,
        "eval/accuracy": float(np.mean(items)),
        "eval/items": items,
        "eval/base_items": _items(50),
    }


def test_the_claims_report_judges_a_made_up_sweep(tmp_path):
    """LoRA at 60% of full fine-tuning's memory and one item fewer right, 3 seeds: supported."""
    sweep = tmp_path / "lora_memory"
    job = 0
    for method in ("grpo", "dpo", "sft"):
        for mode, peak, correct in (("lora", 3.0e9, 119), (FULL, 5.0e9, 120)):
            for seed in range(3):
                folder = sweep / f"{job}_{method}_{mode}_seed{seed}"
                folder.mkdir(parents=True)
                record = _record(method, mode, seed, peak + seed * 1e6, correct)
                (folder / "metrics.json").write_text(json.dumps(record))
                job += 1
    assert main([str(tmp_path)]) == 0
    data = json.loads((tmp_path / "claims.json").read_text())
    assert data.pop("_provenance")["git/commit"]  # the claims file says which commit judged them
    assert set(data) == set(names())
    assert data["lora_memory"]["verdict"] == SUPPORTED and len(data["lora_memory"]["parts"]) == 6
    assert data["grpo_critic"]["verdict"] == "not run" and "experiment=claims/grpo_ppo" in data["grpo_critic"]["budget"]
    assert data["lora_formula"]["verdict"] == REFUTED  # SmolLM2's MLP and GQA projections are not d × d
    assert data["low_rank"]["verdict"] == INCONCLUSIVE  # its own sweep has no runs: nothing at r=1
    text = (tmp_path / "claims.md").read_text()
    assert "| LoRA saves memory" in text and "**supported**" in text
    assert (tmp_path / "claims.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _offline(n: int):
    from bench.recipe.data import BuildStats, OfflineData, interleave

    pairs, desirable, undesirable = [], [], []
    for i in range(n):
        prompt = [{"role": "user", "content": f"q{i}"}]
        good, bad = [{"role": "assistant", "content": f"good{i}"}], [{"role": "assistant", "content": f"bad{i}"}]
        pairs.append({"prompt": prompt, "chosen": good, "rejected": bad})
        desirable.append({"prompt": prompt, "completion": good, "label": True})
        undesirable.append({"prompt": prompt, "completion": bad, "label": False})
    return OfflineData(pairs, interleave(desirable, undesirable, 0), BuildStats(pairs=n), "clean")


def test_label_noise_flips_a_pair_and_its_two_kto_labels_together():
    from bench.recipe.data import flip_labels

    clean = _offline(1000)
    assert flip_labels(clean, 0.0, seed=0) is clean
    noisy = flip_labels(clean, 0.4, seed=0)
    flipped = [i for i, p in enumerate(noisy.pairs) if p["chosen"][0]["content"].startswith("bad")]
    assert noisy.stats.flipped == len(flipped) and 350 < len(flipped) < 450 and noisy.stats.label_noise == 0.4
    wrong = {
        r["prompt"][0]["content"]
        for r in noisy.unpaired
        if r["label"] == r["completion"][0]["content"].startswith("bad")
    }
    assert wrong == {f"q{i}" for i in flipped}  # exactly the flipped pairs' KTO examples, both of them
    assert sum(r["label"] for r in noisy.unpaired) == noisy.stats.kto_desirable == 1000
    assert noisy.fingerprint != clean.fingerprint and flip_labels(clean, 0.4, seed=0).pairs == noisy.pairs
    assert flip_labels(clean, 0.4, seed=1).pairs != noisy.pairs  # seeded by the run's seed


def test_label_noise_outside_its_range_is_refused_before_any_work(compose, tmp_path):
    from bench import BenchError
    from bench.config.validation import validate
    from bench.system.runtime import resolve_runtime

    with pytest.raises(BenchError, match=r"data.label_noise=0.7: a rate in \[0, 0.5\]"):
        validate(compose("method=dpo", "+data.label_noise=0.7", output_dir=tmp_path), resolve_runtime("cpu", "auto"))


def test_kto_noise_reads_the_recorded_rate_and_compares_the_drops(tmp_path):
    """DPO loses 40 items at rate 0.4, KTO 5: the drop difference is clearly positive, so supported (the clean
    runs lack the key, as records made before it existed do)."""
    from bench.studies.claims import get, runs_of

    sweep = tmp_path / "label_noise"
    job = 0
    for method, clean, noisy in (("dpo", 120, 80), ("kto", 120, 115)):
        for rate, correct in ((0.0, clean), (0.2, (clean + noisy) // 2), (0.4, noisy)):
            for seed in range(2):
                folder = sweep / f"{job}_{method}_seed{seed}"
                folder.mkdir(parents=True)
                # Clean runs are reused from a sweep recorded before the key existed: they lack it.
                record = _record(method, "lora", seed, 3e9, correct) | ({"data/label_noise": rate} if rate else {})
                (folder / "metrics.json").write_text(json.dumps(record))
                job += 1
    verdict = get("kto_noise").judge(runs_of(tmp_path, ("label_noise",)))
    assert verdict.verdict == SUPPORTED, verdict.evidence
    assert verdict.figures["dpo_accuracy_at_0.4"] == 0.4 and verdict.figures["kto_accuracy_at_0.0"] == 0.6


@pytest.mark.parametrize("orpo_s, verdict", [(100.0, SUPPORTED), (200.0, REFUTED)])
def test_orpo_one_step_charges_the_pipeline_both_stages(tmp_path, orpo_s, verdict):
    """ORPO against SFT→DPO: the pipeline's row carries both stages' time (80 s + 100 s); ORPO at 100 s
    saves 44% (supported), at 200 s costs more (refuted), at the same memory and accuracy."""
    from bench.studies.claims import get, runs_of

    sweep = tmp_path / "orpo_pipeline"
    for seed in range(3):
        for job, (method, extra) in enumerate(
            (
                ("orpo", {"time/full_s": orpo_s + seed}),
                (
                    "sft→dpo",
                    {"time/full_s": 100.0 + seed, "pipeline/full_s": 180.0 + 2 * seed, "pipeline/peak_mem_bytes": 3e9},
                ),
            )
        ):
            folder = sweep / f"{2 * seed + job}_{method.split('→')[-1]}_seed{seed}"
            folder.mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps(_record(method, "lora", seed, 3e9, 120) | extra))
    result = get("orpo_one_step").judge(runs_of(tmp_path, ("orpo_pipeline",)))
    assert result.verdict == verdict, result.evidence
    assert "against 182" in result.parts[0].evidence  # the pipeline's mean total, not its last stage's 101 s


@pytest.mark.parametrize("merged_ms, verdict", [(10.0, SUPPORTED), (14.0, REFUTED)])
def test_adapter_serving_judges_the_measured_latencies(tmp_path, merged_ms, verdict):
    """Merged at the base's 10 ms per token (supported) or 40% slower (refuted); a 0.01 ms switch."""
    from bench.studies.claims import get
    from bench.studies.claims.__main__ import verdicts

    claim = get("adapter_serving")
    assert verdicts(tmp_path)["adapter_serving"][1] is None  # not measured yet: the command to run
    jitter = [0.0, 0.1, -0.1, 0.05, -0.05]
    data = {
        "decode_ms": {
            "base": [10 + j for j in jitter],
            "adapter": [13 + j for j in jitter],
            "merged": [merged_ms + j for j in jitter],
        },
        "switch_ms": {"set_adapter": [0.01] * 5, "load_adapter": [40.0] * 5, "remerge": [90.0] * 5},
    }
    (tmp_path / "adapter_serving").mkdir()
    (tmp_path / "adapter_serving" / "serving.json").write_text(json.dumps(data))
    result = claim.judge(None, tmp_path)
    assert result.verdict == verdict, result.evidence
    assert "+30%" in result.evidence and "load from disk 40 ms" in result.evidence
