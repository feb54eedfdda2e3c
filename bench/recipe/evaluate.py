"""Scoring with lm-evaluation-harness: base model (cached) and the trained model, on the task's
held-out split, keeping per-item results for the report's paired tests.

    python -m bench.recipe.evaluate RUN_DIR/adapter            # score a saved adapter as the run's eval.path says
    python -m bench.recipe.evaluate RUN_DIR/adapter --merge    # score the merged model; check merge agreement
    python -m bench.recipe.evaluate RUN_DIR/model              # a fully fine-tuned model (peft=none)

A task's lm-eval spec is either a YAML in bench/tasks/lm_eval/ (arithmetic, gsm8k: lm-eval's own
filters and metrics), or, by default, a task built here in Python: it asks the held-out prompts and
scores each reply with the task's own `item_metrics` (its reward functions), so adding a task needs
no lm-eval file. The held-out rows are written to a jsonl file under cache_dir with absolute paths,
because lm-eval resolves relative paths against the working directory, not the YAML.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, cast

import yaml
from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.config import history
from bench.config.compose import compose
from bench.recipe import pipeline
from bench.recipe.plan import Plan, make
from bench.system import cache, console, files
from bench.tasks import Task
from bench.tasks.base import fingerprint

log = logging.getLogger(__name__)
TASK_DIR = Path(__file__).resolve().parent.parent / "tasks" / "lm_eval"


def _rows(task: Task, split: str) -> list[dict]:
    return [{"prompt": ex.prompt, "gold": ex.gold, **ex.fields} for ex in task.split(split)]


def _write_rows(folder: Path, rows: list[dict], name: str = "test") -> str:
    path = folder / f"{name}.jsonl"
    cache.write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def task_spec(task: Task, cfg: DictConfig):
    """What lm-eval runs for this task on `eval.split`: (task name or Task object, include dir or None,
    metric key)."""
    split = cfg.eval.split
    task.split(split)  # an unknown or empty split fails here
    if task.eval_yaml is None:
        return _generic_task(task, cfg), None, f"{task.eval_metric},none"
    import lm_eval

    source = TASK_DIR / f"{task.eval_yaml}.yaml"
    if not source.exists():
        raise BenchError(f"task.eval_task={task.eval_yaml!r}: no {source.name} in {TASK_DIR}.")
    spec = yaml.safe_load(source.read_text())
    if str(spec.get("include", "")).startswith("lm_eval:"):
        spec["include"] = str(Path(lm_eval.__file__).parent / spec["include"].removeprefix("lm_eval:"))
    else:
        spec = {"include": str(source), "task": spec["task"]}
    rows, raw = None, (task.extra.get("eval_rows") or {}).get(split)
    if raw is not None:  # a slice the task holds itself (GSM8K's validation), in the YAML's own format
        spec.update(dataset_path="json", dataset_name=None, test_split=split)
    elif task.extra.get("data_dir"):
        spec.update(dataset_path="json", dataset_name=None)
        data_dir = Path(task.extra["data_dir"])
        spec["dataset_kwargs"] = {"data_files": {s: str(data_dir / f"{s}.jsonl") for s in ("train", "test")}}
    elif yaml.safe_load(source.read_text()).get("dataset_path") == "json":
        rows = _rows(task, split)  # a generated task: its held-out split becomes the YAML's data file
    key = fingerprint({"spec": spec, "rows": rows, "raw": raw})
    folder = Path(cfg.cache_dir).expanduser() / "lm_eval_tasks" / f"{spec['task']}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        spec["dataset_kwargs"] = {"data_files": {split: _write_rows(folder, raw, split)}}
    elif rows is not None:
        spec["dataset_kwargs"] = {"data_files": {"test": _write_rows(folder, rows)}}
    cache.write_text(folder / f"{spec['task']}.yaml", yaml.safe_dump(spec, sort_keys=False))
    metric = task.eval_metric if "," in task.eval_metric else f"{task.eval_metric},none"
    return spec["task"], folder, metric


def _generic_task(task: Task, cfg: DictConfig):
    """An lm-eval task built in Python: ask each held-out prompt, score the reply with the task."""
    from lm_eval.api.task import ConfigurableTask

    examples = task.split(cfg.eval.split)
    rows = _rows(task, cfg.eval.split)
    folder = Path(cfg.cache_dir).expanduser() / "lm_eval_tasks" / f"rftb_{task.name}-{fingerprint(rows)}"
    data_file = _write_rows(folder, rows)
    field_names = list(examples[0].fields)
    metrics = list(task.item_metrics("", examples[0].fields))

    def process_results(doc, results):
        return task.item_metrics(results[0], {k: doc[k] for k in field_names})

    return ConfigurableTask(
        config={
            "task": f"rftb_{task.name}",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": data_file}},
            "test_split": "test",
            "output_type": "generate_until",
            "doc_to_text": "{{prompt}}",
            "doc_to_target": "{{gold}}",
            "generation_kwargs": {"until": [], "do_sample": False},
            "process_results": process_results,
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in metrics],
            "metadata": {"version": 1.0},
        }
    )


def _task_manager(tasks: list, include: Path | None):
    """lm-eval's index of task names. Indexing lm-eval's own task YAMLs (thousands) costs about 6 s per
    scoring on a 2-core CPU, and our tasks (the generated rftb_* YAMLs, or Task objects) never need it:
    the full index is built only when a task named by string is not among ours."""
    from lm_eval.tasks import TaskManager

    path = str(include) if include else None
    ours = TaskManager(include_path=path, include_defaults=False)
    if all(name in ours.all_tasks for name in tasks if isinstance(name, str)):
        return ours
    return TaskManager(include_path=path)


def _score(model, tokenizer, tasks: list, include: Path | None, eval_cfg: DictConfig) -> dict:
    """Run lm-eval on an in-memory model: {task: {metric: value, "n": n, "samples": [...]}}."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=int(eval_cfg.batch_size))
    gen_kwargs: dict[str, Any] = {"max_gen_toks": int(eval_cfg.max_gen_toks)}
    if eval_cfg.get("until") is not None:
        gen_kwargs["until"] = list(eval_cfg.until)
    with console.bars_to_log():  # lm-eval's bars: the run's log file, not the terminal
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=tasks,
            task_manager=_task_manager(tasks, include),
            limit=eval_cfg.limit,
            apply_chat_template=bool(eval_cfg.apply_chat_template),
            system_instruction=eval_cfg.get("system_instruction"),
            gen_kwargs=gen_kwargs,
            log_samples=True,  # per-item results: the report's paired tests need them
        )
    out = {}
    for name, metrics in results["results"].items():
        scores: dict[str, Any] = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        scores["n"] = int(results["n-samples"][name]["effective"])
        scores["samples"] = [
            {k: v for k, v in s.items() if k in ("doc_id", "filter") or isinstance(v, (int, float))}
            for s in results.get("samples", {}).get(name, [])
        ]
        out[name] = scores
    return out


