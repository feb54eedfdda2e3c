"""A floor under a training step's memory from the shapes alone, to warn before the out-of-memory killer."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from bench.system.runtime import Runtime

log = logging.getLogger(__name__)


def memory_floor(
    cfg: DictConfig,
    runtime: Runtime,
    audit,
    data_kind: str,
    batch: int,
    prompt_tokens: int,
    available: int | None = None,
) -> dict:
    """A floor under a training step's memory from the shapes alone, to warn before the out-of-memory
    killer does: the weights as stored (4 or 8 bits quantized; full fine-tuning keeps fp32 weights, their
    gradients and two Adam moments: 16 bytes a weight), and the input of every layer, which backward needs,
    for each row of the batch that holds the longest prompt (rows are padded to it; chosen and rejected both
    for preference data), with a full completion. Every trainer holds at least this; the real peak is
    higher (bench.estimate will predict it). Hand-written: no library bounds a TRL step's memory."""
    import torch

    size = runtime.dtype.itemsize
    bits = {"nf4": 4, "int8": 8}.get(cfg.quant.name)
    weights = audit.base_params * (16 if audit.mode == "none" else bits / 8 if bits else size)
    rows = batch * (2 if data_kind == "preference" else 1)
    tokens = prompt_tokens + int(cfg.train.max_completion_length)
    activations = rows * tokens * audit.hidden_size * audit.num_layers * size
    if available is None:
        if runtime.device == "cuda":
            available = torch.cuda.get_device_properties(runtime.index or 0).total_memory
        else:
            import psutil

            available = psutil.virtual_memory().available
    return {
        "weights": int(weights),
        "activations": activations,
        "total": int(weights) + activations,
        "rows": rows,
        "tokens": tokens,
        "available": int(available),
    }


def warn_if_it_cannot_fit(cfg: DictConfig, runtime: Runtime, validated, prompt_tokens: int) -> dict:
    """Warn, with the figures, when memory_floor already exceeds the memory available."""
    floor = memory_floor(
        cfg,
        runtime,
        validated.audit,
        validated.method.data,
        int(validated.trainer_config.per_device_train_batch_size),
        prompt_tokens,
    )
    if floor["total"] > floor["available"]:
        audit = validated.audit
        log.warning(
            "method=%s will not fit: a training step needs at least %.1f GB (weights %.1f GB; the layer inputs "
            "one step saves for backward, %d rows x %d tokens x %d wide x %d layers, %.1f GB), and %.1f GB is "
            "available. Lower train.max_prompt_length, train.max_completion_length or the batch size.",
            cfg.method.name,
            floor["total"] / 1e9,
            floor["weights"] / 1e9,
            floor["rows"],
            floor["tokens"],
            audit.hidden_size,
            audit.num_layers,
            floor["activations"] / 1e9,
            floor["available"] / 1e9,
        )
    return floor
