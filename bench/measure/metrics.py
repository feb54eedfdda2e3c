"""Measuring a run the same way for every method: memory, step times, tokens.

Adapters never measure; the harness attaches these to whatever trainer an adapter builds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import math
import statistics
import threading
import time
from typing import Any

import psutil
import torch
from transformers import TrainerCallback

log = logging.getLogger(__name__)


def _malloc_trim() -> None:
    """Return freed heap pages to the OS (glibc only), so RSS reflects live memory."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


def current_memory(device: str, process: psutil.Process | None = None, index: int | None = None) -> int:
    """CUDA: bytes the allocator holds for tensors (on GPU `index`, else the current one); CPU: the
    process's resident set."""
    if device == "cuda":
        return torch.cuda.memory_allocated(index)
    return (process or psutil.Process()).memory_info().rss


class CpuPeak:
    """The kernel's exact high-water mark of this process's resident set (`VmHWM`), reset on demand by
    writing 5 to /proc/self/clear_refs (Linux >= 4.0): the CPU's counterpart of CUDA's allocator peak, so
    a spike shorter than the sampler's interval is not missed. Where /proc does not offer it (another OS,
    a locked-down container), `peak()` is None and the samples' maximum stands alone. No library reads
    VmHWM (psutil exposes it only on some platforms, and cannot reset it), hence this."""

    STATUS, CLEAR = "/proc/self/status", "/proc/self/clear_refs"

    def __init__(self) -> None:
        self.exact = False

    def reset(self) -> None:
        try:
            with open(self.CLEAR, "w") as f:
                f.write("5")
            self.exact = self.peak() is not None
        except OSError:
            self.exact = False

    def peak(self) -> int | None:
        try:
            with open(self.STATUS) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024  # kB
        except (OSError, ValueError, IndexError):
            return None
        return None


