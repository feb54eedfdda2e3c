"""A sweep survives bad runs, kills and parallel jobs, and loses nothing; runs are deterministic, a
diverging run says so, and credentials never reach a written file."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.measure.metrics import Diverged, DivergenceGuard
from bench.system import secrets
from tests.conftest import REPO

BENCH = [sys.executable, "-m", "bench"]
# These tests watch a run's phases on its terminal as they pass, which a quiet one keeps in run.log.
VERBOSE = "verbose=true"
# The mechanics of failures, signals and resumption: the tiny model. Two of its steps take under a second,
# so a test that signals a run once it is training gives it LONG's steps, to be still training then.
TINY = ["model=tiny"]
LONG = "train.args.max_steps=8"


def records(folder: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("*/metrics.json"))}


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".lock")]


def gsm8k_dir(folder: Path, broken: bool) -> Path:
    """A tiny local GSM8K; `broken` puts a row without a final answer on line 2 of train.jsonl."""
    folder.mkdir()
    good = [{"question": f"What is {i} + 1?", "answer": f"{i} plus 1\n#### {i + 1}"} for i in range(8)]
    rows = good[:1] + [{"question": "q", "answer": "no final answer"}] + good[1:] if broken else good
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_divergence_guard_stops_at_the_first_non_finite_loss():
    guard, state = DivergenceGuard(), type("S", (), {"global_step": 3})()
    guard.on_log(None, state, None, logs={"loss": 0.5, "grad_norm": 1.0, "entropy": float("nan")})
    with pytest.raises(Diverged, match="step 3: loss = nan") as err:
        guard.on_log(None, state, None, logs={"loss": float("nan")})
    assert err.value.step == 3
    with pytest.raises(Diverged, match="grad_norm = inf"):
        guard.on_log(None, state, None, logs={"loss": 0.0, "grad_norm": float("inf")})


def test_secrets_are_masked_in_nested_values(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-0123456789")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_abcdefghij")
    value = {"a": ["x hf_secret_abcdefghij y"], "wandb-secret-0123456789": 1}
    assert secrets.scrub(value) == {"a": ["x *** y"], "***": 1}


@pytest.mark.slow
def test_a_failing_job_in_the_middle_does_not_stop_the_sweep(tmp_path):
    dirs = [gsm8k_dir(tmp_path / name, broken=name == "bad") for name in ("a", "bad", "c")]
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [
            *BENCH,
            "-m",
            VERBOSE,
            "method=sft",
            "task=gsm8k",
            f"task.data_dir={','.join(map(str, dirs))}",
            "task.num_validation=2",
            "debug=smoke",
            "eval=none",
            "logger=none",
            *TINY,
            "isolate=false",
            f"hydra.sweep.dir={out}",
            "hydra.sweep.subdir=${hydra.job.num}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    runs = records(out)
    assert [runs[k]["status"] for k in ("0", "1", "2")] == ["success", "failed", "success"], proc.stderr[-2000:]
    assert "train.jsonl:2" in runs["1"]["error"] and "#### <number>" in runs["1"]["error"]
    assert proc.returncode != 0  # the sweep says it had a failure, at the end
    summary = (out / "summary.md").read_text()
    assert "failed" in summary and "train.jsonl:2" in summary
    # The failed run's end line says where its record and log are (a data error's message is the whole
    # story: no traceback); the sweep ends naming its report.
    end = next(line for line in proc.stdout.splitlines() if "run 2/3: failed: " in line)
    assert end.endswith(f" · record: {out / '1' / 'metrics.json'} · log: {out / '1' / 'run.log'}"), end
    assert proc.stderr.strip().splitlines()[-1] == f"1 of 3 runs failed; see {out / 'summary.md'}"


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_redoing_or_losing_runs(tmp_path):
    out = tmp_path / "sweep"
    cmd = [
        *BENCH,
        "-m",
        VERBOSE,
        "method=sft",
        "seed=0,1",
        "debug=smoke",
        "eval=none",
        "logger=none",
        *TINY,
        LONG,
        "isolate=false",
        f"hydra.sweep.dir={out}",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    second = out / "1_sft_seed1" / "metrics.json"
    deadline = time.time() + 600
    while time.time() < deadline and "phase: train" not in _read(second.parent / "run.log"):
        time.sleep(0.2)  # into the second run's training
    assert json.loads(second.read_text())["status"] == "running"
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its run process, as a kill -9 of the job would
    proc.wait()
    first = out / "0_sft_seed0" / "metrics.json"
    before = first.read_text()
    assert json.loads(before)["status"] == "success"

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipping" in again.stderr + again.stdout
    assert first.read_text() == before  # the finished run was not redone
    runs = records(out)
    assert sorted(runs) == ["0_sft_seed0", "1_sft_seed1"]
    assert all(r["status"] == "success" for r in runs.values())
    assert not leftovers(out)


@pytest.mark.slow
def test_a_run_whose_process_is_killed_is_recorded_as_killed(tmp_path):
    proc = subprocess.Popen(
        [
            *BENCH,
            VERBOSE,
            "method=sft",
            "debug=smoke",
            "eval=none",
            "logger=none",
            *TINY,
            LONG,
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    child = None
    while time.time() < deadline and child is None:
        children = psutil.Process(proc.pid).children()
        child = next((c for c in children if "spawn" in _cmdline(c)), None)
        time.sleep(0.2)
    assert child is not None, "the isolated run process never started"
    time.sleep(3)
    child.kill()
    assert proc.wait(timeout=120) != 0
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "killed" and "SIGKILL" in record["error"]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _cmdline(process) -> str:
    """A process's command line; empty for one that has exited meanwhile (a zombie not yet reaped, such as
    a short-lived helper of the sweep), which psutil refuses to read and which is never the run process."""
    try:
        return " ".join(process.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return ""


def _alive(processes) -> list:
    """Those of `processes` still running: neither gone nor a zombie."""
    out = []
    for p in processes:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_for(log: Path, text: str, proc, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise AssertionError(f"never saw {text!r}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.slow
def test_sigterm_of_a_sweep_records_the_run_as_interrupted_and_the_rerun_finishes(tmp_path):
    """As Slurm's preemption or `kill <pid>` does: SIGTERM to the sweep's own process only."""
    out, log = tmp_path / "sweep", tmp_path / "log.txt"
    cmd = [
        *BENCH,
        "-m",
        VERBOSE,
        "method=sft",
        "seed=0,1",
        "debug=smoke",
        "eval=none",
        "logger=none",
        *TINY,
        LONG,
        f"hydra.sweep.dir={out}",
    ]
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
        _wait_for(log, "phase: train", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    # No orphan. Helpers such as multiprocessing's resource tracker exit when they see their parent's pipe close,
    # a moment after the parent itself: give them that moment, not the GRACE_S a stuck run process would get.
    # A zombie counts as gone: where PID 1 does not reap orphans, psutil.wait_procs would wait out its whole
    # timeout for one.
    deadline = time.time() + 15
    while (alive := _alive(children)) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive, [c.cmdline() for c in alive]
    runs = records(out)
    assert list(runs) == ["0_sft_seed0"], runs  # the sweep stopped: the second run never started
    run = runs["0_sft_seed0"]
    assert run["status"] == "interrupted" and run["interrupted/signal"] == "SIGTERM"
    assert run["interrupted/phase"] == "train" and "during train" in run["error"]
    assert "Rerun the same command" in log.read_text()
    from bench.report.summary import aggregate, load_runs

    assert aggregate(load_runs([out]))["runs_ok"].tolist() == [0]  # not counted as finished

    # The rerun in the sweep's own process: isolate is not part of a run's identity (its hash), and what the
    # rerun must do, redo the interrupted run and start the one never started, is the same either way; the
    # run processes were the first half's subject (an isolated run process's own records of a signal and of
    # a kill: test_sighup_of_the_run_process_alone..., test_a_run_whose_process_is_killed...).
    again = subprocess.run([*cmd, "isolate=false"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {k: r["status"] for k, r in records(out).items()} == {"0_sft_seed0": "success", "1_sft_seed1": "success"}
    assert not leftovers(out)


@pytest.mark.slow
def test_sighup_of_the_run_process_alone_is_recorded_by_it_and_ends_the_run(tmp_path):
    """The isolated run process gets the signal and records it; its parent agrees and exits non-zero."""
    log = tmp_path / "log.txt"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [
                *BENCH,
                VERBOSE,
                "method=sft",
                "debug=smoke",
                "eval=none",
                "logger=none",
                *TINY,
                f"hydra.run.dir={tmp_path / 'run'}",
            ],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        _wait_for(log, "phase: setup", proc)
        (child,) = [c for c in psutil.Process(proc.pid).children() if "spawn" in _cmdline(c)]
        child.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=120) == 128 + signal.SIGHUP
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["interrupted/signal"] == "SIGHUP"
    assert record["interrupted/phase"] == "setup"


@pytest.mark.slow
def test_ctrl_c_in_the_terminal_records_the_run_as_interrupted(tmp_path):
    """Ctrl-C reaches the terminal's whole process group: the sweep's process and the run's."""
    log = tmp_path / "log.txt"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [
                *BENCH,
                VERBOSE,
                "method=sft",
                "debug=smoke",
                "eval=none",
                "logger=none",
                *TINY,
                LONG,
                f"hydra.run.dir={tmp_path / 'run'}",
            ],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As in a terminal: a suite started in the background (`make test &`) inherits SIGINT ignored,
            # and Python then never turns it into KeyboardInterrupt.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        _wait_for(log, "phase: train", proc)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 128 + signal.SIGINT
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["interrupted/signal"] == "SIGINT"
    assert record["interrupted/phase"] == "train"
    assert not leftovers(tmp_path / "run")


