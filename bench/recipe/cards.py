"""Saved weights that travel: the adapter names its base by identity, and every saved folder has a
model card (README.md) in the Hugging Face format, built with huggingface_hub's ModelCard.

peft writes `base_model_name_or_path` as whatever path the base was loaded from, which for the embedded
model is this machine's cache folder: on any other machine neither peft nor lm-eval's `peft=` finds it.
`stamp` replaces it with the base's identity (models.identity); the card records the embedded source
beside it (`base_model_source`, a metadata key of its own, since peft warns on unknown config keys).
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.config import stages
from bench.config.stages import Stage
from bench.recipe import pipeline
from bench.recipe.models import identity
from bench.system import cache, files

CARD = "README.md"
# The record's keys a card shows, in this order (those a run has).
KEY_METRICS = (
    "eval/accuracy", "eval/base_accuracy", "eval/delta", "eval/n", "eval/split",
    "params/trainable", "train/steps", "time/total_s", "sys/peak_mem_bytes",
)


def stamp(folder: Path, cfg: DictConfig, stage: Stage | None) -> None:
    """Name the base by its identity in a just-saved adapter's adapter_config.json (`stage`: the run's
    first stage, whose model a second stage's adapter sits on)."""
    config = Path(folder) / "adapter_config.json"
    if not config.is_file():  # full weights: config.json describes the architecture, not a base
        return
    data = files.read_json(config)
    data["base_model_name_or_path"] = identity(str(cfg.model.name_or_path))[0]
    if stage is not None:  # a second stage's adapter sits on the first stage's model, not on the hub base
        from bench.recipe.models import resolve_model_path

        origin = resolve_model_path(str(cfg.model.name_or_path), cfg.cache_dir)
        start, _ = pipeline.start_path(stage, origin, str(cfg.cache_dir))
        data["base_model_name_or_path"] = str(Path(start).resolve())
    cache.write_json(config, data, indent=2, sort_keys=True)


def write_card(folder: Path, cfg: DictConfig, record: dict) -> None:
    """The model card of a run's adapter/ or model/ folder; its manifest is renewed to include it."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    folder = Path(folder)
    adapter = (folder / "adapter_config.json").is_file()
    base, source = identity(str(cfg.model.name_or_path))
    method, task = str(cfg.method.name), str(cfg.task.name)
    name = f"{method}-{task}-seed{cfg.seed}"
    results = []
    if isinstance(record.get("eval/accuracy"), (int, float)):
        results = [EvalResult(
            task_type="text-generation", dataset_type=task, dataset_name=f"{task} (rft-bench)",
            dataset_split=str(record.get("eval/split", "test")), metric_type="accuracy",
            metric_value=float(record["eval/accuracy"]),
        )]
    extra = {"base_model_source": source} if source else {}
    data = ModelCardData(
        model_name=name, base_model=base, library_name="peft" if adapter else "transformers",
        tags=["rft-bench", method, "lora" if adapter else "full-fine-tuning", f"task:{task}"],
        eval_results=results or None, **extra,
    )
    peft = {k: v for k, v in (OmegaConf.to_container(cfg.peft, resolve=True) if cfg.peft else {}).items()
            if v is not None and not k.startswith("_")} or "none (full fine-tuning)"
    metrics = "\n".join(f"| `{k}` | {record[k]} |" for k in KEY_METRICS if k in record)
    load = (
        f"from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"{folder.name}\")"
        if adapter else
        f"from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained(\"{folder.name}\")"
    )
    body = f"""# {name}

{"A LoRA adapter" if adapter else "Fully fine-tuned weights"} for `{base}`, trained with **{method}** on the
`{task}` task by rft-bench (`python -m bench method={method} task={task} seed={cfg.seed}`).
{f"{chr(10)}Trained on top of the run `{cfg.init_from}` (a second stage, bench/recipe/pipeline.py): its base is that run's model, `{record.get('pipeline/from')}`.{chr(10)}" if stages.spec(cfg) else ""}{f"{chr(10)}The base was `{source}`: the adapter was trained on those weights, which are close to the hub model's but not equal, so scores on the hub model can differ slightly.{chr(10)}" if source else ""}
## Training

- method: `{method}` (TRL trainer, arguments in the run's `config_resolved.yaml`)
- task: `{task}`, seed {cfg.seed}, learning rate {cfg.train.args.learning_rate}
- peft: `{json.dumps(peft, sort_keys=True, default=str)}`
- quantization: `{cfg.quant.name}`

## Results

| metric | value |
|---|---|
{metrics}

## Use

```python
{load}
```

or score it with lm-eval: `lm_eval --model hf --model_args pretrained={base}{f",peft={folder.name}" if adapter else ""} ...`
"""
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}", body=body)
    cache.write_text(folder / CARD, str(card))
    cache.seal(folder)


def base_of(folder: Path) -> tuple[str | None, str | None]:
    """(the base's identity, its recorded source) of a saved adapter, from its config and card."""
    from huggingface_hub import ModelCard

    folder = Path(folder)
    base = files.read_json(folder / "adapter_config.json").get("base_model_name_or_path")
    source = None
    if (folder / CARD).is_file():
        source = ModelCard(files.read_text(folder / CARD)).data.to_dict().get("base_model_source")
    return base, source
