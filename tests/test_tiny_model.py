"""The tiny model (model=tiny): built here, offline, the same bits every time, with the shapes its YAML
states, so that the suite's mechanics run on a model that anyone can rebuild without a download."""

from __future__ import annotations

import hashlib
import json

import pytest

from bench.recipe.models import BUILT, resolve_model_path
from tests.conftest import TINY, TINY_PARAMS


def test_the_yaml_states_the_architecture_that_is_built():
    # The offline audit (bench.measure.params) reads the YAML's numbers; the builder uses BUILT's.
    assert TINY == BUILT["tiny-llama"].arch


@pytest.mark.slow
def test_the_tiny_model_builds_the_same_bits_in_any_cache(tmp_path):
    from transformers import AutoModelForCausalLM

    paths = [resolve_model_path("embedded:tiny-llama", str(tmp_path / name)) for name in ("a", "b")]
    digests = [hashlib.sha256((tmp_path / p / "model.safetensors").read_bytes()).hexdigest() for p in paths]
    assert digests[0] == digests[1]
    config = json.loads((tmp_path / paths[0] / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == TINY["model_type"]
    assert all(config[k] == v for k, v in TINY.items() if k != "model_type")
    model = AutoModelForCausalLM.from_pretrained(paths[0])
    assert sum(p.numel() for p in model.parameters()) == TINY_PARAMS
    assert resolve_model_path("embedded:tiny-llama", str(tmp_path / "a")) == paths[0]  # built once, then found