@pytest.mark.slow
def test_two_identical_sweeps_into_one_folder_share_the_runs_out(tmp_path):
    """Each run is claimed by one process (a lock on its folder); the other skips it, so nothing is
    written twice at once, every run is done once, and the sweep that ends first says what is unfinished."""
    out = tmp_path / "sweep"
    # In the sweeps' own processes (isolate=false): the run folder's lock is the subject, not the run process.
    cmd = [
        *BENCH,
        "-m",
        VERBOSE,
        "method=sft",
        "seed=0,1",
        "debug=smoke",
        "eval=none",
        "logger=none",
        *TINY,
        LONG,
        "isolate=false",
        f"hydra.sweep.dir={out}",
    ]
    logs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    with logs[0].open("w") as a_log, logs[1].open("w") as b_log:
        first = subprocess.Popen(cmd, cwd=REPO, stdout=a_log, stderr=subprocess.STDOUT)
        _wait_for(logs[0], "phase: setup", first)  # the first sweep holds run 0
        second = subprocess.Popen(cmd, cwd=REPO, stdout=b_log, stderr=subprocess.STDOUT)
        codes = [first.wait(timeout=900), second.wait(timeout=900)]
    text = [log.read_text() for log in logs]
    runs = records(out)
    assert {k: r["status"] for k, r in runs.items()} == {"0_sft_seed0": "success", "1_sft_seed1": "success"}, text
    assert sum(t.count("phase: train") for t in text) == 2  # each run trained once, by one of them
    assert "another process is running it now" in "".join(text)
    assert 0 in codes  # the one that finished last saw every run done
    if codes != [0, 0]:  # the one that finished first, while the other still ran a run, said so
        assert "still running in another process" in "".join(text)
    assert not leftovers(out)


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG, as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_a_disk_that_fills_while_saving_fails_the_run_truthfully_and_leaves_no_half_folder(tmp_path):
    """The kernel refuses writes past a file-size limit as it does on a full disk: the adapter and its
    tokenizer (2 MB) cannot be saved under a 1 MB limit, while the record (a few KB) still can."""
    from bench.recipe.models import resolve_model_path

    resolve_model_path("embedded:tiny-llama", os.environ["RFT_BENCH_CACHE"])  # built before the limit
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            *BENCH,
            VERBOSE,
            "method=sft",
            "debug=smoke",
            "eval=none",
            "logger=none",
            *TINY,
            "isolate=false",
            f"hydra.run.dir={run}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_file_size_limit(2**20),
    )
    assert proc.returncode != 0
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "failed", proc.stderr[-3000:]
    assert "too large" in record["error"].lower() and "time/total_s" in record
    # An unexpected error: the terminal says where its traceback is.
    assert f'run failed: {record["error"]} · traceback: {run / "metrics.json"}, key "traceback"' in proc.stdout
    assert not (run / "adapter").exists() and not leftovers(run)


