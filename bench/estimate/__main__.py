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

from hydra.errors import HydraException

from bench import BenchError
from bench.config.compose import compose, unknown_choice
from bench.estimate.model import PARTS, Estimate, estimate
from bench.estimate.overhead import BUDGETS_GB, Overhead, measured, verdict
from methods import why_unavailable

GiB = 2**30


def _lists(overrides: list[str], keys=("method", "model", "quant")) -> tuple[dict[str, list[str]], list[str]]:
    """The comma lists of `keys` (each estimated in turn, as a sweep would run them), and the rest."""
    lists: dict[str, list[str]] = {k: [] for k in keys}
    rest: list[str] = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key in lists:
            lists[key] += [v for v in value.split(",") if v]
        else:
            rest.append(item)
    return lists, rest


def _chosen(key: str, value: str) -> list[str]:
    return [f"{key}={value}"] if value else []


def check_choices(overrides: list[str]) -> None:
    """Refuse an unknown option of a config group (method=foo, model=...) in one did-you-mean line, before
    Hydra's multi-line trace: the same line as `python -m bench` (bench.config.compose.unknown_choice)."""
    problem = unknown_choice(overrides)
    if problem is not None:
        raise BenchError(problem)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as every other refusal of the estimate
        print(f"bench.estimate: {message}", file=sys.stderr)
        sys.exit(2)


def header(e, cfg, prompt_tokens: int | None) -> str:
    """Which model and settings the table is for: the model as named, the config read and where from."""
    return (
        f"Model: {e.model.describe()}.\n"
        f"Predicted peak memory (GiB) of one training process: {e.model.name_or_path}, {e.precision}, "
        f"quant={cfg.quant.name}, peft={cfg.peft.get('name', 'lora') if cfg.peft else 'none'}"
        f"{f' r={cfg.peft.r}' if cfg.peft and 'r' in cfg.peft else ''}; prompts of "
        f"{prompt_tokens or cfg.train.max_prompt_length} tokens, completions of {cfg.train.max_completion_length}."
    )


def notes(estimates) -> str:
    """What the estimates assumed rather than knew, once each."""
    return "".join(f"Note: {n}\n" for n in dict.fromkeys(n for e in estimates for n in e.notes))


def device_kind(cfg) -> str:
    """Whose overhead a range takes: the run's device where it names one, else a GPU's (the budgets are GPU
    memory)."""
    return "cpu" if str(cfg.device) == "cpu" else "cuda"


def verdicts(peak: int, overhead: Overhead, digits: int = 2) -> tuple[str, list[str]]:
    """The range "lo–hi" (GiB) of a tensor peak with `overhead` on top, and the verdict at each budget."""
    lo, hi = overhead.range(peak)
    return f"{lo / GiB:.{digits}f}–{hi / GiB:.{digits}f}", [verdict(lo, hi, gb) for gb in BUDGETS_GB]


def explain(overheads) -> str:
    """Which kind's overhead the ranges took and from how many records, once each."""
    return "".join(f"{o.describe()}\n" + (f"Note: {o.note}\n" if o.note else "") for o in dict.fromkeys(overheads))


RULE = (
    "range = lo–hi: lo = peak + the least runtime measured, hi = (peak + the most runtime) / (1 − the largest "
    "allocator's share of the peak measured); yes: hi fits the budget, no: lo does not, tight: between."
)


