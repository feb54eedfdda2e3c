"""One code base for TRL 1.12 through 1.16: the method package imports no trainer, a method that the
installed TRL lacks (PPO and BCO after 1.12) fails at validation naming the TRL and the lock it needs,
and a sweep over every method skips it once. Runs on either lock (CI runs it on both)."""

from __future__ import annotations

import subprocess
import sys
import time
from importlib.metadata import version

import pytest
from packaging.version import Version

import methods
from bench.run.callbacks import unavailable_methods

OLD_TRL = Version(version("trl")) < Version("1.13")


def test_importing_the_method_package_imports_no_trainer():
    code = "import sys, methods; methods.names(); print(sorted(m for m in sys.modules if m.startswith('trl')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_method_is_registered_and_only_ppo_and_bco_depend_on_the_trl():
    assert {"ppo", "bco", "grpo", "dpo", "kto", "orpo", "sft", "rloo", "cpo", "online_dpo"} <= set(methods.names())
    missing = {name for name in methods.names() if methods.get(name).unavailable() is not None}
    assert missing == (set() if OLD_TRL else {"ppo", "bco"})


def test_a_missing_trainer_is_named_with_the_trl_and_the_lock_that_has_it():
    ghost = methods.Method(
        "ghost",
        "trl.experimental.no_such_trainer:GhostConfig",
        "prompts",
        build=None,
        policy=None,
        needs="TRL 1.12 (removed in 1.13)",
    )
    why = ghost.unavailable()
    assert why.startswith("method=ghost needs trl.experimental.no_such_trainer")
    assert f"TRL {version('trl')} lacks" in why and "TRL 1.12 (removed in 1.13)" in why and "make setup" in why


@pytest.mark.skipif(OLD_TRL, reason="TRL 1.12 has PPO: the current lock (TRL 1.16) runs this check")
def test_ppo_on_the_current_trl_fails_in_seconds_naming_trl_1_12_and_the_default_lock(compose, tmp_path):
    from bench.run.runner import run

    started = time.perf_counter()
    record = run(compose("method=ppo", "model=tiny", "debug=smoke", "isolate=false", output_dir=tmp_path))
    assert record["status"] == "failed" and "TRL 1.12" in record["error"] and "constraints.txt" in record["error"]
    assert "model/path" not in record and time.perf_counter() - started < 30


def test_a_sweep_names_the_methods_it_skips_once(monkeypatch):
    real = methods.Method.unavailable
    monkeypatch.setattr(
        methods.Method,
        "unavailable",
        lambda self: "method=ppo needs X. It needs TRL 1.12: the default lock" if self.name == "ppo" else real(self),
    )
    jobs = [["method=grpo", "seed=0"], ["method=ppo", "seed=0"], ["method=ppo", "seed=1"], ["method=dapo"]]
    assert list(unavailable_methods(jobs)) == ["ppo"]


def test_rows_on_another_trl_are_apart_and_an_undeclared_difference():
    """A table never mixes TRL 1.12 and 1.16 runs in one row, and the audit flags rows that differ in it."""
    import pandas as pd

    from bench.records.schema import GROUP_KEYS
    from bench.report.summary import fairness_audit

    assert "versions/trl" in GROUP_KEYS
    runs = pd.DataFrame(
        [
            {"status": "success", "label": "dpo (1.12)", "versions/trl": "1.12.0", "fair/trl_config": {"beta": 0.1}},
            {"status": "success", "label": "dpo (1.16)", "versions/trl": "1.16.0", "fair/trl_config": {"beta": 0.1}},
        ]
    )
    (difference,) = fairness_audit(runs)
    assert difference.setting == "versions/trl" and not difference.declared


def test_a_router_setting_only_counts_for_a_mixture_of_experts():
    """TRL 1.16 moved router_aux_loss_coef's default from 0.001 to None: on a dense model it is inert, and
    the audit leaves it out there; on a mixture of experts it is compared like any other setting."""
    from bench.report import audit

    def row(coef, moe):
        return [{"fair/trl_config": {"router_aux_loss_coef": coef, "beta": 0.1}, "model/moe": moe}]

    assert audit.audit({"a": row(0.001, False), "b": row(None, False)}) == []
    (difference,) = audit.audit({"a": row(0.001, True), "b": row(None, True)})
    assert difference.setting == "router_aux_loss_coef" and not difference.declared
