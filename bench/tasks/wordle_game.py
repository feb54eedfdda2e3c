"""Wordle, the pure game: word lists, feedback, candidate sets, seeded game states, prompts, rewards.

Nothing here loads a model or touches the network: the word lists ship inside the `wordfreq` and
`english-words` packages.

Words. Everything is UPPER-CASE (secrets, guesses, histories, prompts); input is upper-cased on the way
in. Both lists are frequency-ordered and hold only words of exactly five ASCII letters a-z:
- `allowed()`, the valid guesses: the 12,000 most frequent such tokens of wordfreq's English "large"
  list. Like the real game's guess list it has oddities (names, brands, "OFTHE"); they are harmless
  as guesses.
- `answers()`, the secrets and the candidate universe the rewards reason over ("which words could
  still be the secret?"): the 2,500 most frequent words of `allowed()` that Webster's Second
  International (the `web2` list of the english-words package) spells in lower case, so no names,
  brands or web tokens, less a few slurs and sexual terms (`_NOT_SECRETS`) so that secrets can be
  printed in a report. It is a subset of `allowed()`.
Frequency is the proxy for "a word people know"; the dictionary is the proxy for "a word, not a name".

Feedback. One symbol per letter of the guess, plain ASCII so a small model reads it as it is:
    G  right letter, right place ("green")
    Y  in the word, wrong place ("yellow")
    -  not in the word, or no more copies of it than the G/Y marks already show
Repeated letters follow the real game (the usual two-pass comparison): greens first, then yellows left to
right, each limited by the copies of the letter in the secret not already matched. Guess SPEED against
ABIDE gives "--Y-Y": ABIDE has one E, so only the first E of SPEED is yellow and the second is "-".

A history is a list of `[guess, feedback]` pairs, e.g. `[["CRANE", "-Y--G"]]`; that plain form is what
the datasets store and what TRL hands the reward functions back as the `history` column.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

import numpy as np

from bench.tasks.rewards import completion_text

WORD_LENGTH = 5
NUM_ANSWERS = 2_500
NUM_ALLOWED = 12_000
MAX_TURNS = 6
_DRAWS = 8  # tries for a history guess that leaves enough candidates (make_game_states)

GREEN, YELLOW, ABSENT = "G", "Y", "-"
_DIGIT = {ABSENT: 0, YELLOW: 1, GREEN: 2}  # a feedback string is a base-3 number, position i = digit i
_POW3 = 3 ** np.arange(WORD_LENGTH)
_WORD = re.compile(r"[A-Z]{5}")

History = Sequence[Sequence[str]]  # [[guess, feedback], ...]


# --- word lists ------------------------------------------------------------------------------------------


@functools.cache
def allowed() -> tuple[str, ...]:
    """Valid guesses: the 12,000 most frequent 5-letter a-z words of wordfreq's English list, upper-case."""
    from wordfreq import iter_wordlist  # deferred: importing the harness should not load the word data

    words: list[str] = []
    for token in iter_wordlist("en", wordlist="large"):
        # isascii + isalpha drops accented words, contractions, digits and hyphenated tokens.
        if len(token) == WORD_LENGTH and token.isascii() and token.isalpha():
            words.append(token.upper())
            if len(words) == NUM_ALLOWED:
                break
    return tuple(words)


# Dictionary words that should not be a secret someone reads in a results table. They stay valid guesses.
_NOT_SECRETS = frozenset("BITCH DILDO HORNY PENIS PUBES PUSSY SEMEN SPERM SQUAW TITTY WHORE".split())


@functools.cache
def answers() -> tuple[str, ...]:
    """Possible secrets: the 2,500 most frequent words of `allowed()` found in lower case in web2."""
    from english_words import get_english_words_set

    # Lower case in the dictionary = a common noun, verb...; names and brands are capitalised there.
    lower = {w.upper() for w in get_english_words_set(["web2"]) if len(w) == WORD_LENGTH and w.islower()}
    words = [w for w in allowed() if w in lower and w not in _NOT_SECRETS][:NUM_ANSWERS]
    if len(words) < NUM_ANSWERS:  # a word-list release that shrank: fail here, not in a skewed benchmark
        raise RuntimeError(f"only {len(words)} Wordle secrets found, {NUM_ANSWERS} expected")
    return tuple(words)


@functools.cache
def _allowed_set() -> frozenset[str]:
    return frozenset(allowed())


