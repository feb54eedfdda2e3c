"""One prompt budget for every method (train.max_prompt_length): long prompts cut the same way for an
online and an offline method, or refused by name before any model loads; a trainer that drops rows is
named. On the tiny model, with a GSM8K-format file whose every fifth question is far over the budget."""

from __future__ import annotations

import json
import time

import pytest

from tests.sweeps import runs, sweep

PREAMBLE = "Some long preamble about the farm and its history. " * 150  # ~1,500 tokens: ~3x max_length


@pytest.fixture(scope="module")
def long_prompts(gsm8k_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("long-gsm8k")
    rows = [json.loads(line) for line in (gsm8k_dir / "train.jsonl").read_text().splitlines()[:40]]
    for i in range(0, len(rows), 5):
        rows[i]["question"] = PREAMBLE + rows[i]["question"]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = (gsm8k_dir / "test.jsonl").read_text().splitlines()[:20]
    (folder / "test.jsonl").write_text("".join(line + "\n" for line in test))
    return [
        "model=tiny",
        "task=gsm8k",
        f"task.data_dir={folder}",
        "task.num_validation=4",
        "train.num_prompts=8",
        "eval=none",
        "logger=none",
        "isolate=false",
    ]


@pytest.mark.slow
def test_an_online_and_an_offline_method_train_on_identically_cut_prompts(long_prompts, tmp_path):
    done = sweep(tmp_path, "method=grpo,dpo", *long_prompts)
    assert done.returncode == 0, done.stderr[-3000:]
    grpo, dpo = done.run("grpo"), done.run("dpo")
    assert grpo["data/truncated_prompts"] == dpo["data/truncated_prompts"] >= 1
    assert grpo["data/max_prompt_tokens"] > grpo["fair/max_prompt_length"] == 432
    assert "data/prompt_budget" not in grpo  # one key for the budget: fair/max_prompt_length
    assert grpo["data/prompts_fingerprint"] == dpo["data/prompts_fingerprint"]  # the same cut prompts
    assert grpo["data/trainer_rows"] == dpo["data/trainer_rows"] == 8  # and no trainer dropped one
    assert grpo["fair/max_prompt_length"] == dpo["fair/max_prompt_length"] == 432
    assert "**Prompt budget:**" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_refused_over_the_budget_alike_before_any_model_loads(long_prompts, tmp_path, monkeypatch):
    from bench.recipe import train

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(train, "load_base", no_model)
    started = time.perf_counter()
    done = runs(tmp_path, ["grpo", "dpo"], *long_prompts, "train.prompt_overflow=refuse")
    errors = {r["error"] for r in done.runs.values()}
    assert {r["status"] for r in done.runs.values()} == {"failed"} and len(errors) == 1
    assert "longer than train.max_prompt_length=432 tokens" in errors.pop()
    assert time.perf_counter() - started < 60


@pytest.mark.slow
def test_a_trainer_that_drops_rows_is_named_and_one_that_drops_them_all_stops_the_run(long_prompts, tmp_path):
    """A method.args.max_length below the budget's: DPO's own preprocessing drops the rows that no longer
    fit. Some dropped: said and recorded; all dropped: a clear error, not a sampler's num_samples=0."""
    some = runs(tmp_path / "some", ["dpo"], *long_prompts, "method.args.max_length=120").run("dpo")
    assert some["data/dropped_by_trainer"] == 8 - some["data/trainer_rows"] > 0
    every = runs(tmp_path / "all", ["dpo"], *long_prompts, "method.args.max_length=40").runs["dpo"]
    assert every["status"] == "failed" and "DPOTrainer dropped all 8 training rows" in every["error"]
    assert "method.args.max_length" in every["error"]


def test_a_cut_prompt_keeps_its_end_within_the_budget(compose):
    from bench.recipe.data import fit_prompts
    from bench.recipe.models import load_tokenizer, resolve_model_path
    from bench.tasks import Example, load_task

    cfg = compose("model=tiny")
    tokenizer = load_tokenizer(resolve_model_path(cfg.model.name_or_path, cfg.cache_dir))
    task = load_task(cfg.task)
    short, long = Example("What is 2 + 3?", {}, "5"), Example(PREAMBLE + "What is 7 + 8?", {}, "15")
    (kept, cut), fit = fit_prompts(task, [short, long], tokenizer, 64, "truncate")
    assert kept == short and cut.prompt.endswith("What is 7 + 8?") and len(cut.prompt) < len(long.prompt)
    ids = tokenizer.apply_chat_template(
        task.messages(cut), add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert len(ids) <= 64 and fit.truncated == 1 and fit.longest > 64 and fit.tokens_cut > 0
