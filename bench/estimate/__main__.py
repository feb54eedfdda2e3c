"""`python -m bench.estimate [overrides]`: each method's predicted peak memory, part by part, and whether
it fits in 24, 40 and 80 GiB, from the model's config.json (or conf/model's arch numbers), reading no
weights. `method=a,b,c` estimates each. A GPU run in bf16 unless device=cpu or precision= says otherwise;
prompts at train.max_prompt_length (the longest a run allows) unless --prompt-tokens N.

    python -m bench.estimate model=qwen2.5-3b 'method=grpo,ppo,dpo,kto,orpo' quant=nf4 peft.r=16

Several models or quantizations (`model=a,b` `quant=none,nf4`) print one peak a cell instead, methods by
model and quantization: the README's budget table is

    python -m bench.estimate experiment=headline precision=bf16 'method=grpo,kto,dpo,orpo,ppo' \
        model=qwen3-0.6b,qwen2.5-3b,llama3.1-8b quant=none,nf4
"""

from __future__ import annotations

import argparse
import sys

from bench import BenchError
from bench.config.compose import compose
from bench.estimate.model import BUDGETS_GB, estimate
from methods import why_unavailable

GiB = 2**30
COLUMNS = ("weights", "trainable", "gradients", "optimizer", "extra_models", "activations", "checkpointed", "logits", "head_tile", "kv_cache")


def _lists(overrides: list[str], keys=("method", "model", "quant")) -> tuple[dict[str, list[str]], list[str]]:
    """The comma lists of `keys` (each estimated in turn, as a sweep would run them), and the rest."""
    lists, rest = {k: [] for k in keys}, []
    for item in overrides:
        key, _, value = item.partition("=")
        if key in lists:
            lists[key] += [v for v in value.split(",") if v]
        else:
            rest.append(item)
    return lists, rest


def _chosen(key: str, value: str) -> list[str]:
    return [f"{key}={value}"] if value else []


def table(estimates) -> str:
    head = ["method", "rows×tokens", *(c.replace("_", " ") for c in COLUMNS), "peak", *(f"{b} GiB" for b in BUDGETS_GB)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in estimates:
        cells = [e.method, f"{e.step.rows}×{e.step.tokens}", *(f"{e.parts[c] / GiB:.2f}" for c in COLUMNS),
                 f"**{e.peak / GiB:.2f}**", *("yes" if ok else "no" for ok in e.fits().values())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def matrix(peaks: dict[tuple[str, str, str], int | None], methods, models, quants) -> str:
    cols = [(m, q) for m in models for q in quants]
    head = ["method", *(f"{m} {q}" for m, q in cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        cells = ("–" if peaks[method, m, q] is None else f"{peaks[method, m, q] / GiB:.1f}" for m, q in cols)
        lines.append("| " + " | ".join([method, *cells]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.estimate", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="the same overrides as a run (model=, method=a,b, quant=, peft.r=, ...)")
    parser.add_argument("--prompt-tokens", type=int, help="prompt tokens a row (default: train.max_prompt_length)")
    args = parser.parse_args(argv)
    lists, rest = _lists(args.overrides)
    names, models, quants = (lists[k] or [""] for k in ("method", "model", "quant"))
    try:
        if len(models) > 1 or len(quants) > 1:
            peaks, default = {}, compose(rest)  # the default names what is not listed, as a run takes it
            for n in names:
                for m in models:
                    for q in quants:
                        cfg = compose([*rest, *_chosen("method", n), *_chosen("model", m), *_chosen("quant", q)])
                        # a method the installed TRL lacks (PPO on the current lock) is a dash, not an error
                        peaks[n or default.method.name, m or default.model.name, q or default.quant.name] = (
                            None if why_unavailable(cfg.method) else estimate(cfg, prompt_tokens=args.prompt_tokens).peak)
            print(f"Predicted peak memory (GiB) of one training process, methods by model and quantization "
                  f"({' '.join(rest) or 'the defaults'}); each cell's parts: the same command with one model and "
                  "one quant; – where the installed TRL lacks the method.\n")
            methods_, models_, quants_ = ([*dict.fromkeys(key[i] for key in peaks)] for i in range(3))  # in order
            print(matrix(peaks, methods_, models_, quants_))
            return 0
        rest += _chosen("model", models[0]) + _chosen("quant", quants[0])
        estimates = []
        for n in names:
            cfg = compose([*rest, *_chosen("method", n)])
            if len(names) > 1 and (why := why_unavailable(cfg.method)):  # one of several: said, the rest estimated
                print(f"bench.estimate: left out: {why}", file=sys.stderr)
                continue
            estimates.append(estimate(cfg, prompt_tokens=args.prompt_tokens))
    except BenchError as err:
        print(f"bench.estimate: {err}", file=sys.stderr)
        return 2
    if not estimates:  # every listed method left out above, each with its reason
        print("bench.estimate: the installed TRL has none of the methods listed.", file=sys.stderr)
        return 2
    print(f"Predicted peak memory (GiB) of one training process: {cfg.model.name}, {estimates[0].precision}, "
          f"quant={cfg.quant.name}, peft={cfg.peft.get('name', 'lora') if cfg.peft else 'none'}"
          f"{f' r={cfg.peft.r}' if cfg.peft and 'r' in cfg.peft else ''}; prompts of "
          f"{args.prompt_tokens or cfg.train.max_prompt_length} tokens, completions of {cfg.train.max_completion_length}.")
    print("peak = every model's memory + the larger of what a step saves for backward (activations, logits; with "
          "a TRL 1.16 chunked LM head, its working tile instead of the logits) and the KV cache of rollouts; the "
          "process's own runtime and the allocator's caches come on top.\n")
    print(table(estimates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