def is_allowed(word: str | None) -> TypeGuard[str]:
    """Whether `word` (any case) is a valid guess."""
    return word is not None and word.upper() in _allowed_set()


# --- feedback --------------------------------------------------------------------------------------------


def feedback(guess: str, secret: str) -> str:
    """The game's answer to `guess` when the secret is `secret`: one of G, Y, - per letter (two-pass)."""
    guess, secret = guess.upper(), secret.upper()
    if len(guess) != len(secret):
        raise ValueError(f"guess {guess!r} and secret {secret!r} differ in length")
    marks = [ABSENT] * len(guess)
    unmatched: Counter[str] = Counter()
    for i, (g, s) in enumerate(zip(guess, secret, strict=True)):
        if g == s:
            marks[i] = GREEN
        else:
            unmatched[s] += 1
    for i, g in enumerate(guess):
        if marks[i] != GREEN and unmatched[g] > 0:
            marks[i] = YELLOW
            unmatched[g] -= 1
    return "".join(marks)


def _code(marks: str) -> int:
    return sum(_DIGIT[m] * 3**i for i, m in enumerate(marks))


def _encode(words: Sequence[str]) -> np.ndarray:
    return np.frombuffer("".join(words).encode("ascii"), dtype=np.uint8).reshape(len(words), WORD_LENGTH)


def _patterns(guess: str, secrets: np.ndarray) -> np.ndarray:
    """`_code(feedback(guess, s))` for every row `s` of an encoded (N, 5) array, vectorised over N."""
    g = _encode([guess])[0]
    green = secrets == g
    codes = (green * (2 * _POW3)).sum(axis=1)
    # Per distinct guess letter, the copies in each secret not already taken by a green: the yellow budget.
    left = {c: ((secrets == c) & ~green).sum(axis=1) for c in set(g.tolist())}
    for i, c in enumerate(g.tolist()):
        yellow = ~green[:, i] & (left[c] > 0)
        left[c] -= yellow
        codes += yellow * _POW3[i]
    return codes


def consistent(word: str, history: History) -> bool:
    """Whether `word` could still be the secret: it gives every earlier guess exactly its feedback."""
    return all(feedback(g, word) == fb for g, fb in history)


# --- candidate sets --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # hashed by identity: one cached instance per distinct word tuple
class _Pool:
    words: tuple[str, ...]
    array: np.ndarray = field(repr=False)
    position: dict[str, int] = field(repr=False)


@functools.cache
def _pool(words: tuple[str, ...]) -> _Pool:
    return _Pool(words, _encode(words), {w: i for i, w in enumerate(words)})


def _as_pool(pool: Sequence[str] | None) -> _Pool:
    return _pool(answers() if pool is None else tuple(w.upper() for w in pool))


def _key(history: History | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(g).upper(), str(fb)) for g, fb in history or ())


@functools.lru_cache(maxsize=1 << 16)
def _candidate_indices(pool: _Pool, key: tuple[tuple[str, str], ...]) -> np.ndarray:
    # Narrow the parent history's (cached) set by the last guess only: games share prefixes, and a
    # set after k guesses is small, so most calls filter a few hundred words at most.
    if not key:
        indices = np.arange(len(pool.words))
    else:
        parent = _candidate_indices(pool, key[:-1])
        guess, marks = key[-1]
        indices = parent[_patterns(guess, pool.array[parent]) == _code(marks)]
    indices.flags.writeable = False  # shared through the cache
    return indices


def candidates(history: History, pool: Sequence[str] | None = None) -> list[str]:
    """The words of `pool` (default `answers()`) consistent with every `[guess, feedback]` in `history`."""
    p = _as_pool(pool)
    return [p.words[i] for i in _candidate_indices(p, _key(history))]


def info_gain(guess: str, history: History, pool: Sequence[str] | None = None) -> float:
    """Expected information of `guess` over the remaining candidates, normalised to [0, 1].

    The entropy (bits) of the feedback pattern that `guess` would get, each remaining candidate of `pool`
    (default `answers()`) equally likely to be the secret, divided by log2(number of candidates): 1.0 means
    every candidate gets its own pattern, 0.0 that the guess tells nothing. With one candidate left, 1.0 for
    guessing it and 0.0 otherwise; 0.0 for a guess outside `allowed()` or an impossible history.
    """
    if not is_allowed(guess):
        return 0.0
    guess = guess.upper()
    p = _as_pool(pool)
    left = _candidate_indices(p, _key(history))
    if len(left) <= 1:
        return float(len(left) == 1 and p.words[left[0]] == guess)
    counts = np.bincount(_patterns(guess, p.array[left]))
    probs = counts[counts > 0] / len(left)
    return float(-(probs * np.log2(probs)).sum() / math.log2(len(left)))


