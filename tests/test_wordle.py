"""Wordle game logic: feedback, candidate sets, seeded states, rewards and the full-game loop (no model)."""

from __future__ import annotations

import json
import random
import re
import sys

import pytest

from bench.tasks import wordle_game as w


def reply(word: str, think: str = "Keep the greens, try new letters.") -> str:
    return f"<think>{think}</think>\n<guess>{word}</guess>"


def board(secret: str, *guesses: str) -> list[list[str]]:
    return [[g, w.feedback(g, secret)] for g in guesses]


# --- word lists ------------------------------------------------------------------------------------------


def test_word_lists_are_upper_case_five_letters_and_nested():
    answers, allowed = w.answers(), w.allowed()
    assert len(answers) == w.NUM_ANSWERS and len(allowed) == w.NUM_ALLOWED
    assert len(set(allowed)) == len(allowed)
    assert set(answers) <= set(allowed)
    assert all(re.fullmatch(r"[A-Z]{5}", x) for x in allowed)
    assert {"ABOUT", "HOUSE", "CRANE", "SLATE"} <= set(answers)
    # Names, brands and web tokens are valid guesses but never secrets.
    assert {"HTTPS", "GUCCI", "DAVID"} <= set(allowed)
    assert not {"HTTPS", "GUCCI", "DAVID"} & set(answers)
    assert not w._NOT_SECRETS & set(answers)
    assert w.is_allowed("crane") and not w.is_allowed("CRANX") and not w.is_allowed(None)


# --- feedback --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "guess, secret, marks",
    [
        # Greens B(2) E(3); ABBEY's unmatched letters are A, B, Y: B(0) and A(1) take the B and the A.
        ("BABES", "ABBEY", "YYGG-"),
        # No greens; SPEED's two Es are both unmatched: E(0) and E(4) are yellow, S(3) takes the S.
        ("ERASE", "SPEED", "Y--YY"),
        # Three Es against two: the first two are yellow, the third has no copy left.
        ("EERIE", "SPEED", "YY---"),
        # LLAMA has two Ls, both unmatched: both Ls of HELLO are yellow.
        ("HELLO", "LLAMA", "--YY-"),
        # The other way round: two Ls yellow; HELLO has no A or M.
        ("LLAMA", "HELLO", "YY---"),
        # ABIDE has one E: the first E of SPEED is yellow, the second gets nothing.
        ("SPEED", "ABIDE", "--Y-Y"),
        # Greens first: HOUSE's only E is the green at 4, so the E at 0 is '-' (one pass would say Y).
        ("EAGLE", "HOUSE", "----G"),
        ("CRANE", "CRANE", "GGGGG"),
        ("crane", "shore", "-Y--G"),
    ],
)
def test_feedback_with_repeated_letters(guess, secret, marks):
    assert w.feedback(guess, secret) == marks


def test_vectorised_patterns_match_feedback():
    rng = random.Random(0)
    secrets = rng.sample(w.answers(), 200)
    encoded = w._encode(secrets)
    for guess in [*rng.sample(w.allowed(), 40), "EERIE", "LLAMA", "MAMMA", "SPEED"]:
        codes = w._patterns(guess, encoded)
        assert [w._code(w.feedback(guess, s)) for s in secrets] == codes.tolist()


def test_candidates_are_exactly_the_consistent_words_and_narrow():
    secret = "HOUSE"
    sizes = []
    for n in range(4):
        history = board(secret, *["CRANE", "SPLIT", "MOUTH", "HORSE"][:n])
        left = w.candidates(history)
        assert left == [x for x in w.answers() if w.consistent(x, history)]
        assert secret in left
        sizes.append(len(left))
    assert sizes[0] == len(w.answers()) and sizes == sorted(sizes, reverse=True) and sizes[-1] <= 5
    assert w.candidates(board("HOUSE", "CRANE"), pool=["HOUSE", "CRANE", "THOSE"]) == ["HOUSE", "THOSE"]


# --- seeded game states ----------------------------------------------------------------------------------


def test_split_secrets_is_seeded_and_disjoint():
    train, test, val = w.split_secrets(0, 600, 200, 150)
    assert (len(set(train)), len(set(test)), len(set(val))) == (600, 200, 150)
    assert not set(train) & set(test) and not set(val) & (set(train) | set(test))
    assert set(train) | set(test) | set(val) <= set(w.answers())
    assert w.split_secrets(0, 600, 200, 150) == (train, test, val)
    assert w.split_secrets(0, 600, 200)[:2] == (train, test)  # validation changed neither of the others
    assert w.split_secrets(1, 600, 200, 150) != (train, test, val)
    with pytest.raises(ValueError):
        w.split_secrets(0, len(w.answers()), 1)


