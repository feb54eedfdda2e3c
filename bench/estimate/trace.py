"""The tensors a training step saves for backward, counted by running the real model code on the meta
device (shapes only: no weights, no memory, seconds even for 8B) under the same saved-tensor hooks
that measure a real run (bench.measure.metrics.SavedTensors).

Two things the meta device does differently are put back as a real run does them: SDPA on the meta
device takes the math path (it would save the S×S attention weights), while CPU and GPU runs take a
fused kernel that saves q, k, v, its output and the log-sum-exp; and storages cannot be told apart by
address, so views are counted once through their base. Hand-written: no library counts what a step
saves without running it.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


class _FusedAttention(torch.autograd.Function):
    """What a fused SDPA kernel (flash or memory-efficient) saves: q, k, v, the output, the log-sum-exp."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q)
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):  # never run: the trace counts the forward only
        q, k, v, _, _ = ctx.saved_tensors
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)


def _fused_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    device = query.device.type
    if torch.is_autocast_enabled(device):  # autocast runs SDPA in its dtype: the kernel saves cast copies
        low = torch.get_autocast_dtype(device)
        query, key, value = (t.to(low) for t in (query, key, value))
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeat, dim=-3), value.repeat_interleave(repeat, dim=-3)
    return _FusedAttention.apply(query, key, value)


class Saved:
    """Bytes saved for backward while the block runs, split like SavedTensors: a trained parameter cast to
    another dtype (autocast's copy, made where the forward runs under autocast: bench.estimate.precision)
    is an autocast copy, tensors of vocabulary width are logits, the rest activations; parameters are
    weight memory and not counted."""

    def __init__(self, model, vocab: int):
        self.vocab = vocab
        self.params = {id(p) for p in model.parameters()}
        self.seen: set[int] = set()
        self.bytes = {"activations": 0, "logits": 0, "autocast_copies": 0}

    def _is_cast_copy(self, base) -> bool:
        """As SavedTensors tells one: made by a `to()` whose input is a parameter's gradient accumulator."""
        node = base.grad_fn
        if node is None or type(node).__name__ != "ToCopyBackward0" or not node.next_functions:
            return False
        return id(getattr(node.next_functions[0][0], "variable", None)) in self.params

    def _pack(self, tensor):
        base = tensor._base if tensor._base is not None else tensor
        if id(tensor) in self.params or id(base) in self.params:  # a weight, or a view of one (weight.t())
            return tensor
        if id(base) not in self.seen:
            self.seen.add(id(base))
            if self._is_cast_copy(base):  # first: a tied head's copy is vocabulary-wide too
                kind = "autocast_copies"
            else:
                kind = "logits" if base.dim() >= 2 and base.shape[-1] == self.vocab else "activations"
            self.bytes[kind] += base.numel() * base.element_size()
        return tensor

    @contextlib.contextmanager
    def counting(self):
        with (
            torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t),
            _patched(F, "scaled_dot_product_attention", _fused_sdpa),
        ):
            yield self


@contextlib.contextmanager
def meta_forward():
    """Two questions a forward asks that the meta device cannot answer, answered as a run would. Packed
    sequences: transformers looks for them in the position ids when a forward has no cache and no mask
    (TRL's fused LM head runs the backbone without a cache), which reads values; none are packed here.
    Autocast: TRL's chunked head asks whether its device autocasts; the meta device does not."""
    from transformers import masking_utils

    enabled = torch.is_autocast_enabled

    def autocast_enabled(*device):
        return False if device and device[0] == "meta" else enabled(*device)

    with contextlib.ExitStack() as stack:
        if hasattr(masking_utils, "find_packed_sequence_indices"):  # transformers 5's mask builder
            stack.enter_context(_patched(masking_utils, "find_packed_sequence_indices", lambda position_ids: None))
        stack.enter_context(_patched(torch, "is_autocast_enabled", autocast_enabled))
        yield


@contextlib.contextmanager
def _patched(owner, name, value):
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)