def live_memory(device: str, index: int | None = None) -> int:
    """Memory after returning what is free: garbage collected, allocator caches and heap trimmed."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    else:
        _malloc_trim()
    return current_memory(device, index=index)


# The phase's sampler while it runs (phases do not nest): where set_activity finds it. What the process
# is doing, as the sampler sees it, is the sampler's own state: "generate" while a generate() call runs
# (bench.measure.probes.GenerationRecorder says so), else "step". The breakdown splits the peak by it: a
# peak inside generation holds the KV cache, a peak inside a training step the tensors saved for backward.
_SAMPLING: list[MemorySampler] = []


def set_activity(name: str) -> None:
    """What the process does from now on ("generate" or "step"). The running phase's sampler closes the
    exact peak of the activity that ends, so which one held the phase's peak is known exactly: a GPU's
    decode step lasts milliseconds, far below any sampling interval."""
    for sampler in _SAMPLING:
        sampler.switch(name)


class MemorySampler:
    """Samples memory in a background thread: CPU RSS of this process, and CUDA allocated/reserved.

    Peak, mean and 99th percentile follow peft's method_comparison. The peak is exact: the CUDA
    allocator's max, or on CPU the kernel's high-water mark, reset as the phase starts and at each change
    of activity (bench.measure.metrics.set_activity), so each activity's own peak is kept; the samples give the
    mean and p99.
    """

    def __init__(self, device: str, interval_s: float = 0.05):
        self.device, self.interval_s = device, interval_s
        self.samples: list[int] = []
        self.activity: list[str] = []  # the activity at each sample
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._cpu = CpuPeak()
        # CUDA's current device is per thread, and the sampler's thread would start on GPU 0: it reads the
        # GPU that this (the training) thread uses, which a launcher has set to its local rank's.
        self._index = torch.cuda.current_device() if device == "cuda" else None
        # Each activity's exact peak (allocated, reserved), closed when the activity ends: the phase's
        # peaks are read once as it ends, so whatever the harness does afterwards (checksums, accounting,
        # saving) never leaks into them, as a live read of the allocator's max would.
        self._peaks: dict[str, tuple[int, int]] = {}
        self._now = "step"  # set by switch(); the sampling thread only reads it
        self._closed = False

    def _read(self) -> int:
        return current_memory(self.device, self._process, self._index)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.activity.append(self._now)
            self.samples.append(self._read())
            self._stop.wait(self.interval_s)

    def _reset_peak(self) -> None:
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats(self._index)
        else:
            self._cpu.reset()

    def switch(self, activity: str, reset: bool = True) -> None:
        """Close the current activity's exact peak and start the next one's."""
        peak: tuple[int, int] | None
        if self.device == "cuda":
            peak = (torch.cuda.max_memory_allocated(self._index), torch.cuda.max_memory_reserved(self._index))
        else:
            exact = self._cpu.peak() if self._cpu.exact else None
            peak = (exact, 0) if exact is not None else None
        if peak is not None:
            kept = self._peaks.get(self._now, (0, 0))
            self._peaks[self._now] = (max(kept[0], peak[0]), max(kept[1], peak[1]))
        self._now = activity
        if reset:
            self._reset_peak()

    def __enter__(self) -> MemorySampler:
        # Start from live memory only: what earlier steps (model load, building the offline data)
        # freed but the allocator kept would otherwise count towards this method's training peak.
        self.start = live_memory(self.device, self._index)
        self._now = "step"
        self._reset_peak()
        _SAMPLING.append(self)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        _SAMPLING.remove(self)
        self.activity.append(self._now)
        self.samples.append(self._read())
        # No reset as the phase ends: the kernel's mark is also what the process's maximum RSS reports at exit
        # (getrusage, /usr/bin/time), so it is reset only where a phase or activity starts.
        self.switch(self._now, reset=False)
        self._closed = True

    @property
    def exact(self) -> bool:
        return self.device == "cuda" or self._cpu.exact

    def peak_activity(self) -> str:
        """What the process was doing when the phase peaked: exactly, from each activity's own peak; where
        no exact peak exists (CPU without /proc), the activity at the largest sample."""
        if self.exact and self._peaks:
            return max(self._peaks, key=lambda activity: self._peaks[activity][0])
        return self.activity[max(range(len(self.samples)), key=self.samples.__getitem__)] if self.samples else "step"

    def peak(self) -> int:
        """The phase's peak as it ended: the allocator's max on CUDA, the kernel's high-water mark on CPU
        (never below the largest sample)."""
        if not self._closed:
            raise RuntimeError("MemorySampler.peak() is read once the phase has ended")
        exact = max((allocated for allocated, _ in self._peaks.values()), default=0) if self.exact else 0
        return max(exact, max(self.samples))

    def metrics(self) -> dict:
        samples = sorted(self.samples)
        out: dict[str, Any] = {
            "sys/peak_mem_bytes": self.peak(),
            "sys/avg_mem_bytes": int(statistics.fmean(samples)),
            "sys/p99_mem_bytes": samples[min(len(samples) - 1, int(0.99 * len(samples)))],
            "sys/mem_samples": len(samples),
            "sys/mem_kind": "cuda_allocated" if self.device == "cuda" else "cpu_rss",
            # cpu: the kernel's exact high-water mark (VmHWM, reset as the phase began), else the samples' max
            "sys/mem_peak_exact": self.exact,
            "sys/start_mem_bytes": self.start,  # the loaded model(s), before the first step
        }
        if self.device == "cuda":
            out["sys/peak_reserved_bytes"] = max(reserved for _, reserved in self._peaks.values())
        out["sys/train_mem_bytes"] = out["sys/peak_mem_bytes"] - self.start  # what training added on top
        return out


def weight_checksums(model) -> dict[str, tuple[bool, torch.Tensor]]:
    """Per-parameter checksums (sum, |sum|, sum of squares, in float64), tagged trainable or frozen.

    Compared before and after training, they show that the trainable weights (the adapter, or every
    weight in full fine-tuning) moved and the frozen base did not, for every method alike, without
    keeping a second copy of the model in memory.
    """
    out = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            out[name] = (param.requires_grad, _sums(param.detach()))
    return out


CHECKSUM_CHUNK = 2**16  # elements: float64 transients of half a MB, whatever the largest tensor


def _sums(x: torch.Tensor) -> torch.Tensor:
    """sum, |sum| and sum of squares in float64, a chunk at a time: a whole float64 copy of the largest
    tensor (a 128k x 4096 embedding: 4 GB, three times over) would set the run's memory, not the method."""
    flat = x.reshape(-1)
    total = torch.zeros(3, dtype=torch.float64, device=x.device)
    for start in range(0, flat.numel(), CHECKSUM_CHUNK):
        chunk = flat[start : start + CHECKSUM_CHUNK].double()
        total += torch.stack([chunk.sum(), chunk.abs().sum(), chunk.square().sum()])
    return total.cpu()


