"""Scoring with lm-evaluation-harness: base model (cached) and adapter, on the task's held-out split.

    python -m bench.evaluate RUN_DIR/adapter            # score a saved adapter
    python -m bench.evaluate RUN_DIR/adapter --merge    # score the merged model; check merge agreement

The project's lm-eval tasks live in bench/lm_eval_tasks/ as YAML. Each evaluation writes a small
instance YAML (cache_dir/lm_eval_tasks/...) that `include:`s the project YAML and points
`data_files` at absolute paths, because lm-eval resolves relative paths against the working
directory, not the YAML.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.tasks import Task, load_task
from bench.tasks.base import fingerprint

log = logging.getLogger(__name__)
TASK_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"


def task_instance(task: Task, cfg: DictConfig) -> tuple[str, Path]:
    """Write the lm-eval task YAML for this task's data; returns (lm-eval task name, include dir)."""
    import lm_eval

    source = TASK_DIR / f"{task.eval_task}.yaml"
    if not source.exists():
        raise BenchError(f"task.eval_task={task.eval_task!r}: no {source.name} in {TASK_DIR}.")
    spec = yaml.safe_load(source.read_text())
    if str(spec.get("include", "")).startswith("lm_eval:"):
        spec["include"] = str(Path(lm_eval.__file__).parent / spec["include"].removeprefix("lm_eval:"))
    else:
        spec = {"include": str(source), "task": spec["task"]}
    rows = None
    if task.name == "arithmetic":
        rows = [{"question": ex.question, "answer": ex.answer} for ex in task.test]
    elif task.extra.get("data_dir"):
        spec.update(dataset_path="json", dataset_name=None)
        data_dir = Path(task.extra["data_dir"])
        spec["dataset_kwargs"] = {"data_files": {s: str(data_dir / f"{s}.jsonl") for s in ("train", "test")}}
    key = fingerprint({"spec": spec, "rows": rows})
    folder = Path(cfg.cache_dir).expanduser() / "lm_eval_tasks" / f"{spec['task']}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    if rows is not None:
        data = folder / "test.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        spec["dataset_kwargs"] = {"data_files": {"test": str(data)}}
    (folder / f"{spec['task']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec["task"], folder


def _score(model, tokenizer, tasks: list[str], include: Path, eval_cfg: DictConfig) -> dict:
    """Run lm-eval on an in-memory model; returns {task: {metric: value}} plus n per task."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=int(eval_cfg.batch_size))
    gen_kwargs = {"max_gen_toks": int(eval_cfg.max_gen_toks)}
    if eval_cfg.get("until") is not None:
        gen_kwargs["until"] = list(eval_cfg.until)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=TaskManager(include_path=str(include)),
        limit=eval_cfg.limit,
        apply_chat_template=bool(eval_cfg.apply_chat_template),
        system_instruction=eval_cfg.get("system_instruction"),
        gen_kwargs=gen_kwargs,
        log_samples=False,
    )
    out = {}
    for name in tasks:
        metrics = {k: float(v) for k, v in results["results"][name].items() if isinstance(v, (int, float))}
        metrics["n"] = int(results["n-samples"][name]["effective"])
        out[name] = metrics
    return out


def _headline(metrics: dict, metric: str | None) -> tuple[str, float, float]:
    if metric is None:  # an extra task: its first metric
        metric = next(k for k in metrics if "," in k and "_stderr" not in k)
    if metric not in metrics:
        raise BenchError(
            f"lm-eval reported {sorted(metrics)}, not the configured task.eval_metric {metric!r}."
        )
    name, filt = metric.split(",", 1)
    stderr = metrics.get(f"{name}_stderr,{filt}")
    return metric, metrics[metric], stderr


def _flatten(prefix: str, scores: dict, primary: str, primary_metric: str) -> dict:
    """{task: metrics} -> flat keys: the primary task as `<prefix>accuracy`, extra ones as `<prefix><task>/accuracy`."""
    out = {}
    for name, metrics in scores.items():
        metric, value, stderr = _headline(metrics, primary_metric if name == primary else None)
        key = prefix if name == primary else f"{prefix}{name}/"
        out.update({f"{key}accuracy": value, f"{key}stderr": stderr, f"{key}n": metrics["n"]})
    return out


def base_scores(
    cfg: DictConfig, runtime, model, tokenizer, tasks: list[str], include: Path, key_of_model: str
) -> dict:
    """The base model's scores, computed once per (model, eval settings) and cached on disk."""
    import lm_eval

    key = fingerprint(
        {
            "model": key_of_model,
            "tasks": tasks,
            "include": include.name,
            "limit": cfg.eval.limit,
            "eval": OmegaConf.to_container(cfg.eval, resolve=True),
            "lm_eval": lm_eval.__version__,
        }
    )
    path = Path(cfg.cache_dir).expanduser() / "base_scores" / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    scores = _score(model, tokenizer, tasks, include, cfg.eval)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(scores))
    tmp.replace(path)
    return scores


