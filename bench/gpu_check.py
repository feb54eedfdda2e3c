"""`make gpu-check`: every CUDA path of the harness at smoke size on one GPU, with no network and no
weights: the headline methods with LoRA and with QLoRA (nf4), SFT with full fine-tuning, GRPO with
merged rollouts, and the decode table. It runs the embedded model's architecture with random weights,
since accuracy is not its subject, and writes one table to `results/gpu-check/<gpu>/`.

    python -m bench.gpu_check                      # on a CUDA machine: run every check, then the table
    python -m bench.gpu_check model.name_or_path=DIR   # tokenizer files from DIR (no embedded package)

Without CUDA it validates every configuration (in seconds, no weights), says in one line that there is
no GPU, and exits 0 when all of them validate: the suite runs it that way. On a GPU it exits non-zero if
any run fails.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bench import BenchError

HEADLINE = ("grpo", "ppo", "dpo", "kto", "orpo")
COMMON = ["debug=smoke", "eval=none", "logger=none", "model.weights=random"]


def checks() -> list[tuple[str, list[str]]]:
    """(name, overrides) of every run the check makes."""
    out = [(f"{m}-{q}", [f"method={m}", f"quant={q}"]) for q in ("none", "nf4") for m in HEADLINE]
    out.append(("sft-full", ["method=sft", "peft=none"]))
    # Merged rollouts are exact only in fp32 (refused in bf16/fp16: the frozen base would drift).
    out.append(("grpo-merged-rollouts", ["method=grpo", "train.rollout=merged", "precision=fp32"]))
    return out


COLUMNS = [  # (record key, header, scale)
    ("status", "status", None),
    ("sys/peak_mem_bytes", "peak allocated (GiB)", 2**-30),
    ("sys/peak_reserved_bytes", "peak reserved (GiB)", 2**-30),
    ("mem/weights_bytes", "weights (GiB)", 2**-30),
    ("mem/trainable_bytes", "trainable (GiB)", 2**-30),
    ("mem/optimizer_bytes", "optimizer (GiB)", 2**-30),
    ("mem/activations_bytes", "activations (GiB)", 2**-30),
    ("mem/logits_bytes", "logits (GiB)", 2**-30),
    ("mem/kv_cache_bytes", "KV cache (GiB)", 2**-30),
    ("train/trainable_dtype", "trainable dtype", None),
    ("train/step_time_s", "step (s)", 1),
    ("train/tokens_per_s", "tokens/s", 1),
    ("perf/mfu", "MFU (%)", 100),
]


def table(rows: dict[str, dict]) -> str:
    head = "| check | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, record in rows.items():
        cells = []
        for key, _, scale in COLUMNS:
            value = record.get(key)
            cells.append("" if value is None else f"{value * scale:.3g}" if scale else str(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def validate_all(overrides: list[str]) -> list[str]:
    """Every configuration through the harness's validation on this machine: the problems found."""
    from bench.config import compose, validate
    from bench.models import resolve_runtime

    problems = []
    for name, own in checks():
        try:
            cfg = compose([*COMMON, *own, *overrides])
            cfg.output_dir = "/nonexistent/gpu-check"  # validation writes nothing
            validate(cfg, resolve_runtime(cfg.device, cfg.precision))
        except BenchError as err:
            problems.append(f"{name}: {err}")
    return problems


def main(argv: list[str] | None = None) -> int:
    import torch

    overrides = sys.argv[1:] if argv is None else argv
    if not torch.cuda.is_available():
        problems = validate_all(overrides)
        for problem in problems:
            print(f"gpu-check: {problem}", file=sys.stderr)
        print(f"gpu-check: no CUDA GPU on this machine; nothing was run ({len(checks()) - len(problems)} of "
              f"{len(checks())} configurations validate).")
        return 1 if problems else 0
    return run_all(overrides)


def run_all(overrides: list[str]) -> int:
    import torch

    from bench import cache, decode
    from bench.config import compose
    from bench.records import versions
    from bench.run import run

    props = torch.cuda.get_device_properties(0)
    out = Path("results/gpu-check") / re.sub(r"[^A-Za-z0-9._-]+", "-", props.name).strip("-")
    print(f"gpu-check: {props.name}, compute capability {props.major}.{props.minor}, bf16 "
          f"{torch.cuda.is_bf16_supported()}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"bitsandbytes {versions().get('versions/bitsandbytes')}", flush=True)
    rows = {}
    for name, own in checks():
        cfg = compose([*COMMON, *own, *overrides])
        cfg.output_dir = str(out / name)
        rows[name] = run(cfg)
        print(f"gpu-check: {name}: {rows[name]['status']}", flush=True)
    decoded = decode.main(["--batch", "1,16", "--out", str(out / "decode.json"), "model.weights=random", *overrides])
    text = table(rows)
    cache.write_text(out / "table.md", f"# gpu-check on {props.name}\n\n{text}\n")
    cache.write_json(out / "table.json", {"gpu": props.name, "runs": rows, **versions()}, indent=1)
    print(text)
    failed = [name for name, record in rows.items() if record["status"] != "success"]
    if failed or decoded != 0:
        print(f"gpu-check: failed: {', '.join(failed) or 'decode'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