def weights_changed(before: dict, after: dict) -> dict:
    changed = {name for name, (_, sums) in after.items() if not torch.equal(sums, before[name][1])}
    trainable = [name for name, (grad, _) in before.items() if grad]
    frozen = [name for name, (grad, _) in before.items() if not grad]
    return {
        "train/trainable_tensors_changed": sum(name in changed for name in trainable),
        "train/trainable_tensors": len(trainable),
        "train/frozen_tensors_changed": sum(name in changed for name in frozen),
        "train/frozen_tensors": len(frozen),
        # How far a frozen tensor moved, relative to its sum of squares: rounding from merging and
        # unmerging the adapter around each rollout (train.rollout=merged) is ~1e-7; learning is not.
        "train/frozen_max_rel_change": max(
            (
                float(abs(after[n][1][2] - before[n][1][2]) / max(float(before[n][1][2]), 1e-30))
                for n in frozen
                if n in changed
            ),
            default=0.0,
        ),
    }


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def quant_state_tensors(param) -> list[torch.Tensor]:
    """The state a 4-bit weight needs to be read (bitsandbytes' `Params4bit.quant_state`): the per-block
    absmax and the code; under double quantization also the offset and the second level's absmax and
    code. They are neither parameters nor buffers, yet they are weight memory."""
    state = getattr(param, "quant_state", None)
    if state is None:
        return []
    # getattr: an offline-check rehearsal met a quant_state without `state2`; the optional fields are read defensively.
    tensors = [state.absmax, state.code, getattr(state, "offset", None)]
    second = getattr(state, "state2", None)
    if second is not None:
        tensors += [second.absmax, second.code]
    return [t for t in tensors if torch.is_tensor(t)]


