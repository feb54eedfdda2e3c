"""What actually applied in a run, read from the built trainer and model while it trains: the dropout
active in its modules, the sampling at every generate() and the KV cache it held, its TRL config as
plain values."""

from __future__ import annotations

import logging

from transformers import TrainerCallback

from bench.records.schema import SAMPLING_KEYS

log = logging.getLogger(__name__)


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
        self.model, self.phase = model, "setup"
        self.calls: list[dict] = []  # the effective settings of each generate() call
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

        from bench.measure.perf import kv_bytes

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
