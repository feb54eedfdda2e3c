"""A newcomer's mistakes fail in seconds with one paragraph that names the fix: a typo in a config group
(did-you-mean instead of Hydra's list and trace), a reward function that breaks TRL's calling convention
or names a field the rows lack (caught at validation by calling it once), and a data file that is empty,
too short for its split or missing a field (named, with what is wrong)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from bench import BenchError
from bench.config.compose import choices, groups, unknown_choice
from bench.run.runner import run
from bench.tasks import TASKS, Example, Task, load_task
from bench.tasks.base import TaskEntry
from bench.tasks.contract import check
from bench.tasks.reverse import letters_in_place, reversed_exactly
from bench.tasks.rewards import completion_text
from tests.conftest import REPO

FAST = 15  # seconds: the bound for a failing command, start to message


# ---- a typo in a config group ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, line",
    [
        (["method=grop"], "method=grop: conf/method/ has no grop.yaml; did you mean grpo"),
        (
            ["task=arithmetc", "model=tiny"],
            "task=arithmetc: conf/task/ has no arithmetc.yaml; did you mean arithmetic?",
        ),
        (["-m", "method=grpo,dpoo", "seed=0,1"], "method=dpoo: conf/method/ has no dpoo.yaml; did you mean dpo"),
    ],
)
def test_a_typo_in_a_config_group_is_one_did_you_mean_line(args, line):
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - started < FAST
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert message.startswith(f"bench: {line}") and "`python -m bench --list` lists every choice." in message
    assert "\n" not in message  # one line: not Hydra's list, search path and HYDRA_FULL_ERROR hint
    assert "HYDRA_FULL_ERROR" not in done.stderr and "Traceback" not in done.stderr


def test_every_config_group_names_its_nearest_choices():
    assert {"method", "task", "model", "peft", "quant", "experiment", "eval", "debug", "tune"} <= set(groups())
    for group in groups():
        first = choices(group)[0]
        line = unknown_choice([f"{group}={first}x"])
        assert line is not None and line.startswith(f"{group}={first}x: conf/{group}/ has no {first}x.yaml"), line
        assert first in line.split(";")[1]
    assert "its choices are default, none." in unknown_choice(["eval=zzz"])  # nothing close: the whole list


@pytest.mark.parametrize(
    "overrides",
    [
        ["method=grpo,dpo", "-m", "peft.r=8,16"],
        ["method=glob(*)", "+experiment=claims/lora_memory", "debug=null", "~logger"],
        ["hydra/launcher=nowhere", "nosuchkey=1", "--cfg", "job", "method=choice(grpo,sft)"],
    ],
)
def test_options_that_exist_and_other_mistakes_are_left_to_hydra(overrides):
    assert unknown_choice(overrides) is None


def test_a_config_folder_added_on_the_command_line_is_searched_too(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nseed: 3\n")
    assert unknown_choice(["experiment=mine", f"hydra.searchpath=[file://{tmp_path}]"]) is None
    assert unknown_choice(["experiment=mine", "--config-dir", str(tmp_path)]) is None
    assert "did you mean mine?" in unknown_choice(["experiment=mien", f"hydra.searchpath=[file://{tmp_path}]"])
    assert unknown_choice(["experiment=mine", "hydra.searchpath=[pkg://elsewhere]"]) is None  # Hydra's to say


def test_compose_and_the_estimate_say_did_you_mean(compose, capsys):
    from bench.estimate.__main__ import main as estimate

    with pytest.raises(BenchError, match=r"^peft=lorra: conf/peft/ has no lorra.yaml; did you mean lora"):
        compose("peft=lorra")
    assert estimate(["model=qwen3-06b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench.estimate: model=qwen3-06b: conf/model/ has no qwen3-06b.yaml; did you mean qwen3-0.6b")


# ---- the reward contract, checked at validation ------------------------------------------------------------------


def reversed_per_item(completion, word):
    """A newcomer's reward: one completion at a time, and no **kwargs."""
    return float(completion.strip().lower() == word[::-1])


def reversed_misspelt(completions, wrd, **kwargs):
    """A reward that names a field the rows lack (theirs is `word`)."""
    return [float(c == w[::-1]) for c, w in zip(completions, wrd, strict=True)]


@pytest.fixture
def reverse_with(monkeypatch):
    """Registers task `mine`: task=reverse with the given reward in place of its `reversed`."""

    def register(reward):
        def build(cfg):
            task = TASKS.get("reverse").build(cfg)
            task.name = "mine"
            task.rewards = {**task.rewards, "reversed": reward}
            return task

        TASKS.names()  # discovered first, so the entry below is not overwritten
        monkeypatch.setitem(TASKS._entries, "mine", TaskEntry("mine", build))

    return register