COLD = [
    "method=dpo",
    "debug=smoke",
    "eval.limit=4",
    "logger=none",
    "isolate=false",
    "peft.target_modules=all-linear",
    *TINY,
]


@pytest.fixture(scope="module")
def cold_cache(tmp_path_factory):
    """Two identical DPO runs started at once on an empty cache (every kind of entry gets built), the
    runs' folders, their stderr and the cache; shared by the tests of building, damage and adapters.
    The tiny model: its build takes the same lock and manifest as the embedded model's conversion (whose
    own race is test_parallel_processes_convert_the_embedded_model_once)."""
    tmp = tmp_path_factory.mktemp("cold")
    env = os.environ | {"RFT_BENCH_CACHE": str(tmp / "cache")}  # cold: nothing converted or built
    procs = [
        subprocess.Popen(
            [*BENCH, *COLD, f"hydra.run.dir={tmp / f'run{i}'}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errors = [p.communicate(timeout=900)[1] for p in procs]
    return tmp, env, errors


@pytest.mark.slow
def test_parallel_processes_convert_the_embedded_model_once(tmp_path):
    """The embedded GGUF, converted by whichever of two processes takes the lock; the other waits and
    reads the complete entry (the model itself is the subject: its conversion and its cache)."""
    from bench.system import cache

    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO); "
        "from bench.recipe.models import resolve_model_path; "
        "print(resolve_model_path('embedded:smollm2-135m-instruct', sys.argv[1]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "cache")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1
    assert sum("Converting SmolLM2" in err for _, err in outs) == 1  # one converted, the other waited
    (model,) = [p for p in (tmp_path / "cache" / "models").iterdir() if p.is_dir()]
    assert model.name.startswith("smollm2-135m-instruct-") and cache.problem(model, full=True) is None
    assert (model / "model.safetensors").stat().st_size > 500e6  # 134.5M fp32 weights
    assert not [p for p in leftovers(tmp_path / "cache") if not p.name.endswith(".lock")]


@pytest.mark.slow
def test_parallel_jobs_build_each_shared_cache_once(cold_cache):
    tmp_path, _, errors = cold_cache
    runs = [json.loads((tmp_path / f"run{i}" / "metrics.json").read_text()) for i in range(2)]
    assert all(r["status"] == "success" for r in runs), [e[-2000:] for e in errors]
    assert runs[0]["data/preference_fingerprint"] == runs[1]["data/preference_fingerprint"]
    assert sorted(r["data/build_cached"] for r in runs) == [False, True]  # one built, one waited and read
    # The build says how far it is (prompts done of total, and the rate), in the builder's log only.
    logs = [(tmp_path / f"run{i}" / "run.log").read_text() for i in range(2)]
    builder = [log for log in logs if "prompts sampled" in log]
    assert len(builder) == 1 and re.search(r"offline data: (\d+)/\1 prompts sampled \(\d+ completions", builder[0])
    assert sorted(r["eval/base_cached"] for r in runs) == [False, True]
    assert runs[0]["data/build_s"] == runs[1]["data/build_s"]  # the reader is charged the builder's cost
    # peft's all-linear on a Llama adapts the same seven projections; trainable = what the audit counts.
    assert all(r["params/trainable"] == r["params/audit_exact"] == 32_768 for r in runs)
    assert len([p for p in (tmp_path / "cache" / "models").glob("tiny-llama-*") if p.is_dir()]) == 1
    assert not [p for p in leftovers(tmp_path / "cache") if not p.name.endswith(".lock")]
    from bench.system import cache

    kinds = {entry.relative_to(tmp_path / "cache").parts[0] for entry in cache.entries(tmp_path / "cache")}
    assert kinds == {"models", "data", "base_scores", "perf"}  # every published entry has its manifest
    assert all(cache.problem(e, full=True) is None for e in cache.entries(tmp_path / "cache"))


@pytest.mark.slow
def test_each_kind_of_damaged_cache_entry_is_rebuilt_with_a_warning_naming_it(cold_cache):
    """A weight file cut short, an emptied data file, a removed score file, a truncated measurement:
    the next run warns about each by path, rebuilds it under its lock and succeeds."""
    from bench.system import cache

    tmp_path, env, _ = cold_cache
    root = tmp_path / "cache"
    (model,) = [p for p in (root / "models").iterdir() if p.is_dir()]
    weights = model / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    (data,) = [p for p in (root / "data").glob("*.json") if not p.name.endswith(".manifest.json")]
    data.write_text("")
    (scores,) = [p for p in (root / "base_scores").glob("*.json") if not p.name.endswith(".manifest.json")]
    scores.unlink()
    (peak,) = [p for p in (root / "perf").glob("*.json") if not p.name.endswith(".manifest.json")]
    peak.write_text(peak.read_text()[:10])

    proc = subprocess.run(
        [*BENCH, *COLD, f"hydra.run.dir={tmp_path / 'again'}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    record = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert record["status"] == "success", proc.stderr[-3000:]
    console = proc.stdout + proc.stderr  # Hydra's job logging writes to stdout
    for what, path, wrong in [
        ("built model", model, "model.safetensors is"),
        ("offline data", data, "(emptied)"),
        ("base-model scores", scores, "(it is missing)"),
        ("measured flops_per_s", peak, "(truncated)"),
    ]:
        line = next((ln for ln in console.splitlines() if f"cache: {what} {path} is damaged (" in ln), "")
        assert wrong in line, (what, console[-3000:])
        assert cache.problem(path, full=True) is None, what  # rebuilt, with a fresh manifest
    assert record["data/build_cached"] is False and record["eval/base_cached"] is False


@pytest.mark.slow
def test_a_damaged_saved_adapter_is_refused_by_name(cold_cache, tmp_path, capsys):
    from bench.recipe.evaluate import main

    cold, _, _ = cold_cache
    shutil.copytree(cold / "run0", tmp_path / "run", ignore=shutil.ignore_patterns("wandb"))
    weights = tmp_path / "run" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main([str(tmp_path / "run" / "adapter")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'run' / 'adapter'} is damaged (adapter_model.safetensors is 1,000 bytes" in err
    assert "force=true" in err


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_curve_and_score(compose, tmp_path):
    from bench.run.runner import run

    # Online DPO on the tiny model: sampled completions, a judge's reward and a loss that moves (GRPO's loss
    # is zero on a random model, whose samples all earn the same reward, so its curve would prove nothing).
    results = []
    for i in range(2):
        cfg = compose(
            "method=online_dpo",
            "model=tiny",
            "debug=smoke",
            "eval.limit=4",
            "logger=none",
            "isolate=false",
            output_dir=tmp_path / f"run{i}",
        )
        record = run(cfg)
        assert record["status"] == "success", record.get("error")
        logs = json.loads((tmp_path / f"run{i}" / "train_log.json").read_text())
        results.append(([e.get("loss") for e in logs], record["train/reward_curve"], record["eval/items"]))
    assert results[0] == results[1] and any(loss for loss in results[0][0])


@pytest.mark.slow
def test_a_diverging_run_stops_with_its_step(compose, tmp_path):
    from bench.run.runner import run

    # An absurd learning rate overflows the weights on the first update: what follows is not finite.
    cfg = compose(
        "method=sft",
        "model=tiny",
        "debug=smoke",
        "eval=none",
        "logger=none",
        "isolate=false",
        "train.args.learning_rate=1e30",
        "train.args.max_steps=3",
        output_dir=tmp_path,
    )
    record = run(cfg)
    assert record["status"] == "diverged" and 1 <= record["train/diverged_step"] <= 2
    assert "diverged at step" in record["error"]


@pytest.mark.slow
def test_credentials_never_reach_written_files(compose, tmp_path, monkeypatch):
    from bench.run.runner import run

    key, token = "wandb-credential-0123456789abcdef", "hf_credential_abcdefghijklmnop"
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("WANDB_MODE", "offline")
    # Even a config that interpolates a credential on purpose writes it masked.
    cfg = compose(
        "method=sft",
        "model=tiny",
        "debug=smoke",
        "eval=none",
        "logger=wandb",
        "isolate=false",
        "+logger.note=${oc.env:HF_TOKEN}",
        output_dir=tmp_path,
    )
    record = run(cfg)
    assert record["status"] == "success", record.get("error")
    assert list(tmp_path.glob("wandb/offline-run-*"))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert key.encode() not in data and token.encode() not in data, path


def test_failures_are_classified():
    import torch

    from bench.run.record import status

    assert status(torch.OutOfMemoryError("CUDA out of memory")) == "oom"
    assert status(MemoryError()) == "oom"
    assert status(Diverged(2, "loss", float("nan"))) == "diverged"
    assert status(RuntimeError("boom")) == "failed"