# --- seeded games ----------------------------------------------------------------------------------------


def split_secrets(
    seed: int, num_train: int, num_test: int, num_validation: int = 0
) -> tuple[list[str], list[str], list[str]]:
    """Disjoint train, test and validation secrets drawn from `answers()`.

    Train and test come from `random.Random(seed)` as they always did; validation from the words left,
    with its own stream (`seed + 2`), so adding it changed neither of the others.
    """
    pool = answers()
    counts = (num_train, num_test, num_validation)
    if min(counts) < 0 or sum(counts) > len(pool):
        raise ValueError(
            f"need 0 <= num_train + num_test + num_validation <= {len(pool)} secrets; got "
            f"{' + '.join(map(str, counts))}"
        )
    picked = random.Random(seed).sample(pool, num_train + num_test)
    rest = sorted(set(pool) - set(picked))
    validation = random.Random(seed + 2).sample(rest, num_validation)
    return picked[:num_train], picked[num_train:], validation


def make_game_states(
    secrets: Sequence[str],
    rng: random.Random,
    max_history: int = 4,
    pool: Sequence[str] | None = None,
    min_candidates: int = 2,
) -> list[dict]:
    """One mid-game position per secret: `{"secret": str, "history": [[guess, feedback], ...]}`.

    Each game gets up to `rng.randint(0, max_history)` earlier guesses, each a random word of `pool`
    (default `answers()`) still consistent with the feedback so far, i.e. what a hard-mode player might
    try; the candidates left range from the whole pool (no guess) through hundreds (one) to a handful
    (three or four). A history guess is never the secret (that game would be over), and is kept only if
    at least `min_candidates` words stay consistent after it (a few draws are tried, then the history
    stops early): with the default 2 no position has its answer forced by the board alone, which random
    consistent guesses would otherwise produce for about a third of the games.
    """
    p = _as_pool(pool)
    states = []
    for secret in secrets:
        secret = secret.upper()
        history: list[list[str]] = []
        for _ in range(rng.randint(0, max_history)):
            key = _key(history)
            left = _candidate_indices(p, key)
            left = left[left != p.position.get(secret, -1)]
            step = None
            for _try in range(_DRAWS if len(left) else 0):
                guess = p.words[left[rng.randrange(len(left))]]
                marks = feedback(guess, secret)
                if len(_candidate_indices(p, (*key, (guess, marks)))) >= min_candidates:
                    step = [guess, marks]
                    break
            if step is None:
                break
            history.append(step)
        states.append({"secret": secret, "history": history})
    return states


# --- prompt and parsing ----------------------------------------------------------------------------------

_RULES = (
    "Let's play Wordle. Find the secret 5-letter English word.\n"
    "After each guess, every letter gets a mark: G = right letter, right place; "
    "Y = in the word, wrong place; - = not in the word (no more copies)."
)
_ASK = "Think briefly inside <think>...</think>, then give your next guess as <guess>WORD</guess>."


def prompt_text(history: History) -> str:
    """The user turn: the rules, the symbol legend, the guesses so far with their marks, the reply form."""
    if history:
        lines = [f"{i}. {str(g).upper()}: {fb}" for i, (g, fb) in enumerate(history, start=1)]
        board = "Guesses so far:\n" + "\n".join(lines)
    else:
        board = "No guesses yet."
    return f"{_RULES}\n{board}\n{_ASK}"


_GUESS_TAG = re.compile(r"<guess>(.*?)</guess>", re.DOTALL | re.IGNORECASE)
# The exact reply form: one think block, then one guess of five letters, nothing else but whitespace.
_EXACT_FORM = re.compile(
    r"\s*<think>(?:(?!</?think>|</?guess>).)*</think>\s*<guess>\s*[A-Za-z]{5}\s*</guess>\s*",
    re.DOTALL | re.IGNORECASE,
)


