"""`make gpu-check`: every CUDA path of the harness at smoke size on one GPU, with no network and no
weights: the headline methods with LoRA and with QLoRA (nf4), SFT with full fine-tuning, GRPO with
merged rollouts, and the decode table. It runs the embedded model's architecture with random weights,
since accuracy is not its subject, and writes one table to `results/gpu-check/<gpu>/`. Each run's peak
is set beside what `bench.estimate` predicts for its config (issue 34's check on the CUDA allocator:
target ±10% of the peak allocated).

    python -m bench.studies.gpu_check                      # on a CUDA machine: run every check, then the table
    python -m bench.studies.gpu_check device=cuda:2        # on GPU 2 of several (default: the first it sees)
    python -m bench.studies.gpu_check model.name_or_path=DIR   # tokenizer files from DIR (no embedded package)
    python -m bench.studies.gpu_check --rehearse           # the same runs on this CPU in bf16, on the tiny model

On a node with several GPUs it runs on one, which it pins: every run's own process sees that GPU alone
(`device=cuda:N`, bench.system.devices.pinned_environment), and its first line and table.json name it (index,
name, UUID). Every run trains anew (`force=true`): a run folder's earlier record would otherwise be kept as
done, though the config hash leaves out the commit that the table is stamped with.

The rehearsal takes the paths a GPU takes where a CPU can: bf16 weights and rollouts outside autocast,
QLoRA's 4-bit base (bitsandbytes runs on CPU too), fp32 master weights for full fine-tuning. What it
cannot show is CUDA itself: the allocator's peaks, kernels, several GPUs.

Without CUDA it validates every configuration (in seconds, no weights), says in one line that there is
no GPU, and exits 0 when all of them validate: the suite runs it that way. A machine with an NVIDIA driver
that this torch cannot use (a CPU-only torch, or a driver too old for its CUDA) is no machine without a GPU:
it exits 2 with the cause. On a GPU it exits non-zero if any run fails.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import methods
from bench import BenchError
from bench.config.compose import compose
from bench.records.store import provenance, versions
from bench.system import cache, devices

HEADLINE = ("grpo", "ppo", "dpo", "kto", "orpo")
COMMON = ["debug=smoke", "eval=none", "logger=none", "model.weights=random"]
BF16_ON_CPU = ["device=cpu", "precision=bf16"]  # a GPU's precision where TRL's configs accept it without one
REHEARSAL = [*BF16_ON_CPU, "model=tiny"]
# After the user's overrides: each run trains anew (a finished record with the same config hash, from an
# earlier commit, would be skipped as done and stamped with this one), in its own process (which is what
# sees the pinned GPU alone).
ALWAYS = ["force=true", "isolate=true"]


def left_out() -> list[str]:
    """The headline methods the installed TRL lacks (PPO on TRL 1.16): the check runs the others."""

    return [m for m in HEADLINE if methods.get(m).unavailable() is not None]


def quants() -> tuple[str, ...]:
    """LoRA, and QLoRA (nf4) where bitsandbytes is installed: an add-on that a slim wheelhouse can leave out
    (43 MB; `make wheelhouse SLIM=1 NO_BNB=1`). Without it the check runs the rest and says so."""
    return ("none", "nf4") if importlib.util.find_spec("bitsandbytes") is not None else ("none",)


def checks() -> list[tuple[str, list[str]]]:
    """(name, overrides) of every run the check makes."""
    headline = [m for m in HEADLINE if m not in left_out()]
    out = [(f"{m}-{q}", [f"method={m}", f"quant={q}"]) for q in quants() for m in headline]
    out.append(("sft-full", ["method=sft", "peft=none"]))
    # Merged rollouts are exact only in fp32 (refused in bf16/fp16: the frozen base would drift).
    out.append(("grpo-merged-rollouts", ["method=grpo", "train.rollout=merged", "precision=fp32"]))
    return out


COLUMNS = [  # (record key, header, scale)
    ("status", "status", None),
    ("sys/peak_mem_bytes", "peak allocated (GiB)", 2**-30),
    ("sys/peak_reserved_bytes", "peak reserved (GiB)", 2**-30),
    ("estimate/peak_bytes", "predicted peak (GiB)", 2**-30),
    ("estimate/ratio", "predicted / allocated", 1),
    ("mem/weights_bytes", "weights (GiB)", 2**-30),
    ("mem/trainable_bytes", "trainable (GiB)", 2**-30),
    ("mem/optimizer_bytes", "optimizer (GiB)", 2**-30),
    ("mem/activations_bytes", "activations (GiB)", 2**-30),
    ("mem/logits_bytes", "logits (GiB)", 2**-30),
    ("mem/autocast_copies_bytes", "autocast copies (GiB)", 2**-30),
    ("mem/kv_cache_bytes", "KV cache (GiB)", 2**-30),
    ("train/trainable_dtype", "trainable dtype", None),
    ("train/step_time_s", "step (s)", 1),
    ("train/tokens_per_s", "tokens/s", 1),
    ("perf/mfu", "MFU (%)", 100),
    ("perf/mfu_spec", "MFU of spec (%)", 100),
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


def predicted(cfg, record: dict) -> dict:
    """bench.estimate's peak for the run's own config at its longest prompt, and its ratio to the peak the
    run measured (the CUDA allocator's on a GPU; the process's RSS in the rehearsal, which also holds the
    runtime). Nothing for a run that did not succeed. An estimate that fails is recorded in the row, not
    raised: the runs it sits beside took paid GPU time, and the table must still be written."""
    from bench.estimate.model import estimate

    prompt, measured = record.get("data/max_prompt_tokens"), record.get("sys/peak_mem_bytes")
    if record.get("status") != "success" or not prompt or not measured:
        return {}
    try:
        peak = estimate(cfg, prompt_tokens=int(prompt)).peak
    except Exception as err:  # noqa: BLE001 - any failure of the estimate is reported beside the run, see above
        return {"estimate/error": f"{type(err).__name__}: {err}"}
    return {"estimate/peak_bytes": peak, "estimate/ratio": peak / measured}


def gpu_request(overrides: list[str]) -> str:
    """The GPU the check pins, as `device=cuda:N`: the user's device=cuda:N (or cuda: the first), else the
    first GPU this process sees. Anything but a GPU is refused: the check is of the CUDA paths."""
    given = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == "device"]
    kind, index = devices.parse(given[-1]) if given else ("cuda", 0)
    if kind not in ("cuda", "auto"):
        raise BenchError(
            f"gpu-check: device={given[-1]}: the check runs on a GPU; pick one with device=cuda:N "
            "(the rehearsal on this CPU is --rehearse)."
        )
    return f"cuda:{index or 0}"


def run_overrides(own: list[str], overrides: list[str], rehearse: bool, request: str | None) -> list[str]:
    """One check's overrides: the common ones, the check's own, the user's, the pinned GPU, then ALWAYS."""
    base = [*COMMON, *(REHEARSAL if rehearse else [])]  # a check's own settings win over these
    return [*base, *own, *overrides, *([f"device={request}"] if request else []), *ALWAYS]


