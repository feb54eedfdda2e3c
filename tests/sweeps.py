"""The suite's sweeps: the user's own command in a fresh process, or runs in this process; what a run's
trainer is expected to have moved."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from tests.conftest import REPO

HEADLINE = ["grpo", "ppo", "dpo", "kto", "orpo"]
# Methods whose only learning signal is a difference of rewards within a group of samples: on a random
# model every sample earns the same (zero) reward, the advantages are zero, and nothing moves. Their
# movement is tested on the embedded model (tests/test_headline.py: GRPO and RLOO).
REWARD_GROUPS = ("grpo", "rloo")


@dataclass
class Sweep:
    folder: Path
    returncode: int
    stderr: str
    runs: dict[str, dict]  # method -> metrics.json (+ "_dir")
    stdout: str = ""

    def run(self, name: str) -> dict:
        """The run of one method, asserted successful (this test's own method only)."""
        assert name in self.runs, f"{name}: no metrics.json in {self.folder}\n{self.stderr[-3000:]}"
        run = self.runs[name]
        assert run["status"] == "success", f"{name}: {run['status']}: {run.get('error')}\n{run.get('traceback', '')}"
        return run

    def successful(self) -> dict[str, dict]:
        return {m: r for m, r in self.runs.items() if r["status"] == "success"}


def sweep(out: Path, *overrides: str, timeout: int = 1500) -> Sweep:
    """Run `python -m bench -m ...` as a user does; collect the runs' metrics.json files."""
    cmd = [sys.executable, "-m", "bench", "-m", *overrides, "debug=smoke", f"hydra.sweep.dir={out}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    runs = {}
    for path in out.glob("*/metrics.json"):
        record = json.loads(path.read_text())
        runs[record["method"]] = record | {"_dir": path.parent}
    return Sweep(out, proc.returncode, proc.stderr, runs, proc.stdout)


def runs(out: Path, names: list[str], *overrides: str) -> Sweep:
    """Runs of one configuration per method, in this process, as the sweep's jobs would be (a test whose
    subject is not the command line saves the ~8 s a fresh process spends importing torch and TRL)."""
    from bench.config.compose import compose
    from bench.run.runner import run

    records = {}
    for i, name in enumerate(names):
        cfg = compose([f"method={name}", *overrides, "debug=smoke", "isolate=false"])
        cfg.output_dir = str(out / f"{i}_{name}_seed0")
        records[name] = run(cfg) | {"_dir": Path(cfg.output_dir)}
    return Sweep(out, 0, "", records)


def learned_from_rewards(run: dict) -> bool:
    """Whether any group of a reward-driven method's samples had rewards that differ (TRL's own log)."""
    logs = json.loads((run["_dir"] / "train_log.json").read_text())
    return any(entry.get("frac_reward_zero_std", 1.0) < 1.0 for entry in logs)


def assert_trains_only_its_adapter(run: dict, hidden: int, layers: int) -> None:
    assert run["params/trainable"] == run["params/audit_exact"] > 0
    assert run["params/lora_card_formula"] == 2 * run["peft/r"] * hidden * layers * 7
    moves = run["method/adapter"] not in REWARD_GROUPS or learned_from_rewards(run)
    assert run["train/trainable_tensors"] > 0
    assert run["train/trainable_tensors_changed"] == (run["train/trainable_tensors"] if moves else 0)
    assert run["train/frozen_tensors_changed"] == 0 < run["train/frozen_tensors"]
    # The saved adapter is the trained one: LoRA B starts at zero, so a non-zero B was learned.
    weights = load_file(run["_dir"] / "adapter" / "adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and all((t.abs().sum() > 0) == moves for t in lora_b)
    assert sum(t.numel() for t in weights.values()) == run["params/audit_exact"]
