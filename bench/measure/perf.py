"""Distance from the limit: the model FLOP/s a run achieved against the machine's measured peak (MFU),
and its decode rate against the memory-bandwidth bound.

The peaks are measured, not looked up: a short matmul benchmark (FLOP/s) and a large tensor copy
(bytes/s), once per machine, dtype and torch version, cached as JSON under `<cache_dir>/perf/`.
Tokens are split by kind (trained, no-grad forward, generated) by `TokenKinds`, one forward hook on
the policy's input embeddings, so it works for every trainer without touching any of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.system import cache, files

log = logging.getLogger(__name__)

KINDS = ("trained", "forward", "generated")


# ---------------------------------------------------------------------------------------------------
# Peaks, measured once per machine


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _best_time(fn, device: str, budget_s: float, min_reps: int = 3) -> float:
    """The fastest of repeated calls: at least `min_reps`, more while within `budget_s`, and never
    past 4 × budget (a slow dtype on CPU: bf16 matmuls can be 25× slower than fp32)."""
    fn()  # warm-up: allocator, thread pool, kernel selection
    _sync(device)
    best, started, reps = float("inf"), time.perf_counter(), 0
    while True:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
        reps += 1
        elapsed = time.perf_counter() - started
        if (reps >= min_reps and elapsed >= budget_s) or elapsed >= 4 * budget_s:
            return best


# Square matmul sizes whose best rate is the peak. On a CPU a matrix that fits the caches runs faster
# than one that streams from memory (on this project's 2-core machine 512² reached ~205 GFLOP/s where
# 2048² reached ~175, and a layer's own shapes ~195: against 2048² alone, DPO and KTO runs read MFU up to
# 115%), so the peak is the best over sizes from cache-resident to large. On a GPU, 8192², ten timed
# together so that launch latency does not count.
CPU_SIZES, GPU_SIZE = (512, 1024, 2048), 8192
PEAK_RULE = "best of squares 512-2048 (cpu), 8192 (cuda)"  # in the cache key: a new rule measures anew


def _matmul_flops_per_s(device: str, dtype: torch.dtype, budget_s: float = 1.5) -> float:
    sizes, inner = (CPU_SIZES, None) if device == "cpu" else ((GPU_SIZE,), 10)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        reps = inner or max(1, (2048 // n) ** 3)  # ~17 GFLOP a timing whatever the size

        def work(a=a, b=b, out=out, reps=reps):
            for _ in range(reps):
                torch.matmul(a, b, out=out)

        best = max(best, 2 * n**3 * reps / _best_time(work, device, budget_s / len(sizes)))
    return best


def _copy_bytes_per_s(device: str, budget_s: float = 1.5) -> float:
    # Far larger than any last-level cache (512 MiB on CPU, 1 GiB on a GPU), so the copy streams from
    # memory; a copy reads and writes every byte once, so it moves 2 × size.
    size = 512 * 2**20 if device == "cpu" else 2**30
    src = torch.ones(size // 4, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    return 2 * size / _best_time(lambda: dst.copy_(src), device, budget_s)


def machine_key(device: str) -> dict:
    """What a measured peak depends on: the processor, the threads torch uses, torch's version."""
    key: dict[str, object] = {"device": device, "torch": torch.__version__}
    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        key.update(gpu=props.name, sms=props.multi_processor_count, mem=props.total_memory)
    else:
        key.update(
            cpu=_cpu_model(),
            cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            threads=torch.get_num_threads(),
        )
    return key


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cached(kind: str, key: dict, measure, cache_dir: str | Path) -> float:
    """Read `kind` for `key` from the cache, or measure it once under a file lock and store it."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(cache_dir).expanduser() / "perf" / f"{kind}-{digest}.json"
    # Parallel jobs (a submitit sweep) wait for the first one's measurement instead of each running
    # its own benchmark on cores the others are using.
    with cache.build_lock(path):
        if cache.usable(path, f"measured {kind}"):
            return float(files.read_json(path)["value"])
        started = time.perf_counter()
        value = float(measure())
        log.info(
            "perf: measured %s = %.4g in %.1f s (cached in %s)",
            kind,
            value,
            time.perf_counter() - started,
            path,
        )
        cache.publish_json(path, {"kind": kind, "value": value, "key": key, "measured": time.time()}, indent=1)
    return value


# Vendors' dense peaks (TFLOP/s, no sparsity) beside the measured one, so an MFU can be read against the
# figure papers quote. bf16 and fp16 are tensor-core rates; fp32 is the CUDA-core rate, as torch computes
# fp32 matmuls without TF32 by default. From the datasheets: GH200, H200 and H100 (SXM5; NVL and PCIe apart),
# A100, L40S, L40, L4, A10, RTX 4090 and 3090 (fp32 accumulate), V100 (SXM2, PCIe) and T4 (fp16 only).
# The first pattern found in torch's device name wins, matched as a whole word (an A10G is not an A10,
# an RTX A1000 not an A100); a GPU not listed, or a MIG slice of one, has no spec MFU.
SPEC_TFLOPS = (  # (name pattern, {precision: TFLOP/s})
    (r"H[12]00 NVL", {"bf16": 835.5, "fp16": 835.5, "fp32": 60.0}),
    (r"GH200", {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9}),
    (r"H200", {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9}),
    (r"H100 PCIe", {"bf16": 756.5, "fp16": 756.5, "fp32": 51.2}),
    (r"H100", {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9}),
    (r"A100", {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5}),
    (r"L40S", {"bf16": 362.05, "fp16": 362.05, "fp32": 91.6}),
    (r"L40", {"bf16": 181.05, "fp16": 181.05, "fp32": 90.5}),
    (r"L4", {"bf16": 121.0, "fp16": 121.0, "fp32": 30.3}),
    (r"A10", {"bf16": 125.0, "fp16": 125.0, "fp32": 31.2}),
    (r"RTX 4090", {"bf16": 165.2, "fp16": 165.2, "fp32": 82.6}),
    (r"RTX 3090", {"bf16": 71.0, "fp16": 71.0, "fp32": 35.6}),
    (r"V100-SXM2", {"fp16": 125.0, "fp32": 15.7}),
    (r"V100-PCIE", {"fp16": 112.0, "fp32": 14.0}),
    (r"T4", {"fp16": 65.0, "fp32": 8.1}),
)


def spec_flops(device_name: str | None, precision: str) -> float | None:
    """The vendor's dense peak FLOP/s of a GPU (by its torch name) in a precision; None if not listed."""
    import re

    if not device_name or "MIG" in device_name:  # a slice: a fraction of the card's peak
        return None
    for pattern, peaks in SPEC_TFLOPS:
        if re.search(rf"(?<![A-Za-z0-9]){pattern}(?![A-Za-z0-9])", device_name):
            return peaks[precision] * 1e12 if precision in peaks else None
    return None