def describe_gpu(gpu: devices.Device, visible: str | None) -> dict:
    """The pinned GPU as table.json records it: which one of how many, and how its runs were given it."""
    pinned = devices.pinned_environment(f"cuda:{gpu.index}", visible).get("CUDA_VISIBLE_DEVICES")
    return {
        "gpu": gpu.name,
        "gpu/index": gpu.index,
        "gpu/uuid": gpu.uuid,
        "gpu/visible": gpu.count,
        "gpu/runs_see": f"CUDA_VISIBLE_DEVICES={pinned}",
    }


def validate_all(overrides: list[str]) -> list[str]:
    """Every configuration through the harness's validation, in bf16 as on a GPU (and in the rehearsal):
    the problems found. The device stays this CPU (a device=cuda:N that picks the GPU is left out): TRL's
    configs refuse a GPU that is not there."""
    from bench.config.validation import validate
    from bench.system.runtime import resolve_runtime

    problems = []
    for name, own in checks():
        try:
            mine = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "device"]
            cfg = compose([*COMMON, *BF16_ON_CPU, *own, *mine])
            cfg.output_dir = "/nonexistent/gpu-check"  # validation writes nothing
            validate(cfg, resolve_runtime(cfg.device, cfg.precision))
        except BenchError as err:
            problems.append(f"{name}: {err}")
    return problems


