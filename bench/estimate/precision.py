"""What mixed precision changes in a step's memory, and a trace that sees it.

Under the Trainer's bf16 (or fp16) mixed precision, accelerate wraps the prepared model's forward in
autocast and converts its outputs to fp32 (`accelerate.utils.convert_outputs_to_fp32`). Three things follow,
each of which the fp32 rules get wrong:

- the matmuls run in the low precision, on low-precision copies of their inputs: what a layer saves for
  backward is in bf16 wherever its input was cast (peft's adapter casts its input up to fp32, and autocast
  casts it back down);
- autocast makes a bf16 copy of every trained weight a matmul reads and saves it for backward (LoRA's
  adapters; every linear weight and a tied head under full fine-tuning): its own part, `autocast_copies`,
  as a run measures it (bench.measure.metrics.SavedTensors);
- the logits the trainer's loss reads are fp32, whatever the compute dtype, so the loss head's
  vocabulary-wide tensors are 4 bytes an element.

The model's own forward is traced as before (bench.estimate.trace), but on fake CPU tensors
(`torch._subclasses.FakeTensorMode`: shapes and dtypes only, no memory) under CPU autocast, which takes the
dtype rules these parts depend on from the same dispatcher a run uses; the meta device has no autocast.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype every trainer's forward autocasts to: bf16 or fp16 under mixed precision (PPO's too: the
    harness builds its accelerator with the run's mixed precision and runs its rollout forwards under the
    same autocast), None in fp32."""
    return LOW.get(precision)


class Tracer:
    """Where a trace runs: the meta device (no autocast), or fake CPU tensors under CPU autocast. The model's
    parameters and buffers are replaced in place by fake ones of the same shapes and dtypes (tied ones stay
    tied) before anything counts them; `device` is where the input ids go, `context()` what a forward runs in."""

    def __init__(self, model: nn.Module, autocast: torch.dtype | None):
        self.autocast = autocast
        self.device = "meta" if autocast is None else "cpu"
        self.mode = None
        if autocast is not None:
            from torch._subclasses.fake_tensor import FakeTensorMode

            self.mode = FakeTensorMode(allow_non_fake_inputs=True)
            _to_fake(model, self.mode)

    @contextlib.contextmanager
    def context(self):
        if self.mode is None:
            yield
            return
        with self.mode, torch.autocast("cpu", dtype=self.autocast):
            yield


def _to_fake(model: nn.Module, mode) -> None:
    made: dict[int, torch.Tensor] = {}

    def fake(tensor, parameter: bool):
        if id(tensor) not in made:
            new = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu")
            made[id(tensor)] = nn.Parameter(new, requires_grad=tensor.requires_grad) if parameter else new
        return made[id(tensor)]

    with mode:
        for module in model.modules():
            for name, p in list(module._parameters.items()):
                if p is not None:
                    module._parameters[name] = fake(p, parameter=True)
            for name, b in list(module._buffers.items()):
                if b is not None:
                    module._buffers[name] = fake(b, parameter=False)


def generation_element(precision: str, full: bool) -> int:
    """Bytes an element of the KV cache: the policy's weights' dtype. A full fine-tune under mixed precision
    keeps fp32 master weights, and its rollouts' keys and values come out fp32 (measured: a model prepared
    by accelerate with mixed_precision=bf16 and generating through TRL's unwrap_model_for_generation holds
    fp32 keys and values); LoRA's frozen base is in the run's dtype."""
    from bench.system.devices import trains_in_fp32

    return 4 if precision == "fp32" or trains_in_fp32(precision, full) else LOW[precision].itemsize


def autocast_copies(saved: int, model: PreTrainedModel, loss_type, autocast: torch.dtype | None) -> int:
    """The autocast copies a step holds: the trace's, less the output head's where the loss is chunked (TRL's
    chunked_nll applies the head inside torch.utils.checkpoint, chunk by chunk, so its weight's copy is
    recomputed in backward, never saved; measured: full fine-tuning's SFT at bf16 holds the decoder's copies
    only)."""
    weight = getattr(model.get_output_embeddings(), "weight", None)
    if autocast is None or loss_type != "chunked_nll" or weight is None or not weight.requires_grad:
        return saved
    return saved - weight.numel() * autocast.itemsize