def job_peak_flops(per_device: float, device: str, world_size: int) -> float:
    """The peak a data-parallel job's FLOPs (summed over its processes) are measured against: one device's
    peak per process on GPUs, each process on its own; on CPU the processes share the cores that the one
    measurement already used, so the machine's peak once."""
    return per_device * (world_size if device == "cuda" else 1)


def peak_flops(device: str, dtype: torch.dtype, cache_dir: str | Path) -> float:
    """The machine's dense matmul FLOP/s in `dtype`: the best of square matmuls of a few sizes (see
    CPU_SIZES), measured once per (processor, threads, dtype, torch version, rule) and cached under
    `<cache_dir>/perf/`.

    A busy machine measures low; delete the cached file to measure again."""
    key = {**machine_key(device), "dtype": str(dtype).removeprefix("torch."), "rule": PEAK_RULE}
    return _cached("flops_per_s", key, lambda: _matmul_flops_per_s(device, dtype), cache_dir)


def peak_bandwidth(device: str, cache_dir: str | Path) -> float:
    """The machine's memory bandwidth in bytes/s (read + written) of a large tensor copy, measured once
    per machine and cached like `peak_flops`."""
    return _cached("bytes_per_s", machine_key(device), lambda: _copy_bytes_per_s(device), cache_dir)


# ---------------------------------------------------------------------------------------------------
# Tokens by kind


@dataclass
class Decode:
    """Steady-state decode steps: the time between consecutive one-position forwards of generation."""

    tokens: int = 0  # positions decoded in the timed intervals (batch size per step)
    seconds: float = 0.0
    steps: int = 0

    @property
    def batch(self) -> float:
        return self.tokens / self.steps if self.steps else 0.0


