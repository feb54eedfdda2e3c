"""Tasks, rewards and the offline data builder, on hand-made samples (no model)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from bench import BenchError
from bench.recipe.data import assemble, interleave
from bench.tasks import last_number, load_task
from bench.tasks.rewards import correctness, format_reward


def test_arithmetic_is_seeded_and_splits_are_disjoint(compose):
    cfg = compose().task
    a, b = load_task(cfg), load_task(cfg)
    assert a.train == b.train and a.test == b.test
    assert len(a.train) == cfg.num_train and len(a.test) == cfg.num_test
    assert not {e.prompt for e in a.train} & {e.prompt for e in a.test}
    first = a.train[0]
    x, y = (int(t) for t in first.prompt.split("What is ")[1].split("?")[0].split(" + "))
    assert first.fields == {"answer": str(x + y)}
    other = load_task(OmegaConf.merge(cfg, {"seed": cfg.seed + 1}))
    assert other.train != a.train


@pytest.mark.parametrize(
    "text, number",
    [
        ("so 12 + 7 = 19.", "19"),
        ("It is 1,000", "1000"),
        ("-3", "-3"),
        ("2.50 dollars", "2.5"),
        ("no digits", None),
    ],
)
def test_last_number(text, number):
    assert last_number(text) == number


def test_rewards_score_the_last_number_and_the_format():
    completions = [[{"role": "assistant", "content": "12 + 7 = 19"}], "I think 18, no, 20", "19 is it"]
    assert correctness(completions, answer=["19", "19", "19"]) == [1.0, 0.0, 1.0]
    assert format_reward(completions) == [1.0, 1.0, 0.0]


def test_task_score_weights_rewards(compose):
    task = load_task(compose("task.reward_weights.format=0.5").task)
    rows = [{"answer": "19"}] * 3
    assert task.score(["= 19", "19 it is", "20"], rows) == [1.5, 1.0, 0.5]


def test_assemble_pairs_ties_and_gold_fallback(compose):
    task = load_task(compose().task)
    ex = task.train[:3]
    right = [f"It is {e.fields['answer']}" for e in ex]
    samples = [
        [right[0], "It is 0"],  # mixed: a real pair
        ["It is 0", "It is 1"],  # all wrong: tie -> gold fallback
        [right[2], right[2]],  # all right: tie with nothing to reject -> dropped
    ]
    data_cfg = compose().data
    built = assemble(task, ex, samples, data_cfg, seed=0)
    s = built.stats
    assert (s.prompts, s.samples, s.pairs, s.ties, s.gold_fallbacks, s.dropped) == (3, 6, 2, 2, 1, 1)
    assert built.pairs[0]["chosen"][0]["content"] == right[0]
    assert built.pairs[1]["chosen"][0]["content"] == ex[1].gold
    assert s.kto_desirable == 2 and s.kto_undesirable == 2
    assert built.fingerprint == assemble(task, ex, samples, data_cfg, seed=0).fingerprint


def test_interleave_puts_both_labels_in_every_batch():
    good = [{"id": f"g{i}", "label": True} for i in range(4)]
    bad = [{"id": f"b{i}", "label": False} for i in range(12)]
    rows = interleave(good, bad, seed=0)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in good + bad)
    for start in range(0, len(rows), 4):  # batch size 4, one desirable per 4 rows
        assert {r["label"] for r in rows[start : start + 4]} == {True, False}


def test_gsm8k_reads_local_files(compose, gsm8k_dir):
    task = load_task(compose("task=gsm8k", f"task.data_dir={gsm8k_dir}").task)
    assert len(task.train) > 7000 and len(task.test) > 1000
    assert task.test[0].fields == {"answer": "18"}  # Janet's ducks
    assert "<<" not in task.test[0].gold and task.test[0].gold.endswith("The answer is 18")


def test_gsm8k_broken_row_names_file_and_line(compose, tmp_path):
    rows = [{"question": "q", "answer": "x\n#### 4"}, {"question": "q2", "answer": "no final answer"}]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(BenchError, match=r"train\.jsonl:2.*#### <number>"):
        load_task(compose("task=gsm8k", f"task.data_dir={tmp_path}").task)


def test_unknown_reward_weight_names_the_task_rewards(compose):
    with pytest.raises(BenchError, match=r"does not offer; its rewards are \['correctness', 'format'\]"):
        load_task(compose("+task.reward_weights.brevity=1.0").task)


def test_reverse_task_rewards_read_the_word_field(compose):
    task = load_task(compose("task=reverse").task)
    ex = task.train[0]
    word = ex.fields["word"]
    assert ex.gold == word[::-1] and word in ex.prompt
    assert not {e.fields["word"] for e in task.train} & {e.fields["word"] for e in task.test}
    replies = [f"The reversed word is {word[::-1]}", word, "zzzz"]
    assert task.rewards["reversed"](replies, word=[word] * 3) == [1.0, 0.0, 0.0]
    # The generic lm-eval task scores each held-out reply with the same rewards.
    metrics = task.item_metrics(word[::-1], ex.fields)
    assert metrics["reversed"] == 1.0 and metrics["letters"] == 1.0 and metrics["score"] == 1.5


def test_the_docs_task_example_is_the_shipped_task():
    """The docs' worked example for a new task (docs/adding-a-task.md) is these two files, verbatim."""
    import re
    import textwrap

    from tests.conftest import REPO

    section = (REPO / "docs" / "adding-a-task.md").read_text()
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", section, flags=re.S)
    shipped = [(REPO / "bench/tasks/reverse.py").read_text(), (REPO / "conf/task/reverse.yaml").read_text()]
    assert [textwrap.dedent(b).strip() for b in blocks[:2]] == [s.strip() for s in shipped]


def test_tie_share_reads_the_first_k_samples_of_each_group():
    from bench.studies.fallbacks import tie_share

    groups = [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]]
    assert tie_share(groups, 2) == 0.75  # only the last group differs within its first two
    assert tie_share(groups, 4) == 0.5  # the first group gains its contrast at the third sample


def test_lm_eval_indexes_its_own_tasks_only_when_a_run_names_one(tmp_path):
    # Indexing lm-eval's task YAMLs costs seconds per scoring: our generated tasks must resolve without it,
    # and a task of lm-eval's own (gsm8k) must still be found.
    from bench.recipe.evaluate import _task_manager

    (tmp_path / "rftb_probe.yaml").write_text("task: rftb_probe\ndataset_path: json\noutput_type: generate_until\n")
    ours = _task_manager(["rftb_probe"], tmp_path)
    assert "rftb_probe" in ours.all_tasks and "gsm8k" not in ours.all_tasks
    assert _task_manager([object()], None).all_tasks == []  # Task objects need no index
    both = _task_manager(["rftb_probe", "gsm8k"], tmp_path)
    assert {"rftb_probe", "gsm8k"} <= set(both.all_tasks)
