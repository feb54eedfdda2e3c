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
from typing import Any, cast

from omegaconf import OmegaConf

from bench.recipe.models import identity
from bench.recipe.plan import Plan
from bench.system import cache, files

CARD = "README.md"
# The record's keys a card shows, in this order (those a run has).
KEY_METRICS = (
    "eval/accuracy",
    "eval/base_accuracy",
    "eval/delta",
    "eval/n",
    "eval/split",
    "params/trainable",
    "train/steps",
    "time/total_s",
    "sys/peak_mem_bytes",
)


def stamp(folder: Path, plan: Plan) -> None:
    """Name the base by its identity in a just-saved adapter's adapter_config.json; a second stage's
    adapter sits on the first stage's model (the plan's start), not on the hub base."""
    config = Path(folder) / "adapter_config.json"
    if not config.is_file():  # full weights: config.json describes the architecture, not a base
        return
    data = files.read_json(config)
    data["base_model_name_or_path"] = identity(plan.start.name_or_path)[0]
    if plan.stage is not None:
        data["base_model_name_or_path"] = str(Path(plan.start.path).resolve())
    cache.write_json(config, data, indent=2, sort_keys=True)


def write_card(folder: Path, plan: Plan, record: dict) -> None:
    """The model card of a run's adapter/ or model/ folder; its manifest is renewed to include it."""
    from huggingface_hub import ModelCard

    folder = Path(folder)
    adapter = (folder / "adapter_config.json").is_file()
    base, source = identity(plan.start.name_or_path)
    data = _card_data(plan, record, adapter, base, source)
    body = (
        "\n\n".join(
            part
            for part in (
                f"# {data.model_name}",
                _summary(plan, adapter, base, source, record),
                "## Training\n\n" + "\n".join(f"- {line}" for line in _training(plan)),
                "## Results\n\n| metric | value |\n|---|---|\n"
                + "\n".join(f"| `{k}` | {record[k]} |" for k in KEY_METRICS if k in record),
                "## Use\n\n" + _use(folder.name, adapter, base),
            )
            if part
        )
        + "\n"
    )
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}", body=body)
    cache.write_text(folder / CARD, str(card))
    cache.seal(folder)


def _card_data(plan: Plan, record: dict, adapter: bool, base: str, source: str | None):
    """The card's metadata: the hub's model-index, with the run's accuracy where it was scored."""
    from huggingface_hub import EvalResult, ModelCardData

    cfg = plan.config
    method, task = str(cfg.method.name), str(cfg.task.name)
    results = None
    if isinstance(record.get("eval/accuracy"), (int, float)):
        results = [
            EvalResult(
                task_type="text-generation",
                dataset_type=task,
                dataset_name=f"{task} (rft-bench)",
                dataset_split=str(record.get("eval/split", "test")),
                metric_type="accuracy",
                metric_value=float(record["eval/accuracy"]),
            )
        ]
    extra: dict[str, Any] = {"base_model_source": source} if source else {}
    return ModelCardData(
        model_name=f"{method}-{task}-seed{cfg.seed}",
        base_model=base,
        library_name="peft" if adapter else "transformers",
        tags=["rft-bench", method, "lora" if adapter else "full-fine-tuning", f"task:{task}"],
        eval_results=results,
        **extra,
    )


def _summary(plan: Plan, adapter: bool, base: str, source: str | None, record: dict) -> str:
    cfg = plan.config
    method, task, seed = cfg.method.name, cfg.task.name, cfg.seed
    what = "A LoRA adapter" if adapter else "Fully fine-tuned weights"
    lines = [
        f"{what} for `{base}`, trained with **{method}** on the `{task}` task by rft-bench "
        f"(`python -m bench method={method} task={task} seed={seed}`)."
    ]
    if plan.stage is not None:
        lines.append(
            f"Trained on top of the run `{cfg.init_from}` (a second stage, bench/recipe/pipeline.py): "
            f"its base is that run's model, `{record.get('pipeline/from')}`."
        )
    if source:
        lines.append(
            f"The base was `{source}`: the adapter was trained on those weights, which are close to the "
            "hub model's but not equal, so scores on the hub model can differ slightly."
        )
    return "\n\n".join(lines)


def _training(plan: Plan) -> list[str]:
    """How it was trained. The learning rate is the validated TRL config's: method.args overrides train.args."""
    cfg = plan.config
    settings = cast("dict[str, Any]", OmegaConf.to_container(cfg.peft, resolve=True)) if plan.peft is not None else {}
    peft = {k: v for k, v in settings.items() if v is not None and not k.startswith("_")} or "none (full fine-tuning)"
    return [
        f"method: `{cfg.method.name}` (TRL trainer, arguments in the run's `config_resolved.yaml`)",
        f"task: `{cfg.task.name}`, seed {cfg.seed}, learning rate {plan.trainer_config.learning_rate}",
        f"peft: `{json.dumps(peft, sort_keys=True, default=str)}`",
        f"quantization: `{cfg.quant.name}`",
    ]


def _use(folder: str, adapter: bool, base: str) -> str:
    if adapter:
        load = (
            f'from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained("{folder}")'
        )
    else:
        load = (
            f'from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained("{folder}")'
        )
    peft = f",peft={folder}" if adapter else ""
    return (
        f"```python\n{load}\n```\n\nor score it with lm-eval: "
        f"`lm_eval --model hf --model_args pretrained={base}{peft} ...`"
    )


def base_of(folder: Path) -> tuple[str | None, str | None]:
    """(the base's identity, its recorded source) of a saved adapter, from its config and card."""
    from huggingface_hub import ModelCard

    folder = Path(folder)
    base = files.read_json(folder / "adapter_config.json").get("base_model_name_or_path")
    source = None
    if (folder / CARD).is_file():
        source = ModelCard(files.read_text(folder / CARD)).data.to_dict().get("base_model_source")
    return base, source