def items(scores: dict, metric: str) -> list[float]:
    """Per-item values of `metric` ("name,filter"), in doc order."""
    name, filt = metric.split(",", 1)
    rows = [s for s in scores["samples"] if s.get("filter", filt) == filt and name in s]
    return [float(s[name]) for s in sorted(rows, key=lambda s: s["doc_id"])]


def _headline(metrics: dict, metric: str | None) -> tuple[str, float, float | None]:
    if metric is None:  # an extra task: its first metric
        metric = next(k for k in metrics if "," in k and "_stderr" not in k)
    if metric not in metrics:
        raise BenchError(
            f"lm-eval reported {sorted(k for k in metrics if k != 'samples')}, not the configured "
            f"task metric {metric!r}."
        )
    name, filt = metric.split(",", 1)
    return metric, metrics[metric], metrics.get(f"{name}_stderr,{filt}")


def _flatten(prefix: str, scores: dict, primary: str, primary_metric: str) -> dict:
    """{task: metrics} -> flat keys: the primary task as `<prefix>accuracy` (+ `<prefix>items`, per item),
    its other metrics as `<prefix><metric>`, extra tasks as `<prefix><task>/accuracy`."""
    out = {}
    for name, metrics in scores.items():
        is_primary = name == primary
        metric, value, stderr = _headline(metrics, primary_metric if is_primary else None)
        key = prefix if is_primary else f"{prefix}{name}/"
        out.update({f"{key}accuracy": value, f"{key}stderr": stderr, f"{key}n": metrics["n"]})
        if is_primary:
            out[f"{prefix}items"] = items(metrics, metric)
            for other, v in metrics.items():
                base = other.split(",")[0]
                if other != metric and "_stderr" not in other and "," in other and base != "alias":
                    out[f"{prefix}{base}"] = v
    return out


