"""Withdraw the MFU of committed records measured under the old peak rule (one 2048² matmul).

On this project's 2-core CPU that rule read the peak 10-20% low (cache-resident and layer-shaped matmuls
run faster than 2048²), so DPO and KTO records read MFU up to 115%. The records cannot be rerun in a
session, and a peak measured today on another VM would be a guess about theirs: their MFU is withdrawn
instead, kept under `perf/mfu_old_peak_rule` and `perf/peak_flops_per_s_old_rule` for reference. Records
that name their rule (`perf/peak_rule`, written since the rule changed) are left alone.

    .venv/bin/python scripts/withdraw-old-mfu.py results/reference   # then rewrite each summary:
    for d in $(dirname $(find results/reference -name summary.md)); do .venv/bin/python -m bench.report $d; done
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def withdraw(root: Path) -> int:
    changed = 0
    for path in sorted(root.rglob("metrics.json")):
        record = json.loads(path.read_text())
        if "perf/mfu" not in record or "perf/peak_rule" in record:
            continue
        record["perf/mfu_old_peak_rule"] = record.pop("perf/mfu")
        record["perf/peak_flops_per_s_old_rule"] = record.pop("perf/peak_flops_per_s")
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        changed += 1
    return changed


if __name__ == "__main__":
    total = sum(withdraw(Path(arg)) for arg in sys.argv[1:])
    print(f"withdrew the MFU of {total} records")