def table(estimates, overheads) -> str:
    head = [
        "method",
        "rows×tokens",
        *(c.replace("_", " ") for c in PARTS),
        "peak",
        "range",
        *(f"{b} GiB" for b in BUDGETS_GB),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e, overhead in zip(estimates, overheads, strict=True):
        span, says = verdicts(e.peak, overhead)
        cells = [
            e.method,
            f"{e.step.rows}×{e.step.tokens}",
            *(f"{e.parts[c] / GiB:.2f}" for c in PARTS),
            f"**{e.peak / GiB:.2f}**",
            span,
            *says,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def matrix(cells: dict[tuple[str, str, str], tuple[int, Overhead] | None], methods, models, quants) -> str:
    """One cell a (method, model, quant): the tensor peak, its range and the verdicts, in GiB."""
    cols = [(m, q) for m in models for q in quants]
    head = ["method", *(f"{m} {q}" for m, q in cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        row = [method]
        for m, q in cols:
            cell = cells[method, m, q]
            if cell is None:
                row.append("–")
                continue
            peak, overhead = cell
            span, says = verdicts(peak, overhead, digits=1)
            row.append(f"{peak / GiB:.1f} ({span}) {'/'.join(says)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m bench.estimate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides", nargs="*", help="the same overrides as a run (model=, method=a,b, quant=, peft.r=, ...)"
    )
    parser.add_argument("--prompt-tokens", type=int, help="prompt tokens a row (default: train.max_prompt_length)")
    args = parser.parse_args(argv)
    if args.prompt_tokens is not None and args.prompt_tokens < 1:
        parser.error(f"--prompt-tokens {args.prompt_tokens}: a prompt holds at least 1 token.")
    lists, rest = _lists(args.overrides)
    names, models, quants = (lists[k] or [""] for k in ("method", "model", "quant"))
    try:
        check_choices(args.overrides)
        return _estimate(args, names, models, quants, rest)
    except (BenchError, HydraException) as err:
        print(f"bench.estimate: {str(err).strip().splitlines()[0]}", file=sys.stderr)
        return 2


def _estimate(args, names, models, quants, rest) -> int:
    """The table (one model and quantization) or the matrix (several), printed; the exit status."""
    if len(models) > 1 or len(quants) > 1:
        return _matrix(args, names, models, quants, rest)
    rest += _chosen("model", models[0]) + _chosen("quant", quants[0])
    estimates, overheads = [], []
    for n in names:
        cfg = compose([*rest, *_chosen("method", n)])
        if len(names) > 1 and (why := why_unavailable(cfg.method)):  # one of several: said, the rest estimated
            print(f"bench.estimate: left out: {why}", file=sys.stderr)
            continue
        estimates.append(estimate(cfg, prompt_tokens=args.prompt_tokens))
        overheads.append(measured(device_kind(cfg)))
    if not estimates:  # every listed method left out above, each with its reason
        raise BenchError("the installed TRL has none of the methods listed.")
    print(header(estimates[0], cfg, args.prompt_tokens))
    print(
        "peak = every model's memory + the larger of what a step saves for backward (activations, autocast's "
        "weight copies in bf16/fp16, logits; with "
        "a TRL 1.16 chunked LM head, its working tile instead of the logits) and the KV cache of rollouts: "
        "the tensors alone. The process's runtime and the allocator's left-over come on top, as measured: " + RULE
    )
    print(explain(overheads) + notes(estimates))
    print(table(estimates, overheads))
    return 0


def _matrix(args, names, models, quants, rest) -> int:
    cells: dict[tuple[str, str, str], tuple[int, Overhead] | None] = {}
    estimates: list[Estimate] = []
    default = compose(rest)  # the default names what is not listed, as a run takes it
    for n in names:
        for m in models:
            for q in quants:
                cfg = compose([*rest, *_chosen("method", n), *_chosen("model", m), *_chosen("quant", q)])
                # a method the installed TRL lacks (PPO on the current lock) is a dash, not an error
                e = None if why_unavailable(cfg.method) else estimate(cfg, prompt_tokens=args.prompt_tokens)
                estimates += [e] if e else []
                key = n or default.method.name, m or default.model.name, q or default.quant.name
                cells[key] = (e.peak, measured(device_kind(cfg))) if e else None
    print(
        f"Predicted peak memory (GiB) of one training process, methods by model and quantization "
        f"({' '.join(rest) or 'the defaults'}); each cell's parts: the same command with one model and "
        "one quant; – where the installed TRL lacks the method."
    )
    print(f"A cell: the tensor peak (its range) and the verdict at {'/'.join(map(str, BUDGETS_GB))} GiB. " + RULE)
    print(explain(c[1] for c in cells.values() if c))
    print(
        "".join(f"Model: {d}.\n" for d in dict.fromkeys(e.model.describe() for e in estimates if e.model))
        + notes(estimates)
    )
    methods_, models_, quants_ = ([*dict.fromkeys(key[i] for key in cells)] for i in range(3))  # in order
    print(matrix(cells, methods_, models_, quants_))
    return 0


if __name__ == "__main__":
    sys.exit(main())
