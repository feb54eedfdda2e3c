"""What actually applied in a run, read from the built trainer and model, and the audit that compares it
between the rows of a report.

Each run records (`fair/*` in metrics.json):
- `fair/trl_config`: every field of the TRL config the trainer was built with (`trainer.args`);
- `fair/declared`: the fields this run chose on purpose: its method's YAML `args`, its tuned settings and
  its sweep overrides (a sweep over `train.args.learning_rate` declares learning_rate);
- `fair/dropout`: the largest dropout probability active in the trained model's modules during training;
- `fair/temperature`, `fair/top_p`, `fair/max_new_tokens`: the sampling that generated its training
  data, seen at the model's `generate()` (online rollouts, or the offline data builder's samples).

The audit (`audit(records)`, in every report) lists every setting that differs between rows and marks it
declared or not. The rule: rows that declare a setting may differ in it; rows that do not must agree
among themselves. So DPO's `beta` against KTO's is a declared difference, and a library default that
happens to differ between two trainers (GRPO's `disable_dropout=False` against DPO's `True`) is not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from transformers import TrainerCallback

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("temperature", "top_p", "max_new_tokens")
# What differs from run to run by construction, not by choice: where it writes, its seed, its name.
PER_RUN_FIELDS = frozenset(
    {"output_dir", "logging_dir", "run_name", "seed", "data_seed", "hub_model_id", "hub_token", "trackio_space_id"}
)
# Fields that cannot act in this harness, so trainers whose defaults differ in them differ in nothing:
# each adapter hands its trainer the task's reward itself (PPO's default reward model path is never
# loaded), and vLLM's settings are read only with use_vllm on (then they are compared like any other).
INERT_FIELDS = frozenset({"reward_model_path"})
# Read only by mixture-of-experts models (their router's auxiliary loss): inert on a dense model (the
# record's model/moe says which). TRL 1.16 defaults it to None where 1.12 had 0.001, and refuses a value on
# a dense model, so it cannot be pinned for both.
MOE_FIELDS = frozenset({"router_aux_loss_coef"})
# TRL derives each of these from the other: a row that declares one has chosen both.
DERIVED = {"steps_per_generation": "generation_batch_size", "generation_batch_size": "steps_per_generation"}
# Harness facts compared beside the TRL fields; a row declares one through the keys named here.
FACTS = {
    "fair/dropout": ("train.disable_dropout", "peft.lora_dropout"),
    # The shared prompt budget (every method's prompts cut to it alike; each max_length derived from it).
    "fair/max_prompt_length": ("train.max_prompt_length",),
    **{f"fair/{k}": (f"sampling.{k}",) for k in SAMPLING_KEYS},
}


# ---- what applied in the run -----------------------------------------------------------------------


def _dropout_modules(model):
    """(module, p) for every dropout in the model: nn.Dropout modules (LoRA's among them) and attention
    modules that apply dropout functionally (transformers' `attention_dropout` attribute)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            yield module, "p"
        elif isinstance(getattr(module, "attention_dropout", None), float):
            yield module, "attention_dropout"


def disable_dropout(model) -> None:
    """Every dropout probability to 0: TRL's `disable_dropout_in_model`, plus functional attention dropout."""
    for module, attr in _dropout_modules(model):
        setattr(module, attr, 0.0)


def active_dropout(model) -> float:
    """The largest dropout probability that is active now (its module in training mode)."""
    return max((float(getattr(m, a)) for m, a in _dropout_modules(model) if m.training), default=0.0)


class DropoutProbe(TrainerCallback):
    """Reads the active dropout of `model` at the start and end of every step; keeps the largest.

    `model` is set by the harness once the trainer exists (TRL wraps the model inside the trainer).
    Reading at step boundaries costs one walk over the modules per step (~1 ms), not a hook per forward.
    """

    def __init__(self) -> None:
        self.model = None
        self.largest: float | None = None

    def _read(self) -> None:
        if self.model is not None and self.model.training:
            value = active_dropout(self.model)
            self.largest = value if self.largest is None else max(self.largest, value)

    def on_step_begin(self, args, state, control, **kwargs):
        self._read()

    def on_step_end(self, args, state, control, **kwargs):
        self._read()


class GenerationRecorder:
    """Wraps a model's `generate` (an instance attribute, so peft's wrappers reach it too) and records
    the effective sampling settings of every call: the call's keyword arguments over its generation
    config over the model's. `phase` tags the calls (setup: the offline data builder; train: rollouts)."""

    def __init__(self, model) -> None:
        self.model, self.calls, self.phase = model, [], "setup"
        self.shapes: list[tuple[str, int, int]] = []  # (phase, batch, prompt + generated length) per call
        self._original = model.generate
        model.generate = self._generate

    def _generate(self, *args, **kwargs):
        config = kwargs.get("generation_config") or self.model.generation_config

        def get(name):
            return kwargs[name] if name in kwargs else getattr(config, name, None)

        sample = bool(get("do_sample"))
        temperature = get("temperature") if sample else 0.0
        self.calls.append(
            {
                "phase": self.phase,
                # PPO adds 1e-7 to its temperature to avoid dividing by zero: round that away.
                "temperature": round(float(temperature if temperature is not None else 1.0), 4),
                "top_p": round(float(get("top_p") or 1.0), 4) if sample else None,
                "max_new_tokens": get("max_new_tokens"),
            }
        )
        from bench.measure import metrics

        metrics.set_activity("generate")  # the memory sampler keeps this call's exact peak apart
        try:
            out = self._original(*args, **kwargs)
        finally:
            metrics.set_activity("step")
        sequences = getattr(out, "sequences", out)
        if hasattr(sequences, "shape") and len(sequences.shape) == 2:
            self.shapes.append((self.phase, int(sequences.shape[0]), int(sequences.shape[1])))
        return out

    def kv_cache_bytes(self, phase: str) -> int:
        """The largest KV cache one generate() call of `phase` held at its end: keys and values of every
        layer for every sequence at its full length (counted from the shapes, as bench.studies.decode does)."""
        import torch

        from bench.studies.decode import kv_bytes

        config = getattr(self.model, "config", None)
        # The cache is in the compute dtype (a 4-bit model's parameters are packed bytes).
        element = torch.empty((), dtype=self.model.dtype).element_size() if config is not None else 0
        sizes = [kv_bytes(config, batch, length, element) for p, batch, length in self.shapes if p == phase]
        return int(max(sizes, default=0))

    def close(self) -> None:
        if self.model.__dict__.get("generate") == self._generate:
            del self.model.__dict__["generate"]

    def settings(self, phase: str) -> dict:
        """`fair/temperature` etc. for the calls of one phase: one value each, or the distinct values."""
        calls = [c for c in self.calls if c["phase"] == phase]
        out = {}
        for key in SAMPLING_KEYS:
            values = sorted({c[key] for c in calls}, key=str)
            if values:
                out[f"fair/{key}"] = values[0] if len(values) == 1 else values
        return out


def trl_config(args) -> dict:
    """The effective TRL config as plain values (TrainingArguments.to_dict masks tokens)."""
    import json

    return json.loads(json.dumps(args.to_dict(), default=str))


def declared(method_args: dict, tuned: dict, overrides: list[str], sampling_fields: dict[str, str] | None = None) -> list[str]:
    """The settings a run chose on purpose: TRL field names and `fair/*` facts.

    The method's YAML args (and any `method.args.*` override) declare their fields; tuned settings and
    sweep overrides declare what their dotted keys set (`train.args.learning_rate` → learning_rate,
    `sampling.temperature` → fair/temperature as well as the method's own temperature field).
    """
    names = set(method_args)
    names |= {DERIVED[n] for n in names if n in DERIVED}
    keys = list(tuned) + [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]
    for key in keys:
        if key.startswith(("train.args.", "method.args.")):
            names.add(key.rsplit(".", 1)[1])
        for fact, sources in FACTS.items():
            if key in sources:
                names.add(fact)
        if key == "train.disable_dropout":
            names.add("disable_dropout")
        if key.startswith("sampling."):
            shared = key.split(".", 1)[1]
            names.add((sampling_fields or {}).get(shared, shared))
    return sorted(names)


def sampling_declared(method_args: dict, sampling_fields: dict[str, str]) -> list[str]:
    """`fair/<key>` for each shared sampling setting the method's YAML overrides through its own field."""
    return [f"fair/{key}" for key, field in sampling_fields.items() if field in method_args]


# ---- the audit -------------------------------------------------------------------------------------


@dataclass
class Difference:
    setting: str  # a TRL field name, or a fair/* fact
    values: dict[str, object]  # row label -> value (rows that have the setting)
    declared_by: list[str]  # row labels that declare it
    declared: bool  # every row that does not declare it agrees with the others that do not

    @property
    def verdict(self) -> str:
        return "declared" if self.declared else "NOT DECLARED"


def _row_settings(record: dict) -> dict:
    config = record.get("fair/trl_config") or {}
    vllm = bool(config.get("use_vllm"))
    settings = {
        k: v
        for k, v in config.items()
        if k not in PER_RUN_FIELDS and k not in INERT_FIELDS and (vllm or not k.startswith("vllm_"))
        and (record.get("model/moe") or k not in MOE_FIELDS)
    }
    settings.update({k: record[k] for k in FACTS if record.get(k) is not None})
    # Package versions: no method declares them, so rows on another TRL (or torch, peft...) differ undeclared.
    settings.update({k: v for k, v in record.items() if k.startswith("versions/") and v is not None})
    return settings


def _key(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


# A setting some of a row's runs have and others lack (a field of one TRL version only, say).
_ABSENT = "(absent)"


def _within(value) -> bool:
    return isinstance(value, dict) and "differs within row" in value


def audit(rows: dict[str, list[dict]]) -> list[Difference]:
    """Every setting that differs between rows ({label: the row's successful run records}).

    A row whose own runs disagree on a setting (other than the per-run fields) shows their distinct
    values under "differs within row", which is itself a difference worth seeing.
    """
    settings: dict[str, dict[str, object]] = {}
    declares: dict[str, set[str]] = {}
    for label, records in rows.items():
        if not records:
            continue
        declares[label] = set().union(*(set(r.get("fair/declared") or []) for r in records))
        per_run = [_row_settings(r) for r in records]
        for name in set().union(*per_run):
            distinct = {_key(s.get(name, _ABSENT)): s.get(name, _ABSENT) for s in per_run}
            value = next(iter(distinct.values())) if len(distinct) == 1 else {"differs within row": list(distinct.values())}
            settings.setdefault(name, {})[label] = value
    out = []
    for name in sorted(settings):
        values = settings[name]
        within = any(_within(v) for v in values.values())
        if not within and (len(values) < 2 or len({_key(v) for v in values.values()}) < 2):
            continue
        by = sorted(label for label in values if name in declares.get(label, ()))
        undeclared = {_key(v) for label, v in values.items() if label not in by}
        # Runs of one row differ only by seed, so a setting that varies inside an undeclaring row is
        # as much a hidden difference as one that varies between rows.
        inside = any(_within(v) for label, v in values.items() if label not in by)
        out.append(Difference(name, values, by, declared=len(undeclared) <= 1 and not inside))
    return out


def to_markdown(differences: list[Difference]) -> str:
    """The report's "Fairness audit" section."""
    lines = ["## Fairness audit", ""]
    undeclared = [d for d in differences if not d.declared]
    if not differences:
        lines.append("Every row ran with the same effective TRL settings, dropout and sampling: no difference.")
        return "\n".join(lines)
    if undeclared:
        lines.append(
            f"**Warning: {len(undeclared)} undeclared difference(s)** — settings that differ between rows "
            "although no method's YAML, tuned setting or sweep override chose them (a library default "
            "that differs between trainers, most likely): "
            + ", ".join(f"`{d.setting}`" for d in undeclared)
            + ". Pin them in conf/ so that every row agrees, or declare them in the method's YAML."
        )
    else:
        lines.append(
            "No undeclared difference: every setting that differs between rows was chosen by a method's "
            "YAML, its tuned settings or the sweep's overrides."
        )
    lines += ["", "| setting | verdict | declared by | values |", "|---|---|---|---|"]
    for d in differences:
        values = "; ".join(f"{label}: {_key(v)}" for label, v in d.values.items())
        lines.append(f"| `{d.setting}` | {d.verdict} | {', '.join(d.declared_by) or '–'} | {values} |")
    return "\n".join(lines)