def parse_guess(text: str) -> str | None:
    """The word in the last `<guess>...</guess>` of `text`, stripped of spaces and quotes, upper-case.

    None when there is no guess tag or it is empty; the word is returned even when it is not a valid
    guess (the rewards and the game loop check that).
    """
    found = _GUESS_TAG.findall(text)
    if not found:
        return None
    word = found[-1].strip().strip("\"'`*.").strip().upper()
    return word or None


def _is_word_shape(word: str | None) -> TypeGuard[str]:
    return word is not None and bool(_WORD.fullmatch(word))


# --- rewards ---------------------------------------------------------------------------------------------
# TRL's reward signature: every dataset column arrives as a keyword list, one entry per completion.


def as_history(value) -> list[list[str]]:
    """A history column entry as `[[guess, feedback], ...]`: a list as it is, a JSON string decoded, None
    as no guesses (a dataset may store the board as JSON, since an all-empty list column has no Arrow type).
    """
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value)
    return [[str(g).upper(), str(fb)] for g, fb in value]


def format_reward(completions, **kwargs) -> list[float]:
    """Reply form, in [0, 1]: 0.2 for a guess tag, +0.2 for 5 letters, +0.3 for an allowed word,
    +0.3 for the exact form (`<think>...</think>` then `<guess>WORD</guess>`, nothing else)."""
    scores = []
    for completion in completions:
        text = completion_text(completion)
        word = parse_guess(text)
        score = 0.0
        if word is not None:
            score += 0.2
            score += 0.2 * _is_word_shape(word)
            score += 0.3 * is_allowed(word)
        score += 0.3 * bool(_EXACT_FORM.fullmatch(text))
        scores.append(round(score, 6))
    return scores


@dataclass
class _Knowledge:
    """What a history proves about the secret."""

    greens: dict[int, str] = field(default_factory=dict)  # position -> letter
    banned: list[set[str]] = field(default_factory=lambda: [set() for _ in range(WORD_LENGTH)])
    at_least: Counter[str] = field(default_factory=Counter)  # copies the secret surely has
    at_most: dict[str, int] = field(default_factory=dict)  # exact counts, known from a '-' mark

    @classmethod
    def of(cls, history: History) -> _Knowledge:
        k = cls()
        for guess, marks in history:
            shown: Counter[str] = Counter()
            absent = set()
            for i, (c, m) in enumerate(zip(str(guess).upper(), marks, strict=True)):
                if m == GREEN:
                    k.greens[i] = c
                    shown[c] += 1
                else:
                    # Y or '-' at i: the letter is not at i (it would have been G); '-' also caps the
                    # count at the copies this guess showed as G or Y, which may be more than zero.
                    k.banned[i].add(c)
                    if m == YELLOW:
                        shown[c] += 1
                    else:
                        absent.add(c)
            for c, n in shown.items():
                k.at_least[c] = max(k.at_least[c], n)
            for c in absent:
                k.at_most[c] = min(k.at_most.get(c, WORD_LENGTH), shown[c])
        return k


def feedback_score(guess: str | None, history: History) -> float:
    """How well `guess` uses the feedback in `history`, in [-1, 1]: credit - penalty.

    credit: the share of known facts the guess uses: each green kept in place, and each copy of a letter
    the secret is known to hold (from G/Y) placed somewhere not yet ruled out (1.0 when nothing is known
    to be in the word). penalty: the share of the 5 positions that break a fact: a letter in a position
    already marked Y or '-' for it, or more copies of a letter than a '-' mark allows (absent means "no
    more copies than already shown"). Every word that could still be the secret scores 1.0.
    No history: 0.0 (nothing to use or break; the same for every reply to the prompt, so no signal is
    lost). No 5-letter guess: -1.0, the minimum.
    """
    if not history:
        return 0.0
    guess = guess.upper() if guess else guess
    if not _is_word_shape(guess):
        return -1.0
    k = _Knowledge.of(history)
    green_letters = Counter(k.greens.values())
    possible = len(k.greens) + sum(max(0, n - green_letters[c]) for c, n in k.at_least.items())
    earned = sum(guess[i] == c for i, c in k.greens.items())
    for c, n in k.at_least.items():
        free = sum(guess[i] == c and i not in k.greens and c not in k.banned[i] for i in range(WORD_LENGTH))
        earned += min(free, max(0, n - green_letters[c]))
    violations = 0
    for c, n in Counter(guess).items():
        misplaced = sum(guess[i] == c and c in k.banned[i] for i in range(WORD_LENGTH))
        excess = max(0, n - k.at_most.get(c, WORD_LENGTH))
        violations += max(misplaced, excess)  # an excess copy may be the misplaced one: count it once
    credit = earned / possible if possible else 1.0
    return credit - violations / WORD_LENGTH