def base_scores(cfg: DictConfig, run_tasks: list, include: Path | None, key_of_model: str, load) -> dict:
    """The base model's scores, computed once per (model, eval settings), cached with their cost."""
    import lm_eval

    key = fingerprint(
        {
            "model": key_of_model,
            "tasks": [t if isinstance(t, str) else t.task_name for t in run_tasks],
            "include": include.name if include else None,
            "eval": OmegaConf.to_container(cfg.eval, resolve=True),
            "task": OmegaConf.to_container(cfg.task, resolve=True),
            "lm_eval": lm_eval.__version__,
        }
    )
    path = Path(cfg.cache_dir).expanduser() / "base_scores" / f"{key}.json"
    with cache.build_lock(path):  # parallel jobs: one scores the base, the others read its file
        if cache.usable(path, "base-model scores"):
            return {**files.read_json(path), "cached": True}
        started = time.perf_counter()
        model, tokenizer, task = load()
        scores = _score(model, tokenizer, run_tasks, include, cfg.eval)
        extra = task.extra_eval(chat_generator(model, tokenizer, cfg.eval), cfg.eval.games, cfg.eval.split)
        result = {"scores": scores, "extra": extra, "build_s": round(time.perf_counter() - started, 3)}
        cache.publish_json(path, result)
    return {**result, "cached": False}


def chat_generator(model, tokenizer, eval_cfg: DictConfig):
    """A batch of chats → greedy replies, with the eval settings (for evaluations beyond lm-eval)."""
    import torch

    def generate(chats: list[list[dict]]) -> list[str]:
        replies, started = [], time.perf_counter()
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            for start in range(0, len(chats), int(eval_cfg.batch_size)):
                texts = [
                    tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                    for c in chats[start : start + int(eval_cfg.batch_size)]
                ]
                enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                with torch.no_grad():
                    out = model.generate(
                        **enc.to(model.device),
                        do_sample=False,
                        max_new_tokens=int(eval_cfg.max_gen_toks),
                        pad_token_id=tokenizer.pad_token_id,
                    )
                replies += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                # Whole games take minutes: say how far the batch of chats is, as the offline builder does.
                elapsed = time.perf_counter() - started
                log.info(
                    "eval generation: %d/%d chats answered (%.2f chats/s)",
                    len(replies),
                    len(chats),
                    len(replies) / max(elapsed, 1e-9),
                )
        finally:
            tokenizer.padding_side = side
        return replies

    return generate


def scoring_path(cfg: DictConfig, weights: Path, merge: bool | None = None, precision: str = "fp32") -> str:
    """How the trained model is scored: full (its own weights), merged or adapter. `merge` overrides
    eval.path; a quantized base stays unmerged (merging rounds the adapter into 4- or 8-bit weights), and
    so does a base in bf16 or fp16: a LoRA delta of a few of their ulps after short training would be
    rounded away, and the scored model would not be the trained one."""
    if not (weights / "adapter_config.json").exists():
        return "full"
    wanted = cfg.eval.path == "merged" if merge is None else merge
    if wanted and cfg.quant.name != "none":
        log.info("eval.path=merged: the base is %s-quantized, so the adapter is scored unmerged", cfg.quant.name)
        return "adapter"
    if wanted and precision != "fp32":
        log.info(
            "eval.path=merged: the base is in %s, where merging rounds the adapter's delta, so the "
            "adapter is scored unmerged",
            precision,
        )
        return "adapter"
    return "merged" if wanted else "adapter"


def evaluate_run(plan: Plan, weights: Path, merge: bool | None = None) -> dict:
    """Score the base (cached) and the trained model (adapter or full weights); flat `eval/*` metrics.
    `merge` (None: eval.path decides) scores a LoRA merged into its base, with the logit gap recorded."""
    from bench.recipe.models import load_base, load_model, load_tokenizer, model_key

    cfg, runtime, task = plan.config, plan.runtime, plan.task
    if cfg.model.weights == "random":
        return {"eval/skipped": "random weights: accuracy is meaningless"}
    cache.require(
        weights, "saved weights", "Retrain the run (rerun its command with force=true) or restore the folder."
    )
    primary, include, metric = task_spec(task, cfg)
    run_tasks = [primary, *[t for t in cfg.eval.tasks if t != primary]]
    primary_name = primary if isinstance(primary, str) else primary.task_name
    pipeline.ensure(plan.start)  # built by training; a rescore on another machine may lack it
    path = plan.start.origin
    tokenizer = load_tokenizer(path, cfg.model.revision)
    base = base_scores(
        cfg,
        run_tasks,
        include,
        model_key(cfg, path, runtime),
        lambda: (load_base(cfg, path, runtime), tokenizer, task),
    )
    result = {"eval/base_s": base["build_s"], "eval/base_cached": base["cached"]}
    how = scoring_path(cfg, weights, merge, runtime.precision)
    if how != "full":
        from peft import PeftModel

        # The base scores above are the original base's (a pipeline's delta is the whole pipeline's);
        # a second stage's adapter sits on the first stage's model.
        model = PeftModel.from_pretrained(load_base(cfg, plan.start.path, runtime), str(weights))
        if how == "merged":  # what merging changed, on a few held-out prompts, before it is for good
            result["eval/merge_max_abs_logit_diff"] = merge_gap(model, tokenizer, task)
            model = model.merge_and_unload()
    else:  # full fine-tuning saved every weight
        model = load_model(str(weights), runtime, cfg.quant)
    started = time.perf_counter()  # the trained model's scoring alone: what eval.path and batch_size change
    scores = _score(model, tokenizer, run_tasks, include, cfg.eval)
    result["eval/score_s"] = round(time.perf_counter() - started, 3)
    result.update(_flatten("eval/", scores, primary_name, metric))
    result.update(_flatten("eval/base_", base["scores"], primary_name, metric))
    extra = task.extra_eval(chat_generator(model, tokenizer, cfg.eval), cfg.eval.games, cfg.eval.split)
    result.update({f"eval/{k}": v for k, v in extra.items()})
    result.update({f"eval/base_{k}": v for k, v in base["extra"].items()})
    result["eval/delta"] = round(result["eval/accuracy"] - result["eval/base_accuracy"], 6)
    result["eval/task"] = primary_name
    result["eval/split"] = cfg.eval.split  # validation: tuning; test: what is reported
    result["eval/metric"] = metric
    result["eval/merged"] = how == "merged"
    result["gen/eval_path"] = how
    return result