def memory_breakdown(
    trainer,
    peak: int,
    runtime_bytes: int,
    device: str,
    saved: dict | None = None,
    kv_cache: int = 0,
    during: str = "step",
) -> dict:
    """The training peak split into parts that add up to it, none negative.

    runtime: the process before any model loaded (CPU only: interpreter and libraries); weights: every
    frozen tensor of every model the trainer keeps (policy base, reference, value, reward models), a
    4-bit weight's quantization state included;
    trainable: the trained parameters; gradients: one per trained parameter, of its shape and dtype
    (how autograd allocates them); optimizer: the optimizer's real state tensors, read after training.
    Then what the peak moment held besides (`during` says which moment it was): inside a training step,
    the tensors saved for backward (`saved`, SavedTensors.metrics(): activations, logits and the copies of
    weights autocast made in the compute dtype, measured);
    inside generation, the KV cache (`kv_cache`, counted from the generated shapes). other: the rest
    (allocator caches and fragmentation, the data, lazily loaded libraries, temporaries).
    """
    from torch import nn

    optimizer = getattr(trainer, "optimizer", None)
    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
    # Trainable means "updated by the optimizer", not requires_grad: TRL's own reference copy (full
    # fine-tuning) keeps requires_grad=True but is never updated, and is frozen weight memory.
    optimized = {id(p) for group in getattr(optimizer, "param_groups", []) for p in group["params"]}
    seen: set[int] = set()
    seen_states: set[int] = set()
    frozen = trainable = 0
    modules = [v for v in vars(trainer).values() if isinstance(v, nn.Module)]
    modules += [
        m for v in vars(trainer).values() if isinstance(v, (list, tuple)) for m in v if isinstance(m, nn.Module)
    ]
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) in seen or tensor.device.type == "meta":
                continue
            seen.add(id(tensor))
            if id(tensor) in optimized:
                trainable += _tensor_bytes(tensor)
            else:
                frozen += _tensor_bytes(tensor)
            for quant in quant_state_tensors(tensor):  # a storage shared by several weights (a code) once
                if quant.device.type != "meta" and quant.untyped_storage().data_ptr() not in seen_states:
                    seen_states.add(quant.untyped_storage().data_ptr())
                    frozen += _tensor_bytes(quant)
    state = tensors = 0
    for per_param in getattr(optimizer, "state", {}).values():
        state += sum(_tensor_bytes(v) for v in per_param.values() if torch.is_tensor(v))
        tensors += 1
    runtime_bytes = runtime_bytes if device == "cpu" else 0
    saved = saved or {}
    step = during != "generate"
    parts = {
        "mem/runtime_bytes": runtime_bytes,
        "mem/weights_bytes": frozen,
        "mem/trainable_bytes": trainable,
        "mem/gradients_bytes": trainable,
        "mem/optimizer_bytes": state,
        "mem/activations_bytes": int(saved.get("mem/activations_bytes", 0)) if step else 0,
        "mem/logits_bytes": int(saved.get("mem/logits_bytes", 0)) if step else 0,
        "mem/autocast_copies_bytes": int(saved.get("mem/autocast_copies_bytes", 0)) if step else 0,
        "mem/kv_cache_bytes": 0 if step else int(kv_cache),
    }
    extra = {
        "mem/optimizer_tensors": tensors,
        "mem/peak_during": "generation" if not step else "step",
        # Each working set's own largest size, wherever the peak fell.
        "mem/max_saved_bytes": int(sum(saved.values())),
        # ... and its split at that moment (what bench.estimate predicts part by part)
        "mem/max_activations_bytes": int(saved.get("mem/activations_bytes", 0)),
        "mem/max_logits_bytes": int(saved.get("mem/logits_bytes", 0)),
        "mem/max_autocast_copies_bytes": int(saved.get("mem/autocast_copies_bytes", 0)),
        "mem/max_kv_cache_bytes": int(kv_cache),
    }
    rest = peak - sum(parts.values())
    # On CPU the RSS can sit below the tensor count when weights are memory-mapped and not yet all
    # touched, or when the saved tensors' largest moment fell between two samples; say so rather
    # than report a negative part.
    parts["mem/other_bytes"] = max(rest, 0)
    parts["mem/unaccounted_bytes"] = min(rest, 0)
    return parts | extra


KINDS = ("activations", "logits", "autocast_copies")  # what SavedTensors splits the saved tensors into