def test_game_states_are_seeded_plausible_and_varied():
    secrets = w.split_secrets(0, 200, 0)[0]
    states = w.make_game_states(secrets, random.Random(7))
    assert states == w.make_game_states(secrets, random.Random(7))
    assert states != w.make_game_states(secrets, random.Random(8))
    assert [s["secret"] for s in states] == secrets
    sizes = []
    for state in states:
        history = state["history"]
        assert len(history) <= 4
        assert all(g != state["secret"] for g, _ in history)
        assert all(fb == w.feedback(g, state["secret"]) for g, fb in history)
        # Each earlier guess was itself a possible secret at its turn (hard-mode play).
        assert all(w.consistent(g, history[:i]) for i, (g, _) in enumerate(history))
        left = w.candidates(history)
        assert state["secret"] in left and len(left) >= 2
        sizes.append(len(left))
    assert {len(s["history"]) for s in states} == {0, 1, 2, 3, 4}
    assert max(sizes) == len(w.answers()) and min(sizes) <= 3
    assert any(50 <= n <= 1000 for n in sizes) and any(4 <= n < 50 for n in sizes)


# --- prompt and parsing ----------------------------------------------------------------------------------


def test_prompt_shows_legend_board_and_reply_form():
    empty = w.prompt_text([])
    assert "No guesses yet." in empty and "<guess>WORD</guess>" in empty and "<think>" in empty
    text = w.prompt_text([["CRANE", "-Y--G"], ["shore", "GGGGG"]])
    assert "1. CRANE: -Y--G\n2. SHORE: GGGGG" in text
    assert "G = right letter, right place" in text and "Y = in the word, wrong place" in text
    assert len(text) < 400  # a 135M model reads it


@pytest.mark.parametrize(
    "text, word",
    [
        ("<think>hm</think><guess>crane</guess>", "CRANE"),
        ("<guess>SLATE</guess> no wait <guess> 'house' </guess>", "HOUSE"),
        ("<GUESS>Shore</GUESS>", "SHORE"),
        ("<guess>toolong</guess>", "TOOLONG"),
        ("<guess> </guess>", None),
        ("my guess is CRANE", None),
    ],
)
def test_parse_guess_takes_the_last_tag(text, word):
    assert w.parse_guess(text) == word


# --- rewards ---------------------------------------------------------------------------------------------


def test_format_reward_right_form_against_broken_forms():
    completions = [
        reply("CRANE"),  # exact form, allowed word
        [{"role": "assistant", "content": reply("crane")}],  # chat form, lower case is fine
        "<guess>CRANE</guess>",  # no think block
        reply("CRANX"),  # five letters, not a word
        reply("CRANE") + " Good luck!",  # text after the guess
        "<think>x</think><guess>CRANES</guess>",  # six letters
        "I guess CRANE.",  # no tag
    ]
    assert w.format_reward(completions) == [1.0, 1.0, 0.7, 0.7, 0.7, 0.2, 0.0]


def test_feedback_reward_respected_against_ignored():
    history = board("SHORE", "CRANE")  # -Y--G: E fifth, R in the word but not second, no C, A, N
    assert history == [["CRANE", "-Y--G"]]
    completions = [reply("SHORE"), reply("SABRE"), reply("CRANE"), reply("CANAL"), "no guess"]
    scores = w.feedback_reward(completions, history=[history] * len(completions))
    # SHORE could be the secret: full credit, nothing broken.
    # SABRE keeps E and moves R (full credit) but uses the excluded A: 1 - 1/5.
    # CRANE repeats R in its yellow spot and reuses C, A, N: credit 1/2 (E only), 4 of 5 letters broken.
    # CANAL keeps nothing and uses C, A twice, N: 0 - 4/5.
    assert scores == pytest.approx([1.0, 0.8, 0.5 - 0.8, -0.8, -1.0])


