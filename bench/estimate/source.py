"""Which model the estimate estimates, said before anything else: its config.json from a local folder or
the local Hugging Face cache, or conf/model's arch numbers where they describe it; anything else is refused
with the fix (bench.measure.params.architecture), never answered with another model's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from omegaconf import DictConfig, OmegaConf

from bench.config.compose import CONF_DIR
from bench.measure.params import architecture


@dataclass(frozen=True)
class ModelSource:
    name_or_path: str
    config: object  # the transformers config the estimate reads
    origin: str  # where that config came from

    @property
    def text(self):
        """The language model's part of the config (a multimodal config keeps it apart)."""
        return self.config.get_text_config() if hasattr(self.config, "get_text_config") else self.config

    def describe(self) -> str:
        t = self.text
        heads = t.num_attention_heads
        kv = getattr(t, "num_key_value_heads", None) or heads
        return (
            f"{self.name_or_path}: {t.model_type}, {t.num_hidden_layers} layers of width {t.hidden_size}, "
            f"{heads} attention heads over {kv} KV heads, vocabulary {t.vocab_size}; config from {self.origin}"
        )


def declared_name_or_path(name: str) -> str:
    """The name_or_path of the conf/model yaml called `name`: the one model its arch numbers describe ("" if
    no yaml is called that)."""
    for file in sorted((CONF_DIR / "model").glob("*.yaml")):
        declared = cast(DictConfig, OmegaConf.load(file))  # a model yaml is a mapping
        if declared.get("name") == name:
            return str(declared.get("name_or_path"))
    return ""


def resolve(model_cfg) -> ModelSource:
    """The model a composed `cfg.model` names, with its config; BenchError where none is found offline."""
    config, origin = architecture(model_cfg, arch_for=declared_name_or_path(str(model_cfg.name)))
    return ModelSource(str(model_cfg.name_or_path), config, origin)
