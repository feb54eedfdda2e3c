"""The harness's overhead: each method through the harness against a plain TRL script with identical
settings (same model folder, LoRA config, dataset rows and TRL config arguments), as ratios.

    python -m bench.studies.overhead                              # grpo, dpo, kto, orpo, sft; 10 steps each
    python -m bench.studies.overhead --methods grpo,dpo --repeats 3 --out results/overhead/mine
    python -m bench.studies.overhead --set train.num_prompts=8    # any harness override, applied to both sides
    python -m bench.studies.overhead --repeats 0 --profile        # only the profiled work the harness adds
    python -m bench.studies.overhead --fast                       # + GRPO with merged rollouts (train.rollout=merged)

First one process prepares, untimed, what both sides share: the harness's own dataset rows (offline
data built and cached), the LoRA config and the TRL arguments, written to `<out>/prep/`. Then, per
method and repeat, each side runs in a fresh process, in alternating order: the harness as a user
runs it (`python -m bench ... isolate=false eval=none logger=none`), and a plain script that only
loads the model, builds the dataset with `Dataset.from_list`, constructs the trainer as the method's
adapter does, trains and saves. Both time steps the same way (train begin → each step end); the
first step is warm-up and left out of the median. Whole-process wall time is measured from outside.

Also reported: each harness run's share of its process wall time spent outside training and
evaluation, and with `--sweep` the same share for one real sweep over the methods (`isolate=true`,
a process per run, the report at the end). The table goes to stdout and `<out>/overhead.md`, the raw
figures to `<out>/overhead.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from bench.config import finetuning
from bench.config.compose import compose
from bench.records.store import provenance
from bench.tasks import load_task

DEFAULT_METHODS = "grpo,dpo,kto,orpo,sft"
# The smallest real settings, a few more steps so the median step is not the warm-up; no evaluation
# and no tracker (the plain script has neither); one process per run on both sides.
COMMON = ("debug=smoke", "eval=none", "logger=none", "isolate=false", "force=true")
PLAIN = ("grpo", "rloo", "dpo", "kto", "orpo", "sft")  # the methods the plain script can build
ONLINE = ("grpo", "rloo")  # of those, the ones that generate while training (--fast rows)


def _overrides(method: str, steps: int, extra: list[str]) -> list[str]:
    return [f"method={method}", *COMMON, f"train.args.max_steps={steps}", *extra]


# ---------------------------------------------------------------------------------------------------
# Preparation (one process, untimed)


def prepare(methods: list[str], steps: int, extra: list[str], out: Path) -> None:
    """Write `<out>/prep/<method>.json`: what the plain script needs to run exactly as the harness."""
    from bench.config.trainer import trainer_kwargs
    from bench.measure import perf
    from bench.recipe import train as recipe
    from bench.recipe.plan import make
    from bench.system.runtime import resolve_runtime

    for name in methods:
        cfg = compose(_overrides(name, steps, extra))
        cfg.output_dir = str(out / "prep" / name)
        runtime = resolve_runtime(cfg.device, cfg.precision)
        runtime.activate()
        plan = make(cfg, runtime)
        # The harness's own setup: tokenizer, prompts, base model, and the method's dataset (building
        # the offline data into the cache here, so neither timed side pays for it).
        s = recipe.setup(plan)
        # The machine's peaks are measured once per machine and cached: not a per-run cost.
        perf.peak_flops(runtime.device, runtime.dtype, cfg.cache_dir)
        perf.peak_bandwidth(runtime.device, cfg.cache_dir)
        kwargs = trainer_kwargs(cfg, runtime, plan.method)
        folder = out / "prep" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rows.json").write_text(json.dumps(s.dataset.to_list()))
        finetuning.peft_config(cfg.peft).save_pretrained(str(folder / "peft"))
        from omegaconf import OmegaConf

        spec = {
            "method": name,
            "model_path": s.path,
            "precision": runtime.precision,
            "device": runtime.device,
            "pad_token": s.tokenizer.pad_token,
            "padding_side": s.tokenizer.padding_side,
            "rows": str(folder / "rows.json"),
            "peft_dir": str(folder / "peft"),
            "trainer_kwargs": kwargs,
            # The harness's dropout policy, for trainers whose config has no switch for it (SFT).
            "disable_dropout": bool(cfg.train.disable_dropout),
            "task": OmegaConf.to_container(cfg.task, resolve=True),
        }
        (out / "prep" / f"{name}.json").write_text(json.dumps(spec, indent=1, default=str))
        del s


# ---------------------------------------------------------------------------------------------------
# The two timed sides (each in a fresh process)


def _record_step_times() -> None:
    """Have the harness keep its raw step times in metrics.json, wall and CPU (`train/step_times`,
    `train/step_cpu_times`), so both sides use one statistic: the median without the first step.

    The harness itself records only the median wall time over all steps. The subclass adds one
    `time.process_time()` call per step; CPU time (all threads of the process) is the steadier
    figure when other processes share the cores.
    """
    from bench.measure.metrics import StepTimer
    from bench.recipe import train

    class RecordingStepTimer(StepTimer):
        def on_train_begin(self, args, state, control, **kwargs):
            self.cpu_times: list[float] = []
            self._cpu_last = time.process_time()
            return super().on_train_begin(args, state, control, **kwargs)

        def on_step_end(self, args, state, control, **kwargs):
            now = time.process_time()
            self.cpu_times.append(now - self._cpu_last)
            self._cpu_last = now
            return super().on_step_end(args, state, control, **kwargs)

        def metrics(self, *args, **kwargs) -> dict:
            out = super().metrics(*args, **kwargs)
            out.setdefault("train/step_times", [round(t, 5) for t in self.step_times])
            out["train/step_cpu_times"] = [round(t, 5) for t in getattr(self, "cpu_times", [])]
            return out

    train.StepTimer = RecordingStepTimer  # type: ignore[misc]  # bench.recipe.train looks the name up when a run starts


PROFILE_ENV = "RFT_OVERHEAD_PROFILE"  # a child given this path profiles its training call into it


def _profile_training() -> None:
    """With RFT_OVERHEAD_PROFILE set, profile `Trainer.train` (the thread that runs the steps) into it.

    Both sides call the same TRL `train`, so the two profiles list the same functions with the same
    call counts wherever they do the same work: what differs is what one side adds.
    """
    path = os.environ.get(PROFILE_ENV)
    if not path:
        return
    import cProfile

    import transformers

    train = transformers.Trainer.train

    def profiled(self, *args, **kwargs):
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            return train(self, *args, **kwargs)
        finally:
            profiler.disable()
            profiler.dump_stats(path)

    transformers.Trainer.train = profiled  # type: ignore[method-assign]  # every trainer's train(), profiled


def added_work(harness: dict, plain: dict, steps: int) -> dict:
    """Split the harness's extra profiled time into work it adds and speed (pstats `stats` dicts).

    A function called as often on both sides does the same work on both (same TRL code, same data,
    same shapes); its time differs only by how fast the machine ran then, which on a shared machine
    drifts by ±15% over minutes. The work the harness adds is its calls beyond the plain script's:
    functions only it calls (its callbacks, the token-counting hook) and extra calls of shared
    functions, each charged its mean time per call: per step, and as a share of the plain profile's
    time. Also the speed ratio of the same work (harness / plain): the machine's share of a gap.
    (The memory sampler's thread is not in the profile; its cost shows in the wall-time ratios.)
    """
    added = same_h = same_p = 0.0
    for key, (_, calls_h, tottime_h, _, _) in harness.items():
        calls_p, tottime_p = (plain[key][1], plain[key][2]) if key in plain else (0, 0.0)
        if calls_h > calls_p:
            added += tottime_h * (calls_h - calls_p) / calls_h
        elif calls_h == calls_p:
            same_h, same_p = same_h + tottime_h, same_p + tottime_p
    plain_total = sum(row[2] for row in plain.values())  # both profiled: slowed alike
    return {
        "added_ms_per_step": 1000 * added / steps,
        "added_share": added / plain_total if plain_total else None,
        "same_work_speed_ratio": same_h / same_p if same_p else None,
    }


def harness_child(argv: list[str]) -> None:
    """`python -m bench` with these overrides, in this process."""
    _profile_training()
    _record_step_times()
    from bench.__main__ import main

    sys.argv = ["bench", *argv]
    main()


def plain_child(spec_path: str, output_dir: str, result_path: str) -> None:
    """A plain TRL script with the harness's settings: what a user would write by hand."""
    started = time.perf_counter()
    _profile_training()
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback

    spec = json.loads(Path(spec_path).read_text())
    name = spec["method"]

    class Steps(TrainerCallback):  # the same intervals as bench.measure.metrics.StepTimer, wall and CPU
        def __init__(self):
            self.times: list[float] = []
            self.cpu_times: list[float] = []
            self.last: tuple[float, float] | None = None  # (wall, CPU) at the last step's end

        def on_train_begin(self, args, state, control, **kwargs):
            self.last = (time.perf_counter(), time.process_time())

        def on_step_end(self, args, state, control, **kwargs):
            now = (time.perf_counter(), time.process_time())
            assert self.last is not None  # set as training began
            self.times.append(now[0] - self.last[0])
            self.cpu_times.append(now[1] - self.last[1])
            self.last = now

    tokenizer = AutoTokenizer.from_pretrained(spec["model_path"])
    tokenizer.pad_token, tokenizer.padding_side = spec["pad_token"], spec["padding_side"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[spec["precision"]]
    model = AutoModelForCausalLM.from_pretrained(spec["model_path"], dtype=dtype).to(spec["device"])
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    dataset = Dataset.from_list(json.loads(Path(spec["rows"]).read_text()))
    peft_config = LoraConfig.from_pretrained(spec["peft_dir"])
    steps = Steps()
    common = dict(
        model=model,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[steps],
    )
    kwargs = {**spec["trainer_kwargs"], "output_dir": output_dir}
    trainer: Trainer
    if name in ("grpo", "rloo"):
        from omegaconf import OmegaConf

        rewards = load_task(OmegaConf.create(spec["task"])).reward_funcs
        if name == "grpo":
            from trl import GRPOConfig, GRPOTrainer

            trainer = GRPOTrainer(args=GRPOConfig(**kwargs), reward_funcs=list(rewards), **common)
        else:
            from trl import RLOOConfig, RLOOTrainer

            trainer = RLOOTrainer(args=RLOOConfig(**kwargs), reward_funcs=list(rewards), **common)
    elif name == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(args=DPOConfig(**kwargs), **common)
    elif name == "kto":
        from trl import KTOConfig, KTOTrainer

        trainer = KTOTrainer(args=KTOConfig(**kwargs), **common)
    elif name == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        trainer = ORPOTrainer(args=ORPOConfig(**kwargs), **common)
    elif name == "sft":
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(args=SFTConfig(**kwargs), **common)
    else:
        raise SystemExit(f"the plain script has no builder for {name}; it knows {', '.join(PLAIN)}")
    if spec.get("disable_dropout") and "disable_dropout" not in kwargs:  # what the harness does for SFT
        from trl.trainer.utils import disable_dropout_in_model

        disable_dropout_in_model(trainer.model)  # type: ignore[arg-type]  # a built trainer holds its model
    train_started = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - train_started
    trainer.save_model(str(Path(output_dir).parent / "adapter"))
    result = {
        "step_times": steps.times,
        "step_cpu_times": steps.cpu_times,
        "train_s": train_s,
        "in_process_s": time.perf_counter() - started,
    }
    Path(result_path).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------
# The driver


def _run(cmd: list[str], log: Path) -> float:
    """Run a command to completion, its output into `log`; return its wall time."""
    started = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with code {proc.returncode}; see {log}")
    return wall


def _load() -> float:
    """The 1-minute load average: above the core count, other processes were competing for them."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


def _median_after_warmup(times: list[float]) -> float | None:
    times = times[1:] if len(times) > 1 else times
    return statistics.median(times) if times else None


def run_harness(method: str, steps: int, extra: list[str], folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    overrides = [*_overrides(method, steps, extra), f"hydra.run.dir={folder}"]
    wall = _run([sys.executable, "-m", "bench.studies.overhead", "_harness", *overrides], folder / "process.log")
    record = json.loads((folder / "metrics.json").read_text())
    if record.get("status") != "success":
        raise RuntimeError(f"harness run {folder} ended {record.get('status')}: {record.get('error')}")
    inside = (record.get("time/train_s") or 0) + (record.get("time/eval_s") or 0)
    return {
        "wall_s": wall,
        "train_s": record["time/train_s"],
        "step_s": _median_after_warmup(record.get("train/step_times") or []),
        "step_cpu_s": _median_after_warmup(record.get("train/step_cpu_times") or []),
        "steps": record.get("train/steps"),
        "outside_share": 1 - inside / wall,
        "phases": {k: v for k, v in record.items() if k.startswith("time/")},
        "load": _load(),
    }


def run_plain(method: str, prep: Path, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "bench.studies.overhead",
        "_plain",
        str(prep / f"{method}.json"),
        str(folder / "trainer"),
        str(folder / "result.json"),
    ]
    wall = _run(cmd, folder / "process.log")
    result = json.loads((folder / "result.json").read_text())
    return {
        "wall_s": wall,
        "train_s": result["train_s"],
        "step_s": _median_after_warmup(result["step_times"]),
        "step_cpu_s": _median_after_warmup(result["step_cpu_times"]),
        "steps": len(result["step_times"]),
        "load": _load(),
    }


def profile_pair(method: str, steps: int, extra: list[str], out: Path) -> dict:
    """One more run per side under cProfile (untimed: profiling slows both), and `added_work` of the two."""
    import pstats

    stats = {}
    for side in ("harness", "plain"):
        folder = out / "profile" / side / method
        path = out / "profile" / f"{method}-{side}.pstats"
        os.environ[PROFILE_ENV] = str(path)
        try:
            if side == "harness":
                run_harness(method, steps, extra, folder)
            else:
                run_plain(method, out / "prep", folder)
        finally:
            del os.environ[PROFILE_ENV]
        stats[side] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]  # its table: not in typeshed
    return added_work(stats["harness"], stats["plain"], steps)


def run_sweep(methods: list[str], steps: int, extra: list[str], folder: Path) -> dict:
    """One real sweep (a process per run, the report at the end): the share outside train + eval.

    It keeps the user's defaults beyond the run length (isolate, logger): what a sweep costs as run.
    """
    overrides = [
        "-m",
        f"method={','.join(methods)}",
        "debug=smoke",
        "eval=none",
        "force=true",
        f"train.args.max_steps={steps}",
        f"hydra.sweep.dir={folder}",
        *extra,
    ]
    folder.mkdir(parents=True, exist_ok=True)
    wall = _run([sys.executable, "-m", "bench", *overrides], folder / "process.log")
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*/metrics.json"))]
    inside = sum((r.get("time/train_s") or 0) + (r.get("time/eval_s") or 0) for r in records)
    return {"wall_s": wall, "runs": len(records), "inside_s": inside, "outside_share": 1 - inside / wall}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(raw: dict[str, dict[str, list[dict]]]) -> list[dict]:
    """Per method: medians over repeats of each side's figures, and the harness/TRL ratios.

    On a shared machine whole runs are slow or fast together (identical runs here differ by up to
    ±15%, every step alike), so besides the ratio of medians the table gives the ratio of each
    side's fastest run (`best`: as `timeit` argues, the least disturbed run is the best estimate of
    the code's own cost when the disturbance comes from outside) and the range of the per-repeat
    ratios (repeat i's harness run against repeat i's TRL run, back to back): when that range spans
    1, the two sides are not told apart by this many repeats.
    """
    rows = []
    for method, sides in raw.items():
        row: dict = {"method": method, "repeats": len(sides["harness"])}
        for side, prefix in (("harness", "harness"), ("plain", "trl")):
            for key in ("steps", "step_s", "step_cpu_s", "train_s", "wall_s", "load", "outside_share"):
                values = [r[key] for r in sides[side] if r.get(key) is not None]
                row[f"{prefix}_{key}"] = statistics.median(values) if values else None
            steps = [r["step_s"] for r in sides[side] if r.get("step_s") is not None]
            row[f"{prefix}_best_step_s"] = min(steps) if steps else None
        for key in ("step_s", "step_cpu_s", "train_s", "wall_s", "best_step_s"):
            row[f"{key}_ratio"] = _ratio(row[f"harness_{key}"], row[f"trl_{key}"])
        back_to_back = zip(sides["harness"], sides["plain"], strict=True)
        pairs = [r for h, p in back_to_back if (r := _ratio(h.get("step_s"), p.get("step_s"))) is not None]
        row["step_ratio_low"], row["step_ratio_high"] = (min(pairs), max(pairs)) if pairs else (None, None)
        rows.append(row)
    return rows


# (header, row key, format) of the printed table
COLUMNS = (
    ("method", "method", "s"),
    ("steps", "harness_steps", ".0f"),
    ("step s harness", "harness_step_s", ".3f"),
    ("step s TRL", "trl_step_s", ".3f"),
    ("**step ratio**", "step_s_ratio", ".3f"),
    ("per-repeat low", "step_ratio_low", ".3f"),
    ("per-repeat high", "step_ratio_high", ".3f"),
    ("best-run step ratio", "best_step_s_ratio", ".3f"),
    ("CPU step ratio", "step_cpu_s_ratio", ".3f"),
    ("train s ratio", "train_s_ratio", ".3f"),
    ("run s harness", "harness_wall_s", ".1f"),
    ("run s TRL", "trl_wall_s", ".1f"),
    ("**run ratio**", "wall_s_ratio", ".3f"),
    ("outside train+eval", "harness_outside_share", ".1%"),
    ("added ms/step", "added_ms_per_step", ".1f"),
    ("added share", "added_share", ".2%"),
    ("same-work speed", "same_work_speed_ratio", ".3f"),
    ("load", "harness_load", ".1f"),
)


def markdown(rows: list[dict], sweep: dict | None, command: str) -> str:
    """The table (ratios are harness / plain TRL; medians over repeats), the sweep line, the command."""
    lines = ["| " + " | ".join(h for h, _, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = ["–" if r.get(key) is None else format(r[key], spec) for _, key, spec in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    cores = os.cpu_count()
    text += (
        "\n\nStep times: median over steps 2.., wall (CPU: all threads of the process); each side's "
        "figure is the median over repeats, the best-run ratio compares each side's fastest run, and "
        "the per-repeat low/high are the extremes of the back-to-back pairs' ratios. Run: the whole "
        f"process, start to exit. Load: 1-minute load average after the harness run ({cores} cores)."
    )
    if any("added_ms_per_step" in r for r in rows):
        text += (
            "\n\nProfiled (`--profile`, one more run per side under cProfile): the work the harness adds "
            "inside the training call (its calls beyond the plain script's, at their mean time per call), "
            "per step and as a share of the plain run's profiled time; same-work speed is the harness/plain "
            "time ratio of the functions both call equally often: the machine's drift, not the harness."
        )
    if sweep:
        text += (
            f"\n\nOne sweep over {sweep['runs']} runs (isolate=true, report included): "
            f"{sweep['wall_s']:.0f} s, {sweep['outside_share']:.1%} of it outside training and evaluation."
        )
    return f"{text}\n\nCommand: `{command}`\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_harness":
        harness_child(argv[1:])
        return 0
    if argv and argv[0] == "_plain":
        plain_child(*argv[1:4])
        return 0
    if argv and argv[0] == "_prepare":
        n_steps, prep_out, names, *extra = argv[1:]
        prepare(names.split(","), int(n_steps), extra, Path(prep_out))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.studies.overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated, of {', '.join(PLAIN)}")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run (the first is warm-up)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side and method, order alternating")
    parser.add_argument("--out", type=Path, default=None, help="folder for logs and the table")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a harness override")
    parser.add_argument("--sweep", action="store_true", help="also time one real sweep over the methods")
    parser.add_argument(
        "--fast", action="store_true", help="also a row per online method with merged rollouts (train.rollout=merged)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one run per side: the work the harness adds per step",
    )
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(PLAIN))
    if unknown:
        parser.error(f"no plain TRL script for {unknown}; choose from {', '.join(PLAIN)}")
    out = args.out or Path("results/overhead") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.studies.overhead " + " ".join(argv)
    started = time.perf_counter()

    print(f"preparing {', '.join(methods)} (untimed) ...", flush=True)
    prep_args = ["_prepare", str(args.steps), str(out), ",".join(methods), *args.set]
    _run([sys.executable, "-m", "bench.studies.overhead", *prep_args], out / "prepare.log")
    # A row per method, and with --fast one more per online method: the harness with merged rollouts
    # (train.rollout=merged) against the same plain TRL runs, which always take TRL's own path.
    rows_to_run: list[tuple[str, str, list[str]]] = [(m, m, []) for m in methods]
    if args.fast:
        rows_to_run += [(f"{m} rollout=merged", m, ["train.rollout=merged"]) for m in methods if m in ONLINE]
    raw: dict[str, dict[str, list[dict]]] = {label: {"harness": [], "plain": []} for label, _, _ in rows_to_run}
    for i in range(args.repeats):
        plain_runs: dict[str, dict] = {}
        for label, method, extra in rows_to_run:
            order = ("harness", "plain") if i % 2 == 0 else ("plain", "harness")
            for side in order:
                if side == "harness":
                    folder = out / side / f"{label.replace(' ', '_').replace('=', '-')}-{i}"
                    result = run_harness(method, args.steps, [*args.set, *extra], folder)
                elif method in plain_runs:  # a fast row shares its method's plain run of this repeat
                    raw[label][side].append(plain_runs[method])
                    continue
                else:
                    result = plain_runs[method] = run_plain(method, out / "prep", out / side / f"{method}-{i}")
                raw[label][side].append(result)
                step, cpu = (round(result[k] or 0, 3) for k in ("step_s", "step_cpu_s"))
                wall, load = result["wall_s"], result["load"]
                print(
                    f"  {label} #{i} {side:7s}: step {step} s (CPU {cpu}), run {wall:.1f} s, load {load}",
                    flush=True,
                )
    sweep = run_sweep(methods, args.steps, args.set, out / "sweep") if args.sweep else None
    rows = summarize(raw)
    if args.profile:
        for row in (r for r in rows if r["method"] in methods):  # the fast rows are not profiled
            row.update(profile_pair(row["method"], args.steps, args.set, out))
            print(
                f"  {row['method']} profiled: harness adds {row['added_ms_per_step']:.1f} ms per step",
                flush=True,
            )
    table = markdown(rows, sweep, command)
    total = time.perf_counter() - started
    (out / "overhead.md").write_text(table)
    (out / "overhead.json").write_text(
        json.dumps(
            {**provenance(), "command": command, "rows": rows, "sweep": sweep, "raw": raw, "total_s": total}, indent=1
        )
    )
    print()
    print(table)
    print(f"written to {out}/overhead.md and overhead.json ({total:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