def test_feedback_reward_absent_mark_allows_the_confirmed_copy():
    # EAGLE -> ----G: the '-' on the first E only says "no second E"; one E at the end is right.
    history = board("HOUSE", "EAGLE")
    assert w.feedback_score("HOUSE", history) == 1.0
    assert w.feedback_score("THOSE", history) == 1.0
    # EERIE keeps the green E but puts an E first again and has two Es too many: 2 positions broken.
    assert w.feedback_score("EERIE", history) == pytest.approx(1 - 2 / 5)


def test_feedback_reward_neutral_without_history_and_one_for_every_candidate():
    assert w.feedback_reward([reply("CRANE"), "nothing"], history=[[], []]) == [0.0, 0.0]
    rng = random.Random(3)
    for state in w.make_game_states(w.split_secrets(3, 30, 0)[0], rng):
        if state["history"]:
            for word in w.candidates(state["history"])[:20]:
                assert w.feedback_score(word, state["history"]) == 1.0
            for word in rng.sample(w.allowed(), 20):
                assert -1.0 <= w.feedback_score(word, state["history"]) <= 1.0


def test_info_gain_reward_high_against_low_information_guess():
    completions = [reply("RAISE"), reply("SLATE"), reply("FUZZY"), reply("JAZZY"), reply("QXZVJ"), "none"]
    scores = w.info_gain_reward(completions, history=[[]] * len(completions))
    assert min(scores[:2]) > 0.45 and max(scores[2:4]) < 0.25 and scores[4:] == [0.0, 0.0]
    assert all(0.0 <= s <= 1.0 for s in scores)
    # Repeating a guess tells nothing new.
    history = board("HOUSE", "CRANE")
    assert w.info_gain("CRANE", history) == 0.0 < w.info_gain("MOIST", history)


def test_info_gain_at_the_end_of_a_game():
    pool = ["HOUSE", "MOUSE"]
    assert w.info_gain("HOUSE", [], pool=pool) == 1.0  # two candidates, guessing one splits them
    assert w.info_gain("DOUSE", [], pool=pool) == 0.0  # same pattern for both
    one = board("HOUSE", "MOUSE")
    assert w.info_gain("HOUSE", one, pool=pool) == 1.0 and w.info_gain("CRANE", one, pool=pool) == 0.0


def test_solved_reward_and_registry():
    scores = w.solved_reward([reply("house"), reply("MOUSE"), "HOUSE"], secret=["HOUSE"] * 3)
    assert scores == [1.0, 0.0, 0.0]
    assert set(w.REWARDS) == {"format", "feedback", "info_gain", "solved"}
    assert len({f.__name__ for f in w.REWARDS.values()}) == 4
    # TRL passes every dataset column (and prompts) to every reward function.
    columns = {"secret": ["HOUSE"], "history": [board("HOUSE", "CRANE")], "prompts": ["p"]}
    for f in w.REWARDS.values():
        assert len(f([reply("HOUSE")], **columns)) == 1
    # A board stored as JSON (or missing) reads the same.
    as_json = {**columns, "history": [json.dumps(columns["history"][0])]}
    assert w.feedback_reward([reply("HOUSE")], **as_json) == w.feedback_reward([reply("HOUSE")], **columns)
    assert w.info_gain_reward([reply("RAISE")], history=[None]) == [pytest.approx(w.info_gain("RAISE", []))]


def test_turn_metrics():
    history = board("HOUSE", "CRANE")
    assert w.turn_metrics(reply("HOUSE"), "HOUSE", history) == {
        "valid_guess": 1.0,
        "consistent": 1.0,
        "info_gain": pytest.approx(w.info_gain("HOUSE", history)),
        "solved": 1.0,
    }
    assert w.turn_metrics(reply("CRANE"), "HOUSE", history)["consistent"] == 0.0
    assert w.turn_metrics("no tag", "HOUSE", history) == {
        "valid_guess": 0.0,
        "consistent": 0.0,
        "info_gain": 0.0,
        "solved": 0.0,
    }


# --- full games ------------------------------------------------------------------------------------------

_BOARD_LINE = re.compile(r"^\d+\. ([A-Z]{5}): ([GY-]{5})$", re.MULTILINE)


def solver(prompts: list[str]) -> list[str]:
    """A scripted player that reads the board from the prompt and plays the best of a few candidates."""
    replies = []
    for prompt in prompts:
        history = [list(m) for m in _BOARD_LINE.findall(prompt)]
        left = w.candidates(history)
        best = max(left[:40], key=lambda x: w.info_gain(x, history)) if history else "RAISE"
        replies.append(reply(best))
    return replies