@pytest.mark.parametrize(
    "reward, expected",
    [
        (
            reversed_per_item,
            [
                r"cannot be called as TRL calls it: reversed_per_item\(\) got an unexpected keyword argument 'prompts'",
                r"`def reversed_per_item\(completions, word, \*\*kwargs\) -> list\[float\]`",
            ],
        ),
        (
            reversed_misspelt,
            [
                r"reversed_misspelt\(\) missing 1 required positional argument: 'wrd'",
                r"`wrd` is no field of this task's rows \(did you mean `word`\?\)",
                r"`def reversed_misspelt\(completions, \*\*kwargs\) -> list\[float\]`",
            ],
        ),
    ],
)
def test_a_reward_function_that_breaks_the_contract_fails_at_validation(
    compose, tmp_path, reverse_with, reward, expected
):
    reverse_with(reward)
    cfg = compose("task=reverse", "model=tiny", "debug=smoke", "isolate=false", "logger=none", output_dir=tmp_path)
    cfg.task.name = "mine"
    started = time.perf_counter()
    record = run(cfg)
    assert time.perf_counter() - started < FAST
    assert record["status"] == "failed" and "model/path" not in record  # no model was loaded
    error = record["error"]
    assert error.startswith(f"task=mine: reward 'reversed' ({reward.__qualname__} in tests/test_errors.py:")
    for pattern in expected:
        assert __import__("re").search(pattern, error), (pattern, error)
    assert "this task's rows have: word" in error and "docs/adding-a-task.md" in error
    assert "TRL also passes prompts, completion_ids, trainer_state, log_extra, log_metric" in error
    assert "\n" not in error  # one paragraph


def _task(**change) -> Task:
    example = Example(prompt="Reverse 'abc'.", fields={"word": "abc"}, gold="cba")
    task = Task(
        name="probe",
        train=[example],
        test=[example],
        rewards={"reversed": reversed_exactly, "letters": letters_in_place},
        reward_weights={"reversed": 1.0},
        eval_metric="reversed",
    )
    for key, value in change.items():
        setattr(task, key, value)
    return task


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"rewards": {"reversed": lambda completions, **kw: 1.0}},
            r"returned 1\.0; a reward returns a list of one number per completion, here 3",
        ),
        (
            {"rewards": {"reversed": lambda completions, **kw: [None] * len(completions)}},
            r"returned \[None, None, None\]",
        ),
        (
            {
                "rewards": {
                    "reversed": lambda completions, word, **kw: [
                        c.strip() == w for c, w in zip(completions, word, strict=True)
                    ]
                }
            },
            r"called as TRL calls it, raised AttributeError: 'list' object has no attribute 'strip'.*completion_text",
        ),
        (
            {
                "rewards": {
                    "reversed": lambda completions, word, **kw: [
                        completion_text(c).split()[-1] == w for c, w in zip(completions, word, strict=True)
                    ]
                }
            },
            r"raised IndexError: list index out of range, .* the empty one included",
        ),
        (
            {"train": [Example(prompt="p", fields={"prompt": "x"}, gold="g")]},
            r"fields \['prompt'\] clash with the columns",
        ),
        (
            {"train": [Example(prompt="p", fields={"word": "abc"}, gold=None)]},
            r"gold completion is NoneType, not a string",
        ),
        (
            {"eval_metric": "accuracy"},
            r"eval_metric='accuracy' is none of the per-item metrics .*letters, reversed, score",
        ),
        ({"train": []}, r"task=probe has no training rows"),
    ],
)
def test_the_contract_names_what_breaks_it(change, message):
    with pytest.raises(BenchError, match=message):
        check(_task(**change))


def test_every_shipped_task_keeps_its_contract(compose, gsm8k_dir):
    for name in TASKS.names():
        if name == "reasoning_gym":
            pytest.importorskip("reasoning_gym")
        overrides = [f"task={name}"] + ([f"task.data_dir={gsm8k_dir}"] if name == "gsm8k" else [])
        check(load_task(compose(*overrides).task))


# ---- data files named, with what is wrong -------------------------------------------------------------------------

GOOD = {"question": "What is 1 + 1?", "answer": "1 plus 1\n#### 2"}


def _gsm8k(folder, train: list, test: list | None = None) -> None:
    for split, rows in (("train", train), ("test", test if test is not None else [GOOD] * 3)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize(
    "train, test, message",
    [
        ([], None, r"{dir}/train\.jsonl is empty: it holds no rows"),
        ([GOOD] * 4, [], r"{dir}/test\.jsonl is empty"),
        ([GOOD] * 3, None, r"{dir}/train\.jsonl has 3 rows, and task\.num_validation=3 holds that many out .*below 3"),
        (
            [GOOD, {"question": "q"}],
            None,
            r"{dir}/train\.jsonl:2: the row has no 'answer' field; .* it has \['question'\]",
        ),
        ([GOOD, ["q", "a"]], None, r"{dir}/train\.jsonl:2: a GSM8K row is a JSON object"),
    ],
)
def test_a_bad_gsm8k_file_is_named_with_what_is_wrong(compose, tmp_path, train, test, message):
    from bench.config.validation import validate
    from bench.system.runtime import resolve_runtime

    _gsm8k(tmp_path, train, test)
    cfg = compose(
        "task=gsm8k", f"task.data_dir={tmp_path}", "task.num_validation=3", "model=tiny", output_dir=tmp_path / "run"
    )
    with pytest.raises(BenchError, match=message.format(dir=tmp_path)):
        validate(cfg, resolve_runtime("cpu", "auto"))
