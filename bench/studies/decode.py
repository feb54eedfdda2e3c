"""Decode benchmark: one decode step's time along each generation path the harness can take, beside the
machine's bound for that shape, measured side by side in one process.

    python -m bench.studies.decode                                   # the default model and LoRA, batch 4 and 16
    python -m bench.studies.decode --batch 1,4,16 --context 64 --new-tokens 64 peft.r=32
    python -m bench.studies.decode --paths trl,merged,static --out results/decode/cpu-2core.json

Paths (each on the same weights; LoRA's B is set non-zero so that the adapter's matmuls are real work):
- `trl`: the unmerged LoRA model in train mode, dropout off: what TRL's own rollout (`generate()` on
  the training model) runs;
- `eval`: the same model in eval mode;
- `merged`: the adapter merged into the weights (what TRL's vLLM path does before generating);
- `base`: the adapter disabled (no LoRA work at all: the floor the merged path should reach);
- `static`: merged, with transformers' static KV cache instead of the dynamic one;
- `compiled`: static cache and `torch.compile` (minutes to compile on a CPU; off unless asked).

A decode step's time is (generate T new tokens − generate 1) ÷ (T − 1): the prefill and the first
token cancel. The bound per step is the larger of the bytes it must read (weights once, plus the KV
cache at the mean context) ÷ the measured bandwidth and its FLOPs (2N per token) ÷ the measured
matmul peak, as `bench.measure.perf` computes a run's decode bound; `% of bound` is bound time ÷ step time.
No library benchmarks these paths against a roofline of the same machine, hence this module.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench import BenchError
from bench.config import finetuning
from bench.config.compose import compose
from bench.measure.perf import kv_bytes
from bench.records.store import provenance
from bench.system import cache

PATHS = ("trl", "eval", "merged", "base", "static", "compiled")
DEFAULT_PATHS = ("trl", "eval", "merged", "base", "static")


@dataclass
class Row:
    path: str
    batch: int
    step_ms: float
    tokens_per_s: float
    bound_tokens_per_s: float
    of_bound: float  # bound time / step time
    speedup: float | None = None  # over the `trl` path at the same batch


def bound_step_s(params: int, weight_bytes: int, cache: float, batch: int, bandwidth: float, peak: float) -> float:
    """The least time one decode step of `batch` sequences can take on this machine."""
    return max((weight_bytes + cache) / bandwidth, 2 * params * batch / peak)


def _models(model, paths: list[str]) -> dict:
    """The model each path generates with (the same weights throughout)."""
    from bench.measure import probes

    probes.disable_dropout(model)  # the harness's dropout policy: the rollout model samples without it
    merged = None
    if {"merged", "static", "compiled"} & set(paths):
        merged = copy.deepcopy(model).merge_and_unload().eval()
    return {p: (p, merged if p in ("merged", "static", "compiled") else model) for p in paths}


def _generate(kind: str, model, inputs: dict, new_tokens: int, pad_token_id: int):
    kwargs: dict[str, object] = dict(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_token_id
    )
    if kind in ("static", "compiled"):
        kwargs["cache_implementation"] = "static"
    if kind == "trl":  # TRL generates its rollouts from the training model, in train mode
        model.train()
    elif kind in ("eval", "base"):
        model.eval()
    with torch.no_grad():
        if kind == "base":
            with model.disable_adapter():
                return model.generate(**inputs, **kwargs)
        return model.generate(**inputs, **kwargs)


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def step_seconds(kind: str, model, inputs: dict, new_tokens: int, pad_token_id: int, repeats: int) -> float:
    """(T new tokens − 1 new token) ÷ (T − 1): one decode step, prefill cancelled; best of `repeats`."""
    _generate(kind, model, inputs, new_tokens, pad_token_id)  # warm-up (and the compile, for `compiled`)
    long = _best(lambda: _generate(kind, model, inputs, new_tokens, pad_token_id), repeats)
    short = _best(lambda: _generate(kind, model, inputs, 1, pad_token_id), repeats)
    return max(long - short, 1e-9) / (new_tokens - 1)


def benchmark(
    model,
    *,
    pad_token_id: int,
    batches: list[int],
    context: int,
    new_tokens: int,
    paths: list[str],
    bandwidth: float,
    peak: float,
    repeats: int = 3,
    device: str = "cpu",
) -> list[Row]:
    """Rows of (path, batch) for a peft-wrapped `model`: the measured step, its rate, the bound and the
    speed-up over `trl`."""
    from bench.measure.perf import flop_params, weight_bytes

    unknown = sorted(set(paths) - set(PATHS))
    if unknown or new_tokens < 2 or context < 1 or not batches or min(batches) < 1:
        raise BenchError(
            f"bench.studies.decode: paths must be among {', '.join(PATHS)} (got {', '.join(unknown) or 'those'}), "
            f"--new-tokens at least 2 and --context and every --batch at least 1."
        )
    base = model.get_base_model()
    params, read = flop_params(base), weight_bytes(base)
    element = next(base.parameters()).element_size()
    runs = _models(model, paths)
    if "compiled" in runs:
        kind, merged = runs["compiled"]
        compiled = copy.copy(merged)
        compiled.forward = torch.compile(merged.forward)
        runs["compiled"] = (kind, compiled)
    # A fixed prompt of `context` tokens: the same ids for every path and batch row.
    ids = torch.arange(context, device=device) % (base.config.vocab_size - 1) + 1
    rows = []
    for batch in batches:
        inputs = {
            "input_ids": ids.repeat(batch, 1),
            "attention_mask": torch.ones(batch, context, dtype=torch.long, device=device),
        }
        cache = kv_bytes(base.config, batch, context + new_tokens / 2, element)
        bound = bound_step_s(params, read, cache, batch, bandwidth, peak)
        measured = {
            name: step_seconds(kind, m, inputs, new_tokens, pad_token_id, repeats) for name, (kind, m) in runs.items()
        }
        for name, seconds in measured.items():
            rows.append(
                Row(
                    name,
                    batch,
                    _sig(seconds * 1e3),
                    _sig(batch / seconds),
                    _sig(batch / bound),
                    _sig(bound / seconds),
                    round(measured["trl"] / seconds, 3) if "trl" in measured else None,
                )
            )
    return rows


def _sig(x: float) -> float:
    return float(f"{x:.4g}")  # four significant digits: a tiny model's rates are far from 1


def table(rows: list[Row]) -> str:
    import pandas as pd

    frame = pd.DataFrame([asdict(r) for r in rows]).rename(
        columns={
            "step_ms": "step (ms)",
            "tokens_per_s": "tokens/s",
            "bound_tokens_per_s": "bound tokens/s",
            "of_bound": "% of bound",
            "speedup": "× trl",
        }
    )
    frame["% of bound"] = (100 * frame["% of bound"]).round(1)
    return frame.to_markdown(index=False, disable_numparse=True)


def _lora_b_nonzero(model, seed: int) -> None:
    """LoRA's B starts at zero, which makes the adapter's output zero but not its cost; give it values
    so that merged and unmerged paths are compared on an adapter that changes the model."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 1e-3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.decode", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="4,16", help="comma-separated batch sizes (default 4,16)")
    parser.add_argument("--context", type=int, default=64, help="prompt tokens (default 64)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per timing (default 64)")
    parser.add_argument("--paths", default=",".join(DEFAULT_PATHS), help=f"among {', '.join(PATHS)}")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings per path")
    parser.add_argument("--out", type=Path, help="also write the rows and the settings as JSON here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: model=..., peft.r=..., device=...")
    args = parser.parse_args(argv)
    from peft import get_peft_model

    from bench.measure.perf import peak_bandwidth, peak_flops
    from bench.recipe.models import load_base, load_tokenizer, resolve_model_path
    from bench.system.runtime import resolve_runtime

    try:
        batches = [int(b) for b in args.batch.split(",") if b]
        paths = [p for p in args.paths.split(",") if p]
        cfg = compose(args.overrides)
        runtime = resolve_runtime(cfg.device, cfg.precision)
        runtime.activate()
        if finetuning.peft_config(cfg.peft) is None:
            raise BenchError("bench.studies.decode compares adapter paths: it needs peft=lora (or another adapter).")
        path = resolve_model_path(str(cfg.model.name_or_path), cfg.cache_dir)
        tokenizer = load_tokenizer(path, cfg.model.revision)
        torch.manual_seed(int(cfg.seed))
        model = get_peft_model(load_base(cfg, path, runtime), finetuning.peft_config(cfg.peft))
        _lora_b_nonzero(model, int(cfg.seed))
        bandwidth = peak_bandwidth(runtime.device, cfg.cache_dir)
        peak = peak_flops(runtime.device, runtime.dtype, cfg.cache_dir)
        rows = benchmark(
            model,
            pad_token_id=tokenizer.pad_token_id,
            batches=batches,
            context=args.context,
            new_tokens=args.new_tokens,
            paths=paths,
            bandwidth=bandwidth,
            peak=peak,
            repeats=args.repeats,
            device=runtime.device,
        )
    except (BenchError, ValueError) as err:
        print(f"bench.studies.decode: {err}", file=sys.stderr)
        return 2
    print(
        f"model {cfg.model.name}, {runtime.device} {str(runtime.dtype).removeprefix('torch.')}, "
        f"{torch.get_num_threads()} threads; context {args.context}, {args.new_tokens} new tokens; "
        f"bandwidth {bandwidth / 1e9:.1f} GB/s, matmul peak {peak / 1e9:.1f} GFLOP/s (bench.measure.perf, cached)"
    )
    print(table(rows))
    if args.out:
        settings = {
            "batches": batches,
            "context": args.context,
            "new_tokens": args.new_tokens,
            "model": cfg.model.name,
            "overrides": args.overrides,
            "bandwidth": bandwidth,
            "peak": peak,
        }
        cache.write_json(
            args.out,
            {"settings": settings, **provenance(runtime.device, runtime.index), "rows": [asdict(r) for r in rows]},
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