def test_play_games_scripted_solver_wins_every_game():
    secrets = w.split_secrets(11, 0, 12)[1]
    calls = []

    def policy(prompts):
        calls.append(len(prompts))
        return solver(prompts)

    result = w.play_games(policy, secrets)
    assert result["games"] == result["wins"] == 12 and result["win_rate"] == 1.0
    assert result["invalid_guess_rate"] == 0.0
    assert 2.0 <= result["mean_guesses"] == result["mean_guesses_all"] <= 6.0
    assert calls[0] == 12 and calls == sorted(calls, reverse=True) and len(calls) <= 6  # batched per turn
    for game in result["per_game"]:
        assert game["won"] and game["guesses"][-1] == game["secret"] and len(game["guesses"]) <= 6


def test_play_games_garbage_player_wins_nothing():
    result = w.play_games(lambda prompts: ["I like turtles"] * len(prompts), ["HOUSE", "CRANE"])
    assert result["wins"] == 0 and result["win_rate"] == 0.0 and result["mean_guesses"] is None
    assert result["mean_guesses_all"] == 7.0 and result["invalid_guess_rate"] == 1.0
    assert result["per_game"][0] == {"secret": "HOUSE", "guesses": [None] * 6, "won": False}


def test_play_games_invalid_guess_uses_a_turn_without_feedback():
    seen = []

    def policy(prompts):
        seen.append(prompts[0])
        return [reply("ZZZZZ") if len(seen) == 1 else reply("HOUSE")]

    result = w.play_games(policy, ["HOUSE"])
    assert seen[0] == seen[1] == w.prompt_text([])  # the invalid guess left the board unchanged
    assert result["per_game"][0]["guesses"] == ["ZZZZZ", "HOUSE"] and result["mean_guesses"] == 2.0
    assert result["invalid_guess_rate"] == 0.5
    with pytest.raises(ValueError, match="replies"):
        w.play_games(lambda prompts: [], ["HOUSE"])


# --- the task (bench/tasks/wordle.py) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def task():
    from bench.config.compose import compose
    from bench.tasks import load_task

    return load_task(compose(["task=wordle"]).task)


def test_task_builds_seeded_with_disjoint_games(task):
    from bench.config.compose import compose
    from bench.tasks import load_task

    assert (len(task.train), len(task.test)) == (512, 200)
    train = {ex.fields["secret"] for ex in task.train}
    test = {ex.fields["secret"] for ex in task.test}
    assert len(train) == 512 and len(test) == 200 and not train & test
    assert task.game_secrets["test"] == [ex.fields["secret"] for ex in task.test]
    assert task.game_secrets["validation"] == [ex.fields["secret"] for ex in task.validation]
    histories = [w.as_history(ex.fields["history"]) for ex in task.train]
    assert {len(h) for h in histories} == {0, 1, 2, 3, 4}
    assert all(ex.prompt == w.prompt_text(h) for ex, h in zip(task.train, histories, strict=True))
    again = load_task(compose(["task=wordle"]).task)
    assert again.train == task.train and again.test == task.test
    other = load_task(compose(["task=wordle", "task.seed=7", "task.max_history=1"]).task)
    assert other.train != task.train and max(len(w.as_history(ex.fields["history"])) for ex in other.train) == 1


def test_fields_survive_an_arrow_round_trip(task):
    from datasets import Dataset

    from bench.recipe.data import prompt_rows

    # An all-opening batch is the case a plain list column could not type: the board is JSON text.
    openings = [ex for ex in task.train if not w.as_history(ex.fields["history"])][:3]
    for examples in (task.train[:32], openings):
        rows = prompt_rows(task, examples)
        back = Dataset.from_list(rows).to_list()
        assert [{k: r[k] for k in ("secret", "history")} for r in back] == [ex.fields for ex in examples]
        # What TRL hands a reward function: the columns as keyword lists.
        columns = {key: [r[key] for r in back] for key in ("secret", "history")}
        assert w.feedback_reward([ex.gold for ex in examples], **columns) == w.feedback_reward(
            [ex.gold for ex in examples], history=[ex.fields["history"] for ex in examples]
        )


