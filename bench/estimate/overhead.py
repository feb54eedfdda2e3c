"""What a training process holds beyond the estimate's tensors, per device kind, as measured: the runtime
(interpreter, libraries, a CUDA context) and the allocator's left-over (caches, fragmentation, the data,
temporaries). With it the tensor peak becomes a range a user can act on, and each budget a verdict:
yes (the range's top fits), no (even its bottom does not), tight (in between).

The figures are read from committed run records under results/reference/, not typed in here: each one
traces back to a run a reader can open, a newly committed measurement (a GPU's, from `make gpu-check`)
moves the range without a code change, and a figure that no record backs cannot appear.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

from bench.records.store import REPO

GiB = 2**30
# Budgets in GiB, the table's unit. A card sold as "80 GB" shows torch a little less (an H100: 81,559 MiB,
# 79.6 GiB), so a range whose top lies within half a GiB of a budget is closer than its verdict says.
BUDGETS_GB = (24, 40, 80)
REFERENCE = REPO / "results" / "reference"
CPU_FOLDERS = "estimate-check-cpu*"  # make estimate-check's runs: every adapter, four shapes, fp32 and bf16
UNMEASURED = "unmeasured"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOverhead:
    """One run's overhead: its runtime (bytes) and its allocator's left-over as a fraction of what the
    allocator holds at the peak."""

    runtime: int
    allocator: float


@dataclass(frozen=True)
class Overhead:
    """The overhead measured on `runs` runs of one device kind: min–max of each figure."""

    kind: str  # the device kind whose runs measured it, or "unmeasured"
    runtime: tuple[int, int]
    allocator: tuple[float, float]
    runs: int
    note: str = ""  # what the figures stand in for, where they are another kind's

    @classmethod
    def of(cls, kind: str, runs: list[RunOverhead], note: str = "") -> Overhead:
        if not runs:
            return cls(UNMEASURED, (0, 0), (0.0, 0.0), 0, note)
        runtimes, shares = [r.runtime for r in runs], [r.allocator for r in runs]
        return cls(kind, (min(runtimes), max(runtimes)), (min(shares), max(shares)), len(runs), note)

    def range(self, tensor_peak: int) -> tuple[int, int]:
        """lo: the tensor peak and the least runtime measured; hi: the tensor peak and the most runtime,
        grown by the largest allocator's share measured (the left-over is that share of the whole)."""
        lo = tensor_peak + self.runtime[0]
        return lo, math.ceil((tensor_peak + self.runtime[1]) / (1 - self.allocator[1]))

    def describe(self) -> str:
        if self.kind == UNMEASURED:
            return (
                "no measured overhead (no run records under results/reference/, as in an installed package): "
                "the range is the tensor peak alone, and the runtime and the allocator come on top."
            )
        return (
            f"range from {self.kind} runs' overhead, measured on {self.runs} runs (results/reference/): runtime "
            f"{self.runtime[0] / GiB:.2f}–{self.runtime[1] / GiB:.2f} GiB, the allocator's left-over "
            f"{self.allocator[0]:.0%}–{self.allocator[1]:.0%} of the peak."
        )


def verdict(lo: int, hi: int, budget_gb: int) -> str:
    budget = budget_gb * GiB
    return "yes" if hi <= budget else "no" if lo > budget else "tight"


def run_overhead(record: dict) -> RunOverhead | None:
    """A successful run's overhead, or None where its record lacks the figures. CPU: the RSS left over
    beyond the counted parts and the runtime (`mem/other_bytes`) over the peak RSS. CUDA: what the caching
    allocator reserved beyond its allocated peak, over the reserved peak; the runtime is what the record holds
    (the harness records none on CUDA)."""
    if record.get("status") != "success":
        return None
    peak, runtime = record.get("sys/peak_mem_bytes"), record.get("mem/runtime_bytes")
    if str(record.get("sys/device", "")).startswith("cuda"):
        reserved = record.get("sys/peak_reserved_bytes")
        if not reserved or peak is None:
            return None
        return RunOverhead(int(runtime or 0), (reserved - peak) / reserved)
    other = record.get("mem/other_bytes")
    if not peak or other is None or runtime is None:
        return None
    return RunOverhead(int(runtime), other / peak)


def _records(pattern: str, root: Path) -> list[dict]:
    records = []
    for path in sorted(root.glob(f"{pattern}/**/metrics.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError) as err:  # one damaged file costs its run, not the estimate
            log.warning("bench.estimate: %s is unreadable (%s); its run is left out of the overhead", path, err)
    return records


@functools.cache  # a matrix asks once a cell; the records do not change while it runs
def measured(kind: str, root: Path = REFERENCE) -> Overhead:
    """The overhead of `kind` ("cpu" or "cuda") from the committed records under `root`. cpu: make
    estimate-check's runs; cuda: every record of a CUDA run, and with none, the CPU's figures, said so."""
    if kind == "cpu":
        runs = [r for r in map(run_overhead, _records(CPU_FOLDERS, root)) if r]
        return Overhead.of("cpu", runs)
    cuda = [
        r
        for r in map(
            run_overhead, (rec for rec in _records("*", root) if str(rec.get("sys/device", "")).startswith("cuda"))
        )
        if r
    ]
    cpu = measured("cpu", root)
    if cuda and any(r.runtime for r in cuda):
        return Overhead.of("cuda", cuda)
    if cuda:  # the harness records no runtime on CUDA (its context is outside the allocator's count)
        gpu = Overhead.of("cuda", cuda)
        return replace(
            gpu,
            runtime=cpu.runtime,
            note=f"the CUDA runs record no runtime (the CUDA context): the CPU process's ({cpu.runs} runs) stands in.",
        )
    if cpu.kind == UNMEASURED:
        return cpu
    return replace(
        cpu,
        note=(
            f"no GPU run measured yet: the range uses the CPU's runtime and allocator, measured on {cpu.runs} runs; a "
            "CUDA context and caching allocator differ; make gpu-check records them "
            "(committed under results/reference/)."
        ),
    )