class SavedTensors:
    """What autograd holds for backward, measured exactly: every tensor saved during training passes
    through `torch.autograd.graph.saved_tensors_hooks`; each storage is counted once while saved (a
    parameter, saved by a matmul, is weight memory and not counted), and released when backward
    unpacks its last reference. `metrics()` gives the most held at once, split three ways: autocast
    copies (a parameter cast to another dtype, see `_is_cast_copy`), logits (saved tensors of vocabulary
    width: the logits and their log-softmax, counted from their shapes) and the other activations.
    torch has the hooks; nothing off the shelf sums them into a peak, hence this class.
    """

    def __init__(self, models, vocab_size: int):
        self.vocab = vocab_size
        self.params = {p.untyped_storage().data_ptr() for m in models if m is not None for p in m.parameters()}
        self.live: dict[int, list] = {}  # storage pointer -> [bytes, references, kind]
        self.now = dict.fromkeys(KINDS, 0)
        self.best = dict.fromkeys(KINDS, 0)
        self._context = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _is_cast_copy(self, tensor) -> bool:
        """A copy of a parameter in another dtype, as autocast makes one of each fp32 weight a bf16 matmul
        reads (held for backward: 2 bytes a trained parameter in full fine-tuning). It is its own part,
        neither weights nor activations: it is real memory on a GPU, and it scales with the parameters,
        not with the batch. Known exactly from the autograd graph, not guessed from a shape: the saved
        tensor (or the one a saved view such as weight.t() was taken from) was made by a `to()` whose input
        is the parameter itself (its gradient accumulator). A cast of a frozen weight leaves no such trace; the harness
        keeps frozen weights in the run's dtype (bench.recipe.dtypes), so autocast makes none of those."""
        base = tensor._base if tensor._base is not None else tensor
        node = base.grad_fn
        if node is None or type(node).__name__ != "ToCopyBackward0":
            return False
        source = node.next_functions[0][0] if node.next_functions else None
        variable = getattr(source, "variable", None)  # an AccumulateGrad node holds its leaf
        return variable is not None and variable.untyped_storage().data_ptr() in self.params

    def _kind(self, tensor) -> str:
        if self._is_cast_copy(tensor):  # first: a tied head's copy, transposed, is vocabulary-wide too
            return "autocast_copies"
        return "logits" if tensor.dim() >= 2 and tensor.shape[-1] == self.vocab else "activations"

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.params or tensor.device.type == "meta":
            return (None, tensor)
        entry = self.live.get(key)
        if entry is None:
            kind = self._kind(tensor)
            entry = self.live[key] = [storage.nbytes(), 0, kind]
            self.now[kind] += entry[0]
            if sum(self.now.values()) > sum(self.best.values()):
                self.best = dict(self.now)
        entry[1] += 1
        return (key, tensor)

    def _unpack(self, packed):
        key, tensor = packed
        entry = self.live.get(key) if key is not None else None
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                self.now[entry[2]] -= entry[0]
                del self.live[key]
        return tensor

    def reset(self) -> None:
        """After an optimizer step every graph is gone: what was saved and never unpacked (a forward
        with gradients that no backward followed) is released too."""
        self.live.clear()
        self.now = dict.fromkeys(KINDS, 0)

    def __enter__(self):
        self._context.__enter__()
        return self

    def __exit__(self, *exc):
        self._context.__exit__(*exc)

    def metrics(self) -> dict:
        return {f"mem/{kind}_bytes": self.best[kind] for kind in KINDS}


class Diverged(Exception):
    """A non-finite loss: the run stops and is recorded as `diverged`, with the step."""

    def __init__(self, step: int, key: str, value: float):
        super().__init__(f"training diverged at step {step}: {key} = {value}")
        self.step = step


class DivergenceGuard(TrainerCallback):
    """Stops a run at the first NaN or infinite loss or gradient norm the trainer logs.

    The gradient norm counts too: once the weights overflow, some trainers log a loss of 0 (masked
    NaN logits) while the gradient norm is already NaN.
    """

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key, value in (logs or {}).items():
            watched = "loss" in key or key == "grad_norm"
            if watched and isinstance(value, (int, float)) and not math.isfinite(value):
                raise Diverged(state.global_step, key, value)


class StepTimer(TrainerCallback):
    """Wall time between optimizer steps, and the trainer's own logs, for every trainer alike."""

    def __init__(self):
        self.step_times: list[float] = []
        self.logs: list[dict] = []
        self._last: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._last is not None:
            self.step_times.append(now - self._last)
            if args.disable_tqdm:  # no progress bar (not a terminal): one readable line per step
                log.info("train step %d/%d (%.1f s)", state.global_step, state.max_steps, self.step_times[-1])
        self._last = now

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.logs.append({"step": state.global_step, **logs})

    def metrics(self, wall_s: float, tokens: int, samples: int) -> dict:
        out: dict[str, Any] = {
            "train/steps": len(self.step_times),
            "train/step_time_s": round(statistics.median(self.step_times), 4) if self.step_times else None,
            "train/wall_s": round(wall_s, 3),
            "train/tokens": tokens,
            "train/tokens_per_s": round(tokens / wall_s, 2) if wall_s > 0 else None,
            "train/samples_per_s": round(samples / wall_s, 4) if wall_s > 0 else None,
        }
        losses = [log["loss"] for log in self.logs if isinstance(log.get("loss"), (int, float))]
        out["train/final_loss"] = losses[-1] if losses else None
        rewards = [
            log[k] for log in self.logs for k in ("reward", "objective/scores") if isinstance(log.get(k), (int, float))
        ]
        if rewards:
            out["train/reward_curve"] = rewards
        return out
