"""Composing the config outside Hydra's main, and a tuning study's per-method settings laid over it."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.config import history
from bench.config.finetuning import is_full
from bench.system import files

log = logging.getLogger(__name__)


CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


# `${rft.sum:a,b,...}`: conf/config.yaml derives each method's max_length from the prompt budget with it.
OmegaConf.register_new_resolver("rft.sum", lambda *terms: sum(int(t) for t in terms), replace=True)
# `${rft.level:${verbose}}`: Hydra's own log level (conf/hydra/hydra_logging/quiet.yaml).
OmegaConf.register_new_resolver("rft.level", lambda verbose: "INFO" if verbose else "WARNING", replace=True)


# The tuned table's entries for one fine-tuning mode of a method, laid over the method's own: `dpo+full`
# for full fine-tuning (peft=none), `sft+lora` for adapter runs (any peft config). Full fine-tuning's best
# rate is an order of magnitude below LoRA's, so a LoRA-vs-full comparison at one rate measures the rate,
# not the fine-tuning (conf/experiment/claims/lora_memory.yaml).
FULL_ENTRY, ADAPTER_ENTRY = "+full", "+lora"


MODE_ENTRIES = (FULL_ENTRY, ADAPTER_ENTRY)


def tuned_settings(cfg: DictConfig) -> dict:
    """{dotted key: value} the tuned table sets for this run: its method's entry, with the entry for its
    mode over it (`<method>+full` for peft=none, `<method>+lora` for an adapter)."""

    table = cfg.get("tuned") or {}
    if isinstance(table, str):
        return {}
    settings = dict(table.get(cfg.method.name) or {})
    mode = FULL_ENTRY if is_full(cfg.get("peft")) else ADAPTER_ENTRY
    settings.update(table.get(cfg.method.name + mode) or {})
    return settings


def apply_tuned(cfg: DictConfig, overrides: list[str] | None = None) -> DictConfig:
    """Apply `tuned[<method name>]` ({dotted key: value}, from a tuning study) to `cfg`, in place.

    `tuned` may also name a YAML file holding the table (`tuned: {...}`), as a tuning study writes it.
    A key the command line sets itself (`overrides`, else the run's recorded `cfg.overrides`) keeps the
    command line's value: `experiment=tuned train.args.learning_rate=1e-5,3e-5` sweeps the rate at the
    other tuned settings (how full fine-tuning's rate is tuned at LoRA's tuned beta), where the table
    would otherwise overwrite it silently. Idempotent, so composing and running may both call it. An
    unknown key fails here, before any work.
    """
    table = cfg.get("tuned") or {}
    if isinstance(table, str):  # a study's tuned.yaml (bench.studies.tune): its values replace the path
        path = Path(table).expanduser()
        if not path.is_file():
            raise BenchError(f"tuned={table!r} is not a file; pass a tuning study's tuned.yaml, or a mapping.")
        loaded = files.read_yaml(path, "Fix it, or rerun the tuning study that wrote it.")
        table = loaded.get("tuned", loaded)
        cfg.tuned = table
    settings = tuned_settings(cfg)
    given = {
        o.split("=", 1)[0].lstrip("+~") for o in (overrides if overrides is not None else cfg.get("overrides") or [])
    }
    for key, value in settings.items():
        if key in given:
            continue
        parent = key.rsplit(".", 1)[0] if "." in key else None
        if parent and OmegaConf.select(cfg, parent) is None:
            raise BenchError(
                f"tuned.{cfg.method.name}: {key!r} names no setting of this config ({parent} is absent); "
                "rerun the tuning study or fix conf/experiment/tuned.yaml."
            )
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    return cfg


def groups(roots: tuple[Path, ...] = (CONF_DIR,)) -> list[str]:
    """The app's config groups: the folders of conf/ (Hydra's own `hydra/...` groups aside)."""
    return sorted({p.name for root in roots for p in root.iterdir() if p.is_dir() and p.name != "hydra"})


def choices(group: str, roots: tuple[Path, ...] = (CONF_DIR,)) -> list[str]:
    """A group's options as a command line names them: conf/<group>/**/*.yaml, relative, no suffix."""
    folders = [root / group for root in roots]
    return sorted({str(p.relative_to(f).with_suffix("")) for f in folders if f.is_dir() for p in f.rglob("*.yaml")})


def _config_roots(args: list[str]) -> tuple[Path, ...] | None:
    """conf/ and the folders the command line adds (`hydra.searchpath=[file://...]`, `--config-dir D`);
    None where it points Hydra somewhere this cannot read (a package, another primary config)."""
    roots = [CONF_DIR]
    for i, arg in enumerate(args):
        flag, _, value = arg.partition("=")
        if flag in ("--config-path", "-cp", "--config-name", "-cn"):
            return None
        if flag in ("--config-dir", "-cd"):
            roots.append(Path(value or (args[i + 1] if i + 1 < len(args) else "")).expanduser())
        elif flag.lstrip("+") == "hydra.searchpath":
            for entry in value.strip("[]").split(","):
                entry = entry.strip().strip("'\"")
                if entry.startswith("pkg://"):
                    return None
                if entry:
                    roots.append(Path(entry.removeprefix("file://")).expanduser())
    return tuple(r for r in roots if r.is_dir())


def unknown_choice(overrides: list[str]) -> str | None:
    """One line for the first `group=name` override naming no file in conf/<group>/ (a sweep's list
    included): the nearest names and where to see them all, in place of Hydra's "Could not find", its
    list, its search path and its HYDRA_FULL_ERROR hint. None when every named option exists; whatever
    else is wrong with the overrides is left to Hydra, which says it in its own words."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep
    from hydra.errors import HydraException

    roots = _config_roots(overrides)
    if roots is None:
        return None
    parser, known = OverridesParser.create(), set(groups(roots))
    for text in overrides:
        if text.startswith("-") or "=" not in text or text.lstrip("+~").split("=", 1)[0].split("@")[0] not in known:
            continue  # a flag (-m, --cfg), or a setting rather than a group's option
        try:
            override = parser.parse_override(text)
        except HydraException:
            continue
        value = override.value()
        names = value.list if isinstance(value, ChoiceSweep) else [] if override.is_sweep_override() else [value]
        options = choices(override.key_or_group, roots)
        for name in (str(n) for n in names if n is not None):
            if name not in options:
                return _did_you_mean(override.key_or_group, name, options)
    return None


def _did_you_mean(group: str, name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    names = ", ".join(close[:-1]) + f" or {close[-1]}" if len(close) > 1 else "".join(close)
    hint = f"did you mean {names}?" if close else f"its choices are {', '.join(options)}."
    return f"{group}={name}: conf/{group}/ has no {name}.yaml; {hint} `python -m bench --list` lists every choice."


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The root config with overrides, as `python -m bench` would see it (for tools and tests). An
    option that no file of its group holds fails as a BenchError with did-you-mean (`unknown_choice`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    problem = unknown_choice(list(overrides or []))
    if problem is not None:
        raise BenchError(problem)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides or []), return_hydra_config=True)
    # ${hydra:...} resolvers only work inside a Hydra app; pin the output dir to a plain value.
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(cfg.output_dir) if "output_dir" in cfg else None
    del cfg["hydra"]
    return history.complete(apply_tuned(cfg, list(overrides or [])))