def evaluate_adapter(cfg: DictConfig, runtime, adapter_dir: Path, merge: bool = False) -> dict:
    """Score base (cached) and adapter (or the merged model) with lm-eval; flat `eval/*` metrics."""
    from peft import PeftModel

    from bench.models import load_base, load_tokenizer, model_key, resolve_model_path

    if cfg.model.weights == "random":
        return {"eval/skipped": "random weights: accuracy is meaningless"}
    started = time.perf_counter()
    task = load_task(cfg.task)
    primary, include = task_instance(task, cfg)
    tasks = [primary, *[t for t in cfg.eval.tasks if t != primary]]
    path = resolve_model_path(str(cfg.model.name_or_path), cfg.cache_dir)
    tokenizer = load_tokenizer(path, cfg.model.revision)
    model = load_base(cfg, path, runtime)
    base = base_scores(cfg, runtime, model, tokenizer, tasks, include, model_key(cfg, path, runtime))
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    result = {}
    if merge:
        result["eval/merge_max_abs_logit_diff"] = merge_gap(model, tokenizer, task)
        model = model.merge_and_unload()
    scores = _score(model, tokenizer, tasks, include, cfg.eval)
    result.update(_flatten("eval/", scores, primary, cfg.task.eval_metric))
    result.update(_flatten("eval/base_", base, primary, cfg.task.eval_metric))
    result["eval/delta"] = round(result["eval/accuracy"] - result["eval/base_accuracy"], 6)
    result["eval/task"] = primary
    result["eval/metric"] = cfg.task.eval_metric
    result["eval/merged"] = merge
    result["eval/wall_s"] = round(time.perf_counter() - started, 3)
    return result


def merge_gap(model, tokenizer, task: Task, n: int = 4) -> float:
    """Largest |logit| difference between the adapter model and its merge, on held-out prompts.

    Computed on a merged copy of the LoRA weights (merge, measure, unmerge), so it runs before the
    caller merges for good.
    """
    import torch

    texts = [
        tokenizer.apply_chat_template(task.messages(ex), add_generation_prompt=True, tokenize=False)
        for ex in task.test[:n]
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
    from bench.config import compose
    from bench.models import resolve_runtime

    parser = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("adapter_dir", type=Path, help="a saved PEFT adapter (a run's adapter/ folder)")
    parser.add_argument("--merge", action="store_true", help="score the merged model; record the logit gap")
    parser.add_argument(
        "overrides", nargs="*", help="config overrides, e.g. eval.limit=50 (the run's config is the base)"
    )
    args = parser.parse_args(argv)
    adapter_dir = args.adapter_dir
    if not (adapter_dir / "adapter_config.json").is_file():
        print(
            f"bench.evaluate: {adapter_dir} holds no adapter_config.json: not a saved PEFT adapter.",
            file=sys.stderr,
        )
        return 2
    run_config = adapter_dir.parent / "config_resolved.yaml"
    if run_config.exists():
        cfg = OmegaConf.load(run_config)
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(args.overrides))
    else:  # an adapter from elsewhere: the default config, with the user's overrides (model, task)
        cfg = compose(args.overrides)
        base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if base and not any(o.startswith("model.name_or_path=") for o in args.overrides):
            cfg.model.name_or_path = base
    try:
        runtime = resolve_runtime(cfg.device, cfg.precision)
        result = evaluate_adapter(cfg, runtime, adapter_dir, merge=args.merge)
    except BenchError as err:
        print(f"bench.evaluate: {err}", file=sys.stderr)
        return 2
    out = adapter_dir.parent / ("eval_merged.json" if args.merge else "eval.json")
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