def test_gold_is_well_formed_fits_the_board_and_beats_garbage(task):
    examples = task.train[:100] + task.test[:100]
    golds = [ex.gold for ex in examples]
    rows = [ex.fields for ex in examples]
    assert w.format_reward(golds) == [1.0] * len(golds)
    for ex in examples:
        history = w.as_history(ex.fields["history"])
        guess = w.parse_guess(ex.gold)
        assert w.consistent(guess, history) and w.feedback_score(guess, history) == (1.0 if history else 0.0)
        if len(w.candidates(history)) <= 2:
            assert guess == ex.fields["secret"]
    gold_scores = task.score(golds, rows)
    for garbage in ("I like turtles", "<guess>QQQQQ</guess>", "<think>hm</think>\n<guess>CRANE</guess> ok"):
        scores = task.score([garbage] * len(rows), rows)
        assert all(g > s for g, s in zip(gold_scores, scores, strict=True)), garbage


def test_item_metrics_are_the_turn_metrics_and_the_score(task):
    ex = next(ex for ex in task.test if w.as_history(ex.fields["history"]))
    metrics = task.item_metrics(ex.gold, ex.fields)
    assert set(metrics) == {"valid_guess", "consistent", "info_gain", "solved", "score"}
    assert metrics["valid_guess"] == metrics["consistent"] == 1.0
    assert metrics["score"] == pytest.approx(task.score([ex.gold], [ex.fields])[0])
    assert task.item_metrics("", ex.fields)["valid_guess"] == 0.0  # how the harness lists the metrics
    assert task.eval_metric in metrics


def chat_solver(chats: list[list[dict]]) -> list[str]:
    """A scripted `generate`: chats in (one user turn each, as the harness sends them), replies out."""
    assert all(len(c) == 1 and c[0]["role"] == "user" for c in chats)
    return solver([c[0]["content"] for c in chats])


def test_extra_eval_plays_held_out_games(task):
    result = task.extra_eval(chat_solver, 5)
    assert result["games"] == 5 and result["game_win_rate"] == 1.0 and result["game_invalid_rate"] == 0.0
    assert 1.0 <= result["game_mean_guesses"] == result["game_mean_guesses_won"] <= 6.0
    assert all(isinstance(v, (int, float)) for v in result.values())  # flat numbers for metrics.json
    garbage = task.extra_eval(lambda chats: ["no idea"] * len(chats), 3)
    assert garbage == {
        "game_win_rate": 0.0,
        "game_mean_guesses": 7.0,  # a lost game counts as max turns + 1
        "game_mean_guesses_won": None,
        "game_invalid_rate": 1.0,
        "games": 3,
    }
    played = []
    task.extra_eval(lambda chats: played.extend(chats) or ["no idea"] * len(chats), None)
    assert len(played) == task.num_eval_games * w.MAX_TURNS  # no limit: the task's own game count


# --- reasoning-gym (bench/tasks/reasoning_gym.py) --------------------------------------------------------


def _gym(*overrides: str):
    from bench.config.compose import compose
    from bench.tasks import load_task

    return load_task(compose(["task=reasoning_gym", "task.num_train=40", "task.num_test=20", *overrides]).task)


def test_reasoning_gym_missing_says_how_to_install(monkeypatch):
    """A user who installed without the extra: one line saying how to get it (the lock has it, so
    the import is made to fail here the way it does without the package)."""
    from bench import BenchError

    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # `import reasoning_gym` raises ImportError

    with pytest.raises(BenchError, match=r"pip install -c constraints.txt -e '\.\[gym\]'") as err:
        _gym()
    assert "tabulate" in str(err.value) and "\n" not in str(err.value)


def test_reasoning_gym_task_scores_with_the_library_checker():
    from bench import BenchError

    task = _gym()
    assert task.name == "reasoning_gym_chain_sum" and (len(task.train), len(task.test)) == (40, 20)
    assert not {ex.prompt for ex in task.train} & {ex.prompt for ex in task.test}
    assert all("<answer>" in ex.prompt and ex.gold == f"<answer>{ex.fields['answer']}</answer>" for ex in task.test)
    rows = [ex.fields for ex in task.test]
    assert task.rewards["correct"]([ex.gold for ex in task.test], **{k: [r[k] for r in rows] for k in rows[0]}) == [
        1.0
    ] * len(rows)
    assert task.score(["no answer"] * len(rows), rows) == [0.0] * len(rows)
    assert set(task.item_metrics(task.test[0].gold, rows[0])) == {"correct", "format", "score"}
    with pytest.raises(BenchError, match="Did you mean 'countdown'"):
        _gym("task.dataset=countdwn")
    with pytest.raises(BenchError, match="max_terms"):
        _gym("+task.dataset_args.bogus=1")