class TokenKinds:
    """Counts token positions through the policy's input embeddings, by kind, for any trainer:

    - trained:   a forward with autograd on (the training forward; its backward follows);
    - forward:   a no-grad forward of more than one position (reference and old-policy log-probs,
                 KTO's KL batch, the prefill of generation, scoring);
    - generated: a no-grad forward of one position per sequence, i.e. a decode step: after the prefill,
                 `generate` feeds the cache one new position per sequence per step.

    The embedding's own call carries no cache argument, hence the one-position rule; a one-token
    prompt would be counted as generated, which changes no FLOP count (both kinds cost 2N per token).
    Padding is included: it is compute the hardware does. Embeddings are never adapted, so the hook
    survives peft's wrapping. Decode steps are also timed (see `Decode`), for the decode rate.
    """

    def __init__(self, model):
        self.counts = dict.fromkeys(KINDS, 0)
        self.decode = Decode()
        self._last_decode: tuple[float, int] | None = None  # (time, batch) of the previous decode call
        self._handle = model.get_input_embeddings().register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output) -> None:
        ids = args[0] if args else kwargs.get("input")
        if not torch.is_tensor(ids):
            return
        now = time.perf_counter()
        if torch.is_grad_enabled():
            kind = "trained"
        elif ids.dim() >= 2 and ids.shape[-1] == 1:
            kind = "generated"
        else:
            kind = "forward"
        self.counts[kind] += ids.numel()
        if kind != "generated":
            self._last_decode = None
            return
        batch = ids.shape[0]
        if self._last_decode is not None and self._last_decode[1] == batch:
            # One whole decode step of this batch (the forward, sampling, cache update) since the last
            # call: the first step after a prefill is not timed, as its interval holds the prefill.
            self.decode.tokens += batch
            self.decode.seconds += now - self._last_decode[0]
            self.decode.steps += 1
        self._last_decode = (now, batch)

    @property
    def tokens(self) -> dict[str, int]:
        return dict(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self._handle.remove()


# ---------------------------------------------------------------------------------------------------
# The FLOP model


def flop_params(model, total: int | None = None) -> int:
    """N of the FLOP model: the parameters that take part in a matmul per token, i.e. all of them but
    an untied input embedding table (a row lookup); a tied table counts once, as the LM head."""
    if total is None:
        total = sum(p.numel() for p in model.parameters())
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    tied = out is not None and out.weight.data_ptr() == inp.weight.data_ptr()
    return total if tied else total - inp.weight.numel()


def weight_bytes(model) -> int:
    """Bytes of weights a decode step reads: every parameter as stored (4-bit weights packed), but an
    untied input embedding table, of which a step reads only a row per sequence."""
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    tied = out is not None and out.weight.data_ptr() == inp.weight.data_ptr()
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return size if tied else size - inp.weight.numel() * inp.weight.element_size()


def model_flops(params: int, trainable: int, tokens: dict[str, int]) -> float:
    """Model FLOPs of a run (the standard 6N/2N rule: Kaplan et al. 2020, §2.1; PaLM, Chowdhery et al.
    2022, appendix B), per token position:

    - a forward costs 2N (a multiply and an add per weight in a matmul);
    - a trained token adds its backward: activation gradients 2N (every layer, frozen or not, lies on
      the path to the trained weights) plus weight gradients 2T for the T trained weights. So a trained
      token costs 4N + 2T: 6N for full fine-tuning (T = N), ~4N with LoRA (T ≪ N);
    - reference/no-grad forwards and generated tokens cost 2N (the reference forward skips the
      disabled adapter, ≤ 2T less: ignored).

    N is `flop_params`: all parameters except an untied input embedding (a lookup). The LM head is
    kept because at 135M parameters it is a fifth of the model's matmul work (Kaplan's non-embedding
    N, right for large models, would drop it). Attention's context-dependent term (4·layers·d·context
    per token forward, PaLM's 12LHQT when trained) is ignored: for SmolLM2-135M (d = 576, 30 layers)
    at 100 tokens of context it is ~2.5% of 2N. Rematerialisation (activation checkpointing) is not
    counted: these are model FLOPs (MFU), not hardware FLOPs.
    """
    n, t = params, min(trainable, params)
    return (4 * n + 2 * t) * tokens.get("trained", 0) + 2 * n * (tokens.get("forward", 0) + tokens.get("generated", 0))


@dataclass(frozen=True)
class Counted:
    """A model a trainer runs beside its policy (PPO's value model), with the token positions it saw, by kind
    (its own `TokenKinds`): its FLOPs follow the same rule as the policy's (`model_flops`)."""

    params: int  # its `flop_params`
    trainable: int
    tokens: dict[str, int]

    @property
    def flops(self) -> float:
        return model_flops(self.params, self.trainable, self.tokens)


def other_models(trainer) -> dict[str, object]:
    """The models a trainer runs beside its policy whose FLOPs count: PPO's value model, which scores every
    rollout (a forward) and trains on it with the policy (forward and backward). A reference that is the
    policy with its adapter disabled runs through the policy's own embeddings and is counted there."""
    value = getattr(trainer, "value_model", None)
    return {"value": value} if value is not None else {}


def perf_metrics(
    *,
    params: int,
    trainable: int,
    tokens: dict[str, int],
    train_s: float,
    device: str,
    dtype: torch.dtype,
    cache_dir: str | Path,
    decode: Decode | None = None,
    decode_bytes: int | None = None,
    world_size: int = 1,
    device_name: str | None = None,
    others: dict[str, Counted] | None = None,
) -> dict:
    """`perf/*` of a run: model FLOPs (`model_flops`: the policy's, plus those of `others`, the models the
    trainer runs beside it, each recorded as `perf/<name>_flops`), FLOP/s over the training wall time, the
    measured peak and their ratio (`perf/mfu`), on a listed GPU also against its datasheet (`perf/mfu_spec`,
    SPEC_TFLOPS); with generation, the steady decode rate against its bound.

    The decode bound assumes each decode step reads every weight once and nothing else: N × bytes
    per weight, or `decode_bytes` (from `weight_bytes(model)`, right for quantized weights too). The
    KV cache and activations are small next to the weights for short sequences. A step decodes its
    whole batch, so bound = bandwidth × batch / bytes read, with batch the run's mean decode batch
    (batch 1: one token per full read of the weights), capped by the compute bound peak / 2N, which
    a large batch reaches first. Bandwidth is a copy's bytes read + written per second.
    """
    others = others or {}
    flops = model_flops(params, trainable, tokens) + sum(other.flops for other in others.values())
    peak = job_peak_flops(peak_flops(device, dtype, cache_dir), device, world_size)
    achieved = flops / train_s if train_s > 0 else 0.0
    out = {
        "perf/params": params,
        **{f"perf/tokens_{kind}": tokens.get(kind, 0) for kind in KINDS},
        **{f"perf/{name}_params": other.params for name, other in others.items()},
        **{f"perf/{name}_flops": other.flops for name, other in others.items()},
        "perf/flops": flops,
        "perf/flops_per_s": round(achieved, 1),
        "perf/peak_flops_per_s": round(peak, 1),
        "perf/peak_rule": PEAK_RULE,  # a record measured under another rule is not compared with this one
        "perf/mfu": round(achieved / peak, 5) if peak > 0 else None,
    }
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    spec = spec_flops(device_name, precision) if device == "cuda" else None
    if spec is not None:  # against the datasheet too: a measured peak below it would flatter the MFU
        spec = job_peak_flops(spec, device, world_size)
        out.update({"perf/spec_flops_per_s": spec, "perf/mfu_spec": round(achieved / spec, 5)})
    if tokens.get("generated", 0) and decode is not None and decode.seconds > 0:
        bandwidth = peak_bandwidth(device, cache_dir)
        read = decode_bytes or params * torch.empty((), dtype=dtype).element_size()
        bound = min(bandwidth * decode.batch / read, peak / (2 * params))
        rate = decode.tokens / decode.seconds
        out.update(
            {
                "perf/decode_tokens_per_s": round(rate, 2),
                "perf/decode_batch": round(decode.batch, 2),
                "perf/decode_bound_tokens_per_s": round(bound, 2),
                "perf/decode_efficiency": round(rate / bound, 4),
                "perf/peak_bytes_per_s": round(bandwidth, 1),
            }
        )
    return out


def kv_bytes(config, batch: int, context: float, element: int) -> float:
    """Bytes of KV cache a decode step reads at `context` positions: keys and values of every layer."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * head_dim * context * batch * element
