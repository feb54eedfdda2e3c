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

from dataclasses import dataclass

from bench.config.declared import FACTS

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
        if k not in PER_RUN_FIELDS
        and k not in INERT_FIELDS
        and (vllm or not k.startswith("vllm_"))
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
            value = (
                next(iter(distinct.values())) if len(distinct) == 1 else {"differs within row": list(distinct.values())}
            )
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