def feedback_reward(completions, history, **kwargs) -> list[float]:
    """Use of earlier feedback, in [-1, 1] (see `feedback_score`)."""
    return [
        feedback_score(parse_guess(completion_text(c)), as_history(h))
        for c, h in zip(completions, history, strict=True)
    ]


def info_gain_reward(completions, history, **kwargs) -> list[float]:
    """Guess value, in [0, 1]: the normalised expected information gain (see `info_gain`)."""
    return [
        info_gain(parse_guess(completion_text(c)) or "", as_history(h))
        for c, h in zip(completions, history, strict=True)
    ]


def solved_reward(completions, secret, **kwargs) -> list[float]:
    """1.0 when the guess is the secret, else 0.0."""
    return [float(parse_guess(completion_text(c)) == s.upper()) for c, s in zip(completions, secret, strict=True)]


REWARDS: dict[str, Callable] = {
    "format": format_reward,
    "feedback": feedback_reward,
    "info_gain": info_gain_reward,
    "solved": solved_reward,
}


# --- evaluation ------------------------------------------------------------------------------------------


def turn_metrics(reply_text: str, secret: str, history: History) -> dict[str, float]:
    """Single-turn metrics of one reply: valid_guess, consistent, solved (0/1) and info_gain ([0, 1])."""
    word = parse_guess(reply_text)
    history = as_history(history)
    if not is_allowed(word):
        return {"valid_guess": 0.0, "consistent": 0.0, "info_gain": 0.0, "solved": 0.0}
    return {
        "valid_guess": 1.0,
        "consistent": float(consistent(word, history)),
        "info_gain": info_gain(word, history),
        "solved": float(word == secret.upper()),
    }


@dataclass
class _Game:
    secret: str
    history: list[list[str]] = field(default_factory=list)
    guesses: list[str | None] = field(default_factory=list)
    won: bool = False


def play_games(policy: Callable[[list[str]], list[str]], secrets: Sequence[str], max_turns: int = MAX_TURNS) -> dict:
    """Play one full game per secret, all unfinished games batched into one `policy` call per turn.

    `policy` maps user prompts (`prompt_text` of each game's history) to replies. A reply with no parseable
    guess, or a guess outside `allowed()`, still uses its turn but adds nothing to the history (the real
    game would refuse it; the model sees the same board again). A game ends when solved or after
    `max_turns`. Returns:
    - games, wins, win_rate;
    - mean_guesses: mean turns used over won games (the usual Wordle statistic; None with no win);
    - mean_guesses_all: mean over all games, a lost game counted as max_turns + 1;
    - invalid_guess_rate: invalid turns / all turns played;
    - per_game: [{"secret", "guesses" (parsed words, None where unparseable), "won"}].
    """
    games = [_Game(s.upper()) for s in secrets]
    turns = invalid = 0
    for _ in range(max_turns):
        live = [g for g in games if not g.won]
        if not live:
            break
        replies = policy([prompt_text(g.history) for g in live])
        if len(replies) != len(live):
            raise ValueError(f"policy returned {len(replies)} replies for {len(live)} prompts")
        for game, reply in zip(live, replies, strict=True):
            word = parse_guess(completion_text(reply))
            game.guesses.append(word)
            turns += 1
            if not is_allowed(word):
                invalid += 1
                continue
            game.history.append([word, feedback(word, game.secret)])
            game.won = word == game.secret
    wins = [len(g.guesses) for g in games if g.won]
    n = len(games)
    return {
        "games": n,
        "wins": len(wins),
        "win_rate": len(wins) / n if n else 0.0,
        "mean_guesses": sum(wins) / len(wins) if wins else None,
        "mean_guesses_all": (sum(len(g.guesses) if g.won else max_turns + 1 for g in games) / n if n else None),
        "invalid_guess_rate": invalid / turns if turns else 0.0,
        "per_game": [{"secret": g.secret, "guesses": g.guesses, "won": g.won} for g in games],
    }
