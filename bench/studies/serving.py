"""Serving adapters: one generated token's latency on the base, the unmerged adapter and the merged
model, and what switching between two adapters on one loaded base costs.

    python -m bench.studies.serving --out results/claims/adapter_serving/serving.json
    python -m bench.studies.serving --rounds 20 --context 64 --new-tokens 32 peft.r=64

Two LoRA adapters ("a", "b", non-zero B so that each changes the model) sit on one base, as a server
holds them. Each round times, in turn (interleaved, so that drift in the machine's speed reaches every
path alike): a decode step of the base (adapter disabled), of adapter a unmerged, of a merged copy;
then the switches: `set_adapter` (unmerged: a pointer swap), `load_adapter` of a saved adapter from
disk (then `delete_adapter`), and for a server that keeps its adapter merged, unmerge a + set b + merge
b (then back). One sample per round and path, so the claim's rule gets a spread, not a best-of.
A decode step is (generate T new tokens − generate 1) ÷ (T − 1), at batch 1 (one request's latency).
peft has the switching calls; nothing times them against a decode step, hence this module.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench import BenchError
from bench.config import finetuning
from bench.config.compose import compose
from bench.records.store import provenance
from bench.system import cache

DECODE = ("base", "adapter", "merged")
SWITCH = ("set_adapter", "load_adapter", "remerge")


def _timed(fn, device: str, synchronize: Callable[[], None] | None = None) -> float:
    """Seconds `fn` takes on `device`. CUDA kernels run asynchronously: a merge returns as soon as its
    kernels are queued, so the clock is read only after the device has finished, and started only after
    the work queued before it has (`synchronize`: torch.cuda.synchronize unless given)."""
    wait = (synchronize or torch.cuda.synchronize) if torch.device(device).type == "cuda" else None
    if wait is not None:
        wait()
    started = time.perf_counter()
    fn()
    if wait is not None:
        wait()
    return time.perf_counter() - started


def _step_ms(generate, new_tokens: int, device: str) -> float:
    long = _timed(lambda: generate(new_tokens), device)
    short = _timed(lambda: generate(1), device)
    return max(long - short, 1e-9) / (new_tokens - 1) * 1e3


def measure(model, *, pad_token_id: int, rounds: int, context: int, new_tokens: int, device: str = "cpu") -> dict:
    """Per-round samples (ms) of each decode path and each switch, for a peft model holding adapters a, b."""
    if rounds < 2 or new_tokens < 2 or context < 1:
        raise BenchError(
            "bench.studies.serving: --rounds and --new-tokens must be at least 2 and --context at least 1."
        )
    model.eval()
    model.set_adapter("a")
    merged = copy.deepcopy(model).merge_and_unload().eval()  # what a server that merges for good runs
    base = model.get_base_model()
    ids = (torch.arange(context, device=device) % (base.config.vocab_size - 1) + 1)[None]
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    kwargs = dict(do_sample=False, pad_token_id=pad_token_id)

    def generate(which: str):
        def run(n: int):
            with torch.no_grad():
                if which == "base":
                    with model.disable_adapter():
                        return model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, **kwargs)
                target = merged if which == "merged" else model
                return target.generate(**inputs, max_new_tokens=n, min_new_tokens=n, **kwargs)

        return run

    folder = Path(tempfile.mkdtemp(prefix="rftb-serving-"))
    model.save_pretrained(folder, selected_adapters=["b"])  # peft writes a non-default adapter to folder/b
    saved = folder / "b"

    def load():
        model.load_adapter(str(saved), adapter_name="c")
        model.delete_adapter("c")

    def remerge():  # a merged server: take a out of the weights, put b in (and back, untimed)
        model.unmerge_adapter()
        model.set_adapter("b")
        model.merge_adapter()

    samples: dict[str, list[float]] = {name: [] for name in (*DECODE, *SWITCH)}
    for which in DECODE:  # warm-up: the first generate of each path allocates
        generate(which)(2)
    for _ in range(rounds):
        for which in DECODE:
            samples[which].append(_step_ms(generate(which), new_tokens, device))
        samples["set_adapter"].append(_timed(lambda: model.set_adapter("b"), device) * 1e3)
        model.set_adapter("a")
        samples["load_adapter"].append(_timed(load, device) * 1e3)
        model.merge_adapter()  # a merged, as such a server holds it
        samples["remerge"].append(_timed(remerge, device) * 1e3)
        model.unmerge_adapter()
        model.set_adapter("a")
    return {"decode_ms": {k: samples[k] for k in DECODE}, "switch_ms": {k: samples[k] for k in SWITCH}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="samples per path (default 10)")
    parser.add_argument("--context", type=int, default=64, help="prompt tokens (default 64)")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per decode sample (default 32)")
    parser.add_argument("--out", type=Path, help="write the samples and the settings as JSON here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: model=..., peft.r=..., device=...")
    args = parser.parse_args(argv)
    from peft import get_peft_model

    from bench.recipe.models import load_base, load_tokenizer, resolve_model_path
    from bench.studies.decode import _lora_b_nonzero
    from bench.system.runtime import resolve_runtime

    try:
        cfg = compose(args.overrides)
        runtime = resolve_runtime(cfg.device, cfg.precision)
        runtime.activate()
        config = finetuning.peft_config(cfg.peft)
        if config is None:
            raise BenchError("bench.studies.serving times adapters: it needs peft=lora (or another adapter).")
        path = resolve_model_path(str(cfg.model.name_or_path), cfg.cache_dir)
        tokenizer = load_tokenizer(path, cfg.model.revision)
        torch.manual_seed(int(cfg.seed))
        model = get_peft_model(load_base(cfg, path, runtime), config, adapter_name="a")
        model.add_adapter("b", copy.deepcopy(config))
        _lora_b_nonzero(model, int(cfg.seed))  # both adapters: distinct non-zero B
        result = measure(
            model,
            pad_token_id=tokenizer.pad_token_id,
            rounds=args.rounds,
            context=args.context,
            new_tokens=args.new_tokens,
            device=runtime.device,
        )
    except (BenchError, ValueError) as err:
        print(f"bench.studies.serving: {err}", file=sys.stderr)
        return 2
    import numpy as np

    print(
        f"model {cfg.model.name}, {runtime.device} {runtime.precision}, {torch.get_num_threads()} threads, "
        f"batch 1, context {args.context}, {args.rounds} rounds: median (min-max) ms"
    )
    for group in result.values():
        for name, values in group.items():
            print(f"  {name:13s} {np.median(values):9.3f}  ({min(values):.3f}-{max(values):.3f})")
    if args.out:
        settings = {
            "rounds": args.rounds,
            "context": args.context,
            "new_tokens": args.new_tokens,
            "batch": 1,
            "model": cfg.model.name,
            "overrides": args.overrides,
            "threads": torch.get_num_threads(),
        }
        cache.write_json(
            args.out, {"settings": settings, **provenance(runtime.device, runtime.index), **result}, indent=1
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