def test_the_generic_lm_eval_task_scores_turns_from_its_data_file(task):
    from bench.config.compose import compose
    from bench.recipe.evaluate import _generic_task

    lm_task = _generic_task(task, compose(["task=wordle"]))
    docs = list(lm_task.test_docs())[:20]
    assert len(docs) == 20
    for doc, ex in zip(docs, task.test, strict=False):
        # The board comes back from the jsonl file as the same JSON text, so the scores match.
        assert lm_task.process_results(doc, [ex.gold]) == task.item_metrics(ex.gold, ex.fields)
    assert {m["metric"] for m in lm_task.config.metric_list} == {
        "valid_guess",
        "consistent",
        "info_gain",
        "solved",
        "score",
    }


# --- end to end ------------------------------------------------------------------------------------------


def _sweep(out, *overrides: str) -> tuple[dict, object]:
    """`python -m bench -m ... debug=smoke` as a user runs it: {method: (metrics.json, run folder)}, process."""
    import subprocess
    import sys

    from tests.conftest import REPO

    # The tiny model, in one process: the task's plumbing (rewards, games, scoring) is the subject.
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "-m",
        *overrides,
        "debug=smoke",
        "model=tiny",
        "isolate=false",
        f"hydra.sweep.dir={out}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500)
    runs = {}
    for path in out.glob("*/metrics.json"):
        record = json.loads(path.read_text())
        runs[record["method"]] = (record, path.parent)
    return runs, proc


@pytest.mark.slow
def test_wordle_smoke_sweep_records_rewards_and_game_win_rates(tmp_path):
    """The acceptance command at smoke size: GRPO (online: each reward's curve) and DPO (offline pairs
    scored by the same weighted sum), each with the full-game win rate of the base model and the adapter."""
    runs, proc = _sweep(tmp_path, "method=grpo,dpo", "task=wordle", "eval.limit=4", "eval.games=2")
    assert set(runs) == {"grpo", "dpo"}, proc.stderr[-3000:]
    for method, (record, _) in runs.items():
        assert record["status"] == "success", f"{method}: {record.get('error')}\n{record.get('traceback', '')}"
    assert proc.returncode == 0, proc.stderr[-3000:]  # the report after the sweep, too
    for record, _ in runs.values():
        assert record["task"] == "wordle" and record["eval/task"] == "rftb_wordle"
        assert 0.0 <= record["eval/accuracy"] <= 1.0 and "eval/valid_guess" in record
        for key in ("game_win_rate", "game_mean_guesses", "game_invalid_rate"):
            assert 0.0 <= record[f"eval/{key}"] and 0.0 <= record[f"eval/base_{key}"], key
        assert record["eval/games"] == record["eval/base_games"] == 2
    grpo, folder = runs["grpo"]
    logs = json.loads((folder / "train_log.json").read_text())  # TRL logs each reward by function name
    for name in ("format_reward", "feedback_reward", "info_gain_reward", "solved_reward"):
        assert any(f"rewards/{name}/mean" in log for log in logs), name
    assert len(grpo["train/reward_curve"]) == grpo["train/steps"]
    assert runs["dpo"][0]["data/pairs"] > 0
    # Whole games say how far they are: chats answered of those asked, and the rate, per batch.
    # The generation's progress is in each run's log file (the terminal has a line per run).
    logs = "".join(p.read_text() for p in tmp_path.glob("**/run.log"))
    assert re.search(r"eval generation: (\d+)/\1 chats answered \([\d.]+ chats/s\)", logs)


@pytest.mark.slow
def test_reasoning_gym_grpo_smoke(tmp_path):
    runs, proc = _sweep(
        tmp_path, "method=grpo", "task=reasoning_gym", "task.num_train=16", "task.num_test=8", "eval.limit=4"
    )
    assert set(runs) == {"grpo"}, proc.stderr[-3000:]
    record, folder = runs["grpo"]
    assert record["status"] == "success", f"{record.get('error')}\n{record.get('traceback', '')}"
    assert record["eval/task"] == "rftb_reasoning_gym_chain_sum" and 0.0 <= record["eval/accuracy"] <= 1.0
    logs = json.loads((folder / "train_log.json").read_text())
    for name in ("answer_score", "answer_format"):
        assert any(f"rewards/{name}/mean" in log for log in logs), name
