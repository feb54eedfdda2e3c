"""`make estimate-check`: bench.estimate's predictions against measured runs on this machine, part by part.

Each configuration is trained for two steps in its own process (memory is that run's alone), and its
measured parts are set beside what `bench.estimate` predicts for it (at the run's own prompt length):
frozen weights (every model's), trainable weights, gradients, optimizer state, the tensors saved for backward
(activations, logits), the KV cache of rollouts. Under the current lock (TRL 1.16, whose chunked LM head saves
nothing vocabulary-wide) the methods its TRL lacks (PPO, BCO) are left out. The whole peak is set beside the
measured one too, with what the measurement counts and the estimate does not (the process's runtime, the
allocator's left-over) named, and whether it falls in bench.estimate's range (the runtime and the allocator's
share measured on the table's other runs).
Target: every tensor part within ±10%.

    python -m bench.studies.estimate_check [--quick] [--out DIR]
    python -m bench.studies.estimate_check --table DIR   # DIR's table again from its JSON, no runs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench.config.compose import compose
from bench.estimate.model import estimate
from bench.estimate.overhead import Overhead, RunOverhead, run_overhead
from bench.records import store
from bench.run.runner import run
from bench.system import cache
from methods import why_unavailable

GiB = 2**30
METHODS = ("sft", "dpo", "kto", "orpo", "grpo", "ppo")  # the headline's five and the supervised baseline
# Every other adapter, on the tiny model: RLOO, online DPO, CPO (and SimPO, its loss type) and BCO.
OTHERS = ("rloo", "online_dpo", "cpo", "bco")
SMOKE = ["debug=smoke", "eval=none", "logger=none", "train.args.max_steps=2"]
# (label, overrides): four shapes (the tiny model, the embedded model's architecture, two larger ones, 0.5B and
# 1B; the last three with random weights, so that completions run to their full length and nothing is
# downloaded), two batch sizes and two completion lengths on the tiny model.
SHAPES = {
    "tiny b2 c16": ["model=tiny", "train.args.per_device_train_batch_size=2", "train.max_completion_length=16"],
    "tiny b4 c16": ["model=tiny", "train.args.per_device_train_batch_size=4", "train.max_completion_length=16"],
    "tiny b2 c32": ["model=tiny", "train.args.per_device_train_batch_size=2", "train.max_completion_length=32"],
    "smollm2 b2 c16": [
        "model=smollm2-135m",
        "model.weights=random",
        "train.args.per_device_train_batch_size=2",
        "train.max_completion_length=16",
    ],
    # Qwen3-0.6B's layer shapes (28 layers, width 1024, 16 heads over 8 KV heads) with SmolLM2's vocabulary:
    # its own tokenizer is on the hub, which this machine cannot reach; 0.49B parameters.
    "0.5B b2 c16": [
        "model=smollm2-135m",
        "model.weights=random",
        "model.arch.hidden_size=1024",
        "model.arch.intermediate_size=3072",
        "model.arch.num_hidden_layers=28",
        "model.arch.num_attention_heads=16",
        "model.arch.num_key_value_heads=8",
        "model.arch.head_dim=128",
        "train.args.per_device_train_batch_size=2",
        "train.max_completion_length=16",
    ],
    # Llama-3.2-1B's layer shapes (16 layers, width 2048, 32 heads over 8 KV heads of 64) with SmolLM2's
    # vocabulary, for the same reason; 1.07B parameters, 4.3 GB in fp32.
    "1B b2 c16": [
        "model=smollm2-135m",
        "model.weights=random",
        "model.arch.hidden_size=2048",
        "model.arch.intermediate_size=8192",
        "model.arch.num_hidden_layers=16",
        "model.arch.num_attention_heads=32",
        "model.arch.num_key_value_heads=8",
        "model.arch.head_dim=64",
        "train.args.per_device_train_batch_size=2",
        "train.max_completion_length=16",
    ],
}
# Full fine-tuning with activation checkpointing, DPO (a reference copy beside the trained model): the
# common full fine-tuning setting, on the tiny model and the embedded model (its own weights: TRL loads a
# full run's reference from the policy's path, which a random-weight model built in memory does not have).
CHECKPOINTED = ["peft=none", "train.args.activation_checkpointing=true"]
FULL = {
    "tiny b2 c16 full ckpt": [*SHAPES["tiny b2 c16"], *CHECKPOINTED],
    "smollm2 b2 c16 full ckpt": [
        "model=smollm2-135m",
        "train.args.per_device_train_batch_size=2",
        "train.max_completion_length=16",
        *CHECKPOINTED,
    ],
}
# predicted part(s) -> the measured key they are checked against
PARTS = {
    "weights": (("weights", "extra_models"), "mem/weights_bytes"),
    "trainable": (("trainable",), "mem/trainable_bytes"),
    "gradients": (("gradients",), "mem/gradients_bytes"),
    "optimizer": (("optimizer",), "mem/optimizer_bytes"),
    "activations": (("activations",), "mem/max_activations_bytes"),
    "logits": (("logits",), "mem/max_logits_bytes"),
    # autocast's bf16 copies of the trained weights a matmul reads (bf16 and fp16 runs only)
    "autocast copies": (("autocast_copies",), "mem/max_autocast_copies_bytes"),
    "kv cache": (("kv_cache",), "mem/max_kv_cache_bytes"),
}
TOLERANCE = 0.10


# bf16 matmuls run ~25x slower on this CPU than fp32 ones: the bf16 check keeps the two small shapes (every
# adapter on the tiny model, the headline's six on the embedded model's architecture), and full fine-tuning
# of the tiny model, where autocast copies every linear weight (fp32 master weights, bf16 matmuls).
BF16_SHAPES = ("tiny b2 c16", "smollm2 b2 c16")
BF16_FULL = {"tiny b2 c16 full": [*SHAPES["tiny b2 c16"], "peft=none"]}


def configurations(quick: bool, precision: str = "fp32") -> list[tuple[str, str, list[str]]]:
    out = []
    for label, overrides in SHAPES.items():
        if (quick and label != "tiny b2 c16") or (precision != "fp32" and label not in BF16_SHAPES):
            continue
        methods = (
            ("sft", "dpo", "grpo")
            if label.startswith(("0.5B", "1B"))  # the larger two: three, for time
            else (*METHODS, *OTHERS)
            if label.startswith("tiny")
            else METHODS
        )
        out += [(label, m, [f"method={m}", *overrides, "train.num_prompts=4"]) for m in methods]
    if not quick and precision == "fp32":
        out += [(label, "dpo", ["method=dpo", *overrides, "train.num_prompts=4"]) for label, overrides in FULL.items()]
    if not quick and precision != "fp32":
        out += [
            (label, m, [f"method={m}", *overrides, "train.num_prompts=4"])
            for label, overrides in BF16_FULL.items()
            for m in ("sft", "dpo", "grpo")
        ]
    return out


def compare(record: dict, predicted) -> dict:
    row: dict[str, Any] = {}
    for part, (keys, measured_key) in PARTS.items():
        pred = sum(predicted.parts.get(k, 0) for k in keys)
        measured = record.get(measured_key)
        row[part] = (pred, measured)
    runtime = record.get("mem/runtime_bytes") or 0
    row["peak"] = (predicted.peak + runtime, record.get("sys/peak_mem_bytes"))
    row["runtime"] = runtime  # the range's leave-one-out overhead (markdown) needs each run's runtime apart
    row["other"] = record.get("mem/other_bytes")
    row["head_tile"] = predicted.parts["head_tile"]  # transient (TRL 1.16's chunked LM head): in the peak only
    return row


def _ratio(pred, measured) -> str:
    if not measured:
        return "–" if not pred else f"{pred / GiB:.3f} GiB / 0"
    r = pred / measured
    mark = "" if abs(r - 1) <= TOLERANCE else " ✗"
    return f"{r:.2f}{mark}"


def _overhead(parts: dict) -> RunOverhead | None:
    """A row's measured overhead, as bench.estimate.overhead reads it from a CPU run's record."""
    return run_overhead(
        {
            "status": "success",
            "sys/device": "cpu",
            "sys/peak_mem_bytes": parts["peak"][1],
            "mem/runtime_bytes": parts.get("runtime"),
            "mem/other_bytes": parts["other"],
        }
    )


def ranges(rows: list[dict]) -> list[tuple[int, int] | None]:
    """Each row's predicted range (bench.estimate's), its overhead measured on the table's other rows: leave
    one out, so that a run's own runtime and left-over never predict its own peak. None where the row lacks a
    figure."""
    runs = [_overhead(r["parts"]) for r in rows]
    out = []
    for i, (row, own) in enumerate(zip(rows, runs, strict=True)):
        others = [run for j, run in enumerate(runs) if j != i and run]
        tensor_peak = row["parts"]["peak"][0] - (own.runtime if own else 0)
        out.append(Overhead.of("cpu", others).range(tensor_peak) if own and others else None)
    return out


def _span(span: tuple[int, int] | None, measured: int) -> str:
    if span is None:
        return "–"
    mark = "" if span[0] <= measured <= span[1] else " ✗"
    return f"{span[0] / GiB:.2f}–{span[1] / GiB:.2f}{mark}"


def markdown(rows: list[dict]) -> str:
    shown = [p for p in PARTS if any(p in r["parts"] for r in rows)]  # a table from before a part was checked lacks it
    head = ["shape", "method", *shown, "peak (+ runtime)", "allocator left-over (GiB)", "range (GiB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    spans = ranges(rows)
    for r, span in zip(rows, spans, strict=True):
        ratios = {p: _ratio(*r["parts"][p]) for p in shown}
        if r["parts"].get("head_tile") and r["parts"]["logits"] == (0, 0):
            ratios["logits"] = "none saved (chunked head)"  # predicted and measured: nothing vocabulary-wide
        cells = [
            r["shape"],
            r["method"],
            *ratios.values(),
            _ratio(*r["parts"]["peak"]),
            "–" if r["parts"]["other"] is None else f"{r['parts']['other'] / GiB:.2f}",
            _span(span, r["parts"]["peak"][1]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    parts = [(r["parts"][p]) for r in rows for p in shown if r["parts"][p][1]]
    within = sum(abs(pred / m - 1) <= TOLERANCE for pred, m in parts)
    lines += [
        "",
        f"predicted / measured per part; ✗ outside ±{TOLERANCE:.0%}. Tensor parts within: {within} of {len(parts)} "
        "(parts a run does not hold, such as an offline method's KV cache, are left out).",
    ]
    peaks = [pred / m for pred, m in (r["parts"]["peak"] for r in rows) if m]
    if peaks:  # the whole peak is not one of the parts: said apart, with what it leaves out
        lines.append(
            f"Whole peak (the tensor parts and the process's runtime) / measured RSS: {min(peaks):.2f}–"
            f"{max(peaks):.2f}; the allocator's left-over comes on top."
        )
    checked = [(span, r["parts"]["peak"][1]) for r, span in zip(rows, spans, strict=True) if span]
    if checked:
        within = sum(lo <= m <= hi for (lo, hi), m in checked)
        lines.append(
            f"Measured peak within the predicted range: {within} of {len(checked)} (bench.estimate's range: "
            "the tensor peak, the least runtime on top, up to the most runtime and the largest allocator's "
            "share of the peak; each run's from the other runs of this table, leave-one-out, so a run never "
            "predicts itself; ✗ outside)."
        )
    return "\n".join(lines)


def folder(label: str, method: str) -> str:
    return f"{label.replace(' ', '_')}_{method}"


def rows_of(out: Path) -> list[dict]:
    """A finished check's rows, from its JSON: a row written before rows held the runtime takes it from its
    run's record beside (the figure compare() reads), so that its range can be computed."""
    rows = store.read(out / "estimate-check.json")["rows"]
    for r in rows:
        if "runtime" not in r["parts"]:
            r["parts"]["runtime"] = (
                store.read(out / folder(r["shape"], r["method"]) / "metrics.json").get("mem/runtime_bytes") or 0
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.estimate_check", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny model at one batch and length only")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="the runs' precision (bf16: CPU autocast, the dtype rules of a GPU run; two small shapes)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/estimate-check") / time.strftime("%Y-%m-%d_%H-%M-%S"))
    parser.add_argument(
        "--table",
        type=Path,
        metavar="DIR",
        help="only write DIR's estimate-check.md again from its estimate-check.json (no runs)",
    )
    args = parser.parse_args(argv)
    if args.table:
        if not (args.table / "estimate-check.json").is_file():
            parser.error(
                f"--table {args.table}: no estimate-check.json there; give a folder this study wrote "
                "(results/reference/estimate-check-cpu, for one)."
            )
        text = markdown(rows_of(args.table))
        cache.write_text(args.table / "estimate-check.md", text + "\n")
        print(text)
        return 0
    stamp = store.provenance()
    rows = []
    precision = [f"precision={args.precision}"]
    for label, method, overrides in configurations(args.quick, args.precision):
        cfg = compose([*overrides, *SMOKE, *precision])
        if why_unavailable(cfg.method):  # PPO and BCO under the current lock
            continue
        cfg.output_dir = str(args.out / folder(label, method))
        record = run(cfg)
        if record.get("status") != "success":
            print(f"estimate-check: {label} {method}: {record.get('status')}: {record.get('error')}", flush=True)
            continue
        prompt = int(record.get("data/max_prompt_tokens") or cfg.train.max_prompt_length)
        completion = None
        if method == "sft":  # the gold answers are shorter than the limit: the rows the trainer saw, padded
            seen = int(record["train/steps"]) * int(cfg.train.args.per_device_train_batch_size)
            completion = int(record["train/tokens_trained"]) // seen - prompt
        predicted = estimate(
            compose([*overrides, *SMOKE, "device=cpu", *precision]), prompt_tokens=prompt, completion_tokens=completion
        )
        rows.append(
            {"shape": label, "method": method, "parts": compare(record, predicted), "step": vars(predicted.step)}
        )
        print(f"estimate-check: {label} {method}: done", flush=True)
    text = markdown(rows)
    cache.write_text(args.out / "estimate-check.md", text + "\n")
    cache.write_json(args.out / "estimate-check.json", {**stamp, "rows": rows}, indent=1)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