def merge_gap(model, tokenizer, task: Task, n: int = 4) -> float:
    """Largest |logit| difference between the adapter model and its merge, on held-out prompts.

    Computed on a merged copy of the LoRA weights (merge, measure, unmerge), so it runs before the
    caller merges for good.
    """
    import torch

    texts = [
        tokenizer.apply_chat_template(task.messages(ex), add_generation_prompt=True, tokenize=False)
        for ex in task.split("test")[:n]
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    model.eval()
    with torch.no_grad():
        adapter = model(**enc).logits
        model.merge_adapter()
        merged = model(**enc).logits
        model.unmerge_adapter()
    mask = enc["attention_mask"].bool()
    return float((adapter - merged).abs()[mask].max())


def main(argv: list[str] | None = None) -> int:
    from bench.system.runtime import resolve_runtime

    parser = argparse.ArgumentParser(prog="python -m bench.recipe.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="a run's adapter/ (PEFT adapter) or model/ (full weights)")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="score the merged model whatever the run's eval.path says; record the logit gap",
    )
    parser.add_argument(
        "overrides", nargs="*", help="config overrides, e.g. eval.limit=50 (the run's config is the base)"
    )
    args = parser.parse_args(argv)
    weights = args.weights
    adapter = (weights / "adapter_config.json").is_file()
    if not adapter and not (weights / "config.json").is_file():
        print(
            f"bench.recipe.evaluate: {weights} holds neither adapter_config.json (a PEFT adapter) nor config.json "
            "(full weights): not a run's adapter/ or model/ folder.",
            file=sys.stderr,
        )
        return 2
    if args.merge and not adapter:
        print("bench.recipe.evaluate: --merge needs an adapter; full weights are already merged.", file=sys.stderr)
        return 2
    run_config = weights.parent / "config_resolved.yaml"
    if run_config.exists():
        cfg = history.complete(
            files.read_yaml(
                run_config, "It is the run's own config: restore it, or move it away to score with overrides."
            )
        )
        cfg = cast(
            DictConfig, OmegaConf.merge(cfg, OmegaConf.from_dotlist(args.overrides))
        )  # a config merged with a dotlist
    else:  # weights from elsewhere: the default config, with the user's overrides (model, task)
        cfg = compose(args.overrides)
        if adapter:
            from bench.recipe import cards
            from bench.recipe.models import locate

            base, source = cards.base_of(weights)
            if base and not any(o.startswith("model.name_or_path=") for o in args.overrides):
                cfg.model.name_or_path = locate(base, source)
    cfg.output_dir = str(weights.parent)  # the run's folder, wherever it was recorded
    try:
        plan = make(cfg, resolve_runtime(cfg.device, cfg.precision))  # this process's device: it scores here
        plan.runtime.activate()
        result = evaluate_run(plan, weights, merge=True if args.merge else None)
    except BenchError as err:
        print(f"bench.recipe.evaluate: {err}", file=sys.stderr)
        return 2
    out = weights.parent / ("eval_merged.json" if args.merge else "eval.json")
    cache.write_json(out, result, indent=2, sort_keys=True)
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("items")}, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