def main(argv: list[str] | None = None) -> int:
    overrides = sys.argv[1:] if argv is None else list(argv)
    missing = left_out()
    if missing:
        print(
            f"gpu-check: leaves out {', '.join(missing)}: the installed TRL lacks it (the default lock has it).",
            file=sys.stderr,
        )
    if "nf4" not in quants():
        print("gpu-check: leaves out QLoRA (quant=nf4): bitsandbytes is not installed.", file=sys.stderr)
    if "--rehearse" in overrides:
        overrides.remove("--rehearse")
        return run_all(overrides, Path("outputs/gpu-check-rehearsal"), rehearse=True)
    facts = devices.cuda_facts()
    problem = devices.unusable_gpu(facts)
    if problem is not None:
        print(f"gpu-check: {problem}", file=sys.stderr)
        return 2
    if not facts.available:
        problems = validate_all(overrides)
        for problem in problems:
            print(f"gpu-check: {problem}", file=sys.stderr)
        print(
            f"gpu-check: no CUDA GPU on this machine; nothing was run ({len(checks()) - len(problems)} of "
            f"{len(checks())} configurations validate)."
        )
        return 1 if problems else 0
    try:
        request = gpu_request(overrides)
        gpu = devices.describe(request)
    except BenchError as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return 2
    return run_all(
        overrides, Path("results/gpu-check") / re.sub(r"[^A-Za-z0-9._-]+", "-", gpu.name).strip("-"), gpu=gpu
    )


def run_all(overrides: list[str], out: Path, rehearse: bool = False, gpu: devices.Device | None = None) -> int:
    import os

    import torch

    from bench.run.runner import run
    from bench.studies import decode

    request = None if gpu is None else f"cuda:{gpu.index}"
    if gpu is not None:
        named = describe_gpu(gpu, os.environ.get("CUDA_VISIBLE_DEVICES"))
        name = gpu.name
        props = torch.cuda.get_device_properties(gpu.index)
        print(
            f"gpu-check: GPU {gpu.index} of {gpu.count} visible: {name}, UUID {gpu.uuid}, compute capability "
            f"{props.major}.{props.minor}, bf16 {gpu.bf16}; each run's process sees it alone "
            f"({named['gpu/runs_see']}); torch {torch.__version__}, CUDA {torch.version.cuda}; "
            f"bitsandbytes {versions().get('versions/bitsandbytes')}",
            flush=True,
        )
    else:
        named = {"gpu": "CPU rehearsal"}
        name = "CPU rehearsal"
        print(
            f"gpu-check: {name} ({' '.join(REHEARSAL)}); torch {torch.__version__}; bitsandbytes "
            f"{versions().get('versions/bitsandbytes')}",
            flush=True,
        )
    rows = {}
    for check, own in checks():
        cfg = compose(run_overrides(own, overrides, rehearse, request))
        cfg.output_dir = str(out / check)
        rows[check] = run(cfg)
        rows[check].update(predicted(cfg, rows[check]))
        print(f"gpu-check: {check}: {rows[check]['status']}", flush=True)
        if "estimate/error" in rows[check]:
            print(f"gpu-check: {check}: no estimate: {rows[check]['estimate/error']}", file=sys.stderr, flush=True)
    # decode trains nothing; it runs in this process, which sees every GPU: the pinned one by its index here
    weights = [o for o in [*COMMON, *(REHEARSAL if rehearse else [])] if o.startswith(("model", "device", "precision"))]
    pinned = [f"device={request}"] if request else []
    decoded = decode.main(["--batch", "1,16", "--out", str(out / "decode.json"), *weights, *overrides, *pinned])
    text = table(rows)
    title = name if gpu is None else f"{name} (GPU {gpu.index} of {gpu.count}, UUID {gpu.uuid})"
    cache.write_text(out / "table.md", f"# gpu-check on {title}\n\n{text}\n")
    cache.write_json(out / "table.json", {**named, "runs": rows, **provenance("cpu" if rehearse else "cuda")}, indent=1)
    print(text)
    failed = [check for check, record in rows.items() if record["status"] != "success"]
    if failed or decoded != 0:
        print(f"gpu-check: failed: {', '.join(failed) or 'decode'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
