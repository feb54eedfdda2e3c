"""The method's TRL config from the shared settings: what the harness owns, what it refuses."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.system.runtime import Runtime


def trainer_kwargs(cfg: DictConfig, runtime: Runtime, method=None) -> dict:
    """train.args, the shared sampling settings, the method's args, then what the harness owns
    (precision, seed, outputs, the dropout policy).

    `method` (a methods.Method) says which of its config's fields take the shared `sampling:` values
    and whether its config has a `disable_dropout` switch; without it only the generic fields are set.
    """
    import dataclasses

    method_args = cast("dict[str, Any]", OmegaConf.to_container(cfg.method.get("args") or {}, resolve=True))
    sampling = cast("dict[str, Any]", OmegaConf.to_container(cfg.get("sampling") or {}, resolve=True))
    shared = {  # the method's own YAML wins: a declared difference the fairness audit shows
        field: sampling[key]
        for key, field in (method.sampling if method else {}).items()
        if key in sampling and field not in method_args
    }
    kwargs = {**cast("dict[str, Any]", OmegaConf.to_container(cfg.train.args, resolve=True)), **shared, **method_args}
    fields = {f.name for f in dataclasses.fields(method.config_class)} if method else set()
    owned = {
        "output_dir": str(Path(cfg.output_dir) / "trainer"),
        "seed": int(cfg.seed),
        "report_to": [],  # the harness logs to W&B itself, the same way for every method (bench.records.tracking)
        **runtime.trainer_flags,
    }
    if method is not None and method.weights_field:  # the task's weights: one scalar reward for every method
        weights = cast("dict[str, float]", OmegaConf.to_container(cfg.task.reward_weights, resolve=True))
        owned[method.weights_field] = list(weights.values())
    if "disable_dropout" in fields:  # one dropout policy for every method (train.disable_dropout)
        owned["disable_dropout"] = bool(cfg.train.disable_dropout)
    if kwargs.get("disable_tqdm") is None:  # bars in a terminal; readable log lines in CI and files
        kwargs["disable_tqdm"] = not sys.stderr.isatty()
    clash = sorted(k for k in owned if k in kwargs)
    if clash:
        raise BenchError(
            f"train.args/method.args set {clash}, which the harness owns so that every method runs alike: "
            "use the top-level seed=, precision= (auto|bf16|fp16|fp32), device=, logger=, "
            "train.disable_dropout= (one dropout policy for every method) and task.reward_weights= instead."
        )
    kwargs.update(owned)
    return kwargs


def build_trainer_config(config_class: type, kwargs: dict, method: str):
    """Pass the args straight into the TRL dataclass; turn its complaints into one clear paragraph."""
    try:
        return config_class(**kwargs)
    except TypeError as err:
        import dataclasses

        known = {f.name for f in dataclasses.fields(config_class)}
        unknown = sorted(set(kwargs) - known)
        import difflib

        hints = [
            f"{k} (did you mean {difflib.get_close_matches(k, known, n=1)[0]}?)"
            if difflib.get_close_matches(k, known, n=1)
            else k
            for k in unknown
        ]
        raise BenchError(
            f"method={method}: {config_class.__name__} has no field(s) {', '.join(hints) or err}. "
            f"Method settings go under method.args and must be fields of {config_class.__module__}."
            f"{config_class.__name__}; shared ones under train.args."
        ) from err
    except ValueError as err:
        raise BenchError(f"method={method}: {config_class.__name__} rejected the settings: {err}") from err


def unmeasured(kwargs: dict, method: str) -> None:
    """Refuse TRL settings that move a run's work where the harness cannot measure it (into another
    process, whose memory and time no record of this run would hold), or that undo its dtype rule."""
    if kwargs.get("use_vllm") and kwargs.get("vllm_mode", "colocate") == "server":
        raise BenchError(
            f"method={method}: use_vllm with vllm_mode=server generates in a separate `trl vllm-serve` process, "
            "whose memory and time this run cannot measure, unlike the other methods'. Use "
            "method.args.vllm_mode=colocate (vLLM inside the run), or leave use_vllm off."
        )
    if kwargs.get("use_transformers_paged"):
        raise BenchError(
            f"method={method}: use_transformers_paged casts the whole model to bf16 at every generation, the "
            "fp32 adapter (and a full fine-tune's master weights) included, mid-run. Leave it off."
        )
    if int(kwargs.get("dataloader_num_workers") or 0) > 0:
        raise BenchError(
            f"method={method}: dataloader_num_workers={kwargs['dataloader_num_workers']} loads data in worker "
            "processes, whose memory and time this run does not measure. Leave it at 0 (the batches here are "
            "token ids already in memory)."
        )
