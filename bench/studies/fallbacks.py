"""How often the offline data falls back to the gold answer, against the sampling settings.

The offline methods (DPO, KTO, ORPO) learn from pairs of the base model's own samples: per prompt the
best and the worst of K samples by the task's reward. When all K tie (usually all wrong), the pair is
"gold answer vs a sample" instead, which teaches imitation of the gold, not a contrast the model
produced. This measures that share for several K and temperatures on the run's own prompts, so the
headline experiment's settings are chosen from a table, not guessed:

    python -m bench.studies.fallbacks experiment=headline --samples 16 --temperatures 0.7,1.0

Per temperature it samples `--samples` completions per prompt once (the data builder's own sampler
and the task's own reward) and reads the share for every K ≤ that from the first K of each group, so
the columns of one temperature come from the same samples. Prints a table; `--out` also writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.config.compose import compose
from bench.records.store import provenance
from bench.tasks import load_task


def tie_share(rewards: list[list[float]], k: int) -> float:
    """Share of groups whose first k rewards are all equal (the builder's tie, so a gold fallback)."""
    return sum(len(set(group[:k])) == 1 for group in rewards) / len(rewards)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="harness overrides, e.g. experiment=headline")
    parser.add_argument("--samples", type=int, default=16, help="most samples per prompt (default 16)")
    parser.add_argument("--temperatures", default="0.7,1.0")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    args = parser.parse_args(argv)

    from bench.recipe import data as data_pipeline
    from bench.recipe.models import load_base, load_tokenizer, resolve_model_path
    from bench.system.runtime import resolve_runtime

    cfg = compose(args.overrides)
    temperatures = [float(t) for t in args.temperatures.split(",")]
    ks = sorted({k for k in (2, 4, 8, 12, 16, 24, 32) if k < args.samples} | {args.samples})
    runtime = resolve_runtime(cfg.device, cfg.precision)
    runtime.activate()
    path = resolve_model_path(str(cfg.model.name_or_path), cfg.cache_dir)
    tokenizer = load_tokenizer(path, cfg.model.revision)
    model = load_base(cfg, path, runtime)
    model.config.pad_token_id = tokenizer.pad_token_id
    task = load_task(cfg.task)
    examples = task.prompts(int(cfg.train.num_prompts))

    rows = []
    for temperature in temperatures:
        data_cfg, sampling = cfg.data.copy(), cfg.sampling.copy()
        sampling.temperature, data_cfg.samples_per_prompt = temperature, args.samples
        started = time.perf_counter()
        samples = data_pipeline.sample_completions(model, tokenizer, task, examples, data_cfg, sampling, int(cfg.seed))
        seconds = time.perf_counter() - started
        rewards = [task.score(group, [ex.fields] * len(group)) for ex, group in zip(examples, samples, strict=True)]
        mean = sum(map(sum, rewards)) / sum(map(len, rewards))
        rows.append(
            {
                "temperature": temperature,
                "mean_reward": round(mean, 4),
                "sample_s": round(seconds / args.samples, 2),  # build seconds per unit of K
                **{f"k{k}": round(tie_share(rewards, k), 3) for k in ks},
            }
        )
        print(f"T={temperature}: sampled {args.samples} x {len(examples)} in {seconds:.0f} s", flush=True)

    header = ["T", "mean reward", "build s per K"] + [f"K={k}" for k in ks]
    lines = [
        f"Gold-fallback share of the offline pairs ({len(examples)} prompts, task {task.name}, seed {cfg.seed})",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        values = [row["temperature"], row["mean_reward"], row["sample_s"]] + [f"{row[f'k{k}']:.0%}" for k in ks]
        lines.append("| " + " | ".join(str(v) for v in values) + " |")
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"overrides": args.overrides, "rows": rows, **provenance()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
