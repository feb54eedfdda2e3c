"""Measuring a run the same way for every method: memory, step times, tokens.

Adapters never measure; the harness attaches these to whatever trainer an adapter builds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import statistics
import threading
import time

import psutil
import torch
from transformers import TrainerCallback


def _malloc_trim() -> None:
    """Return freed heap pages to the OS (glibc only), so RSS reflects live memory."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


class MemorySampler:
    """Samples memory in a background thread: CPU RSS of this process, and CUDA allocated/reserved.

    Peak, mean and 99th percentile follow peft's method_comparison. On CUDA the peak is the
    allocator's exact max (reset at start); the samples give the mean and p99.
    """

    def __init__(self, device: str, interval_s: float = 0.05):
        self.device, self.interval_s = device, interval_s
        self.samples: list[int] = []
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> int:
        if self.device == "cuda":
            return torch.cuda.memory_allocated()
        return self._process.memory_info().rss

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._read())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        # Start from live memory only: what earlier steps (model load, building the offline data)
        # freed but the allocator kept would otherwise count towards this method's training peak.
        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            _malloc_trim()
        self.start = self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self._read())

    def metrics(self) -> dict:
        samples = sorted(self.samples)
        out = {
            "sys/peak_mem_bytes": max(samples),
            "sys/avg_mem_bytes": int(statistics.fmean(samples)),
            "sys/p99_mem_bytes": samples[min(len(samples) - 1, int(0.99 * len(samples)))],
            "sys/mem_samples": len(samples),
            "sys/mem_kind": "cuda_allocated" if self.device == "cuda" else "cpu_rss",
            "sys/start_mem_bytes": self.start,  # the loaded model(s), before the first step
        }
        if self.device == "cuda":
            out["sys/peak_mem_bytes"] = torch.cuda.max_memory_allocated()
            out["sys/peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
        out["sys/train_mem_bytes"] = out["sys/peak_mem_bytes"] - self.start  # what training added on top
        return out


class TokenCounter:
    """Counts token positions through the policy's input embeddings: every forward pass, training,
    reference (the disabled adapter) and generation alike, padding included, as the hardware sees it.
    """

    def __init__(self, model):
        self.tokens = 0
        self._handle = model.get_input_embeddings().register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        if args and torch.is_tensor(args[0]):
            self.tokens += args[0].numel()

    def close(self) -> None:
        self._handle.remove()


def weight_checksums(model) -> dict[str, tuple[bool, torch.Tensor]]:
    """Per-parameter checksums (sum, |sum|, sum of squares, in float64), tagged LoRA or base.

    Compared before and after training, they show that the LoRA weights moved and the frozen base
    did not, for every method alike, without keeping a second copy of the model in memory.
    """
    out = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            x = param.detach().double()
            out[name] = ("lora_" in name, torch.stack([x.sum(), x.abs().sum(), (x * x).sum()]).cpu())
    return out


def weights_changed(before: dict, after: dict) -> dict:
    changed = {name for name, (_, sums) in after.items() if not torch.equal(sums, before[name][1])}
    lora = [name for name, (is_lora, _) in after.items() if is_lora]
    base = [name for name, (is_lora, _) in after.items() if not is_lora]
    return {
        "train/lora_tensors_changed": sum(name in changed for name in lora),
        "train/lora_tensors": len(lora),
        "train/base_tensors_changed": sum(name in changed for name in base),
        "train/base_tensors": len(base),
    }


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
        self._last = now

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.logs.append({"step": state.global_step, **logs})

    def metrics(self, wall_s: float, tokens: int, samples: int) -> dict:
        out = {
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
            log[k]
            for log in self.logs
            for k in ("reward", "objective/scores")
            if isinstance(log.get(k), (int, float))
        ]
        if rewards:
            out["train/reward_curve"] = rewards
        return out
