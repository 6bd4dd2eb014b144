"""tasks/reber.py: the embedded Reber grammar (Hochreiter & Schmidhuber 1997, experiment 1)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats
from task_checks import assert_seeded

from seqmem.cli import main
from tasks import Batch, EmbeddedReberTask, make_task
from tasks.reber import SYMBOLS

N = 20_000
TASK = EmbeddedReberTask()

# The Reber grammar as Cleeremans et al. (1989) draw it (the paper's Figure 3), written out here
# independently of the module: state -> {symbol: next state}, None = the string ends.
REBER = {
    0: {"B": 1},
    1: {"T": 2, "P": 3},
    2: {"S": 2, "X": 4},
    3: {"T": 3, "V": 5},
    4: {"X": 3, "S": 6},
    5: {"P": 4, "V": 6},
    6: {"E": None},
}


def reber_path(inner: str) -> list[int | None] | None:
    """The states a Reber string walks through (None if the grammar rejects it)."""
    states: list[int | None] = [0]
    for symbol in inner:
        if states[-1] is None or symbol not in REBER[states[-1]]:
            return None
        states.append(REBER[states[-1]][symbol])
    return states if states[-1] is None else None


def is_embedded_reber(string: str) -> bool:
    return (
        len(string) >= 9
        and string[0] == "B"
        and string[1] in "TP"
        and string[-2] == string[1]
        and string[-1] == "E"
        and reber_path(string[2:-2]) is not None
    )


def legal_sets(string: str) -> list[set[str]]:
    """The symbols allowed after each prefix string[:t + 1], t = 0 .. len - 2."""
    sets, state = [{"T", "P"}, {"B"}], 0
    for symbol in string[2:-2]:
        state = REBER[state][symbol]
        sets.append({string[1]} if state is None else set(REBER[state]))
    return [*sets, {"E"}]


def inner_strings(max_length: int) -> list[tuple[str, float]]:
    """Every Reber string of at most ``max_length`` symbols with its probability."""
    found, stack = [], [("", 0, 1.0)]
    while stack:
        prefix, state, prob = stack.pop()
        if len(prefix) == max_length:
            continue
        for symbol, nxt in REBER[state].items():
            share = prob / len(REBER[state])
            if nxt is None:
                found.append((prefix + symbol, share))
            else:
                stack.append((prefix + symbol, nxt, share))
    return found


def strings_of(batch: Batch) -> list[str]:
    """The full strings: the inputs, then the last target (the final E)."""
    symbols = batch.inputs.argmax(-1).tolist()
    lasts = batch.targets[torch.arange(batch.batch_size), batch.lengths - 1].tolist()
    return [
        "".join(SYMBOLS[s] for s in row[:n]) + SYMBOLS[last]
        for row, n, last in zip(symbols, batch.lengths.tolist(), lasts, strict=True)
    ]


def oracle_outputs(batch: Batch) -> torch.Tensor:
    """Log-probabilities uniform over the reference's legal next symbols."""
    outputs = torch.full((*batch.targets.shape, len(SYMBOLS)), -30.0)
    for row, string in enumerate(strings_of(batch)):
        for t, allowed in enumerate(legal_sets(string)):
            outputs[row, t, [SYMBOLS.index(s) for s in allowed]] = -math.log(len(allowed))
    return outputs


@pytest.fixture(scope="module")
def draw() -> Batch:
    return TASK.sample(N, torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def strings(draw: Batch) -> list[str]:
    return strings_of(draw)


def test_reference_grammar_matches_published_examples() -> None:
    """Orr's (1999) Reber and non-Reber strings pin the reference used below."""
    for good in ("BTSSXXTVVE", "BPVVE", "BTXXVPSE", "BPVPXVPXVPXVVE", "BTSXXVPSE"):
        assert reber_path(good) is not None
    for bad in ("BTSSPXSE", "BPTVVB", "BTXXVVSE", "BPVSPSE", "BTSSSE"):
        assert reber_path(bad) is None


def test_every_string_is_embedded_reber(strings: list[str]) -> None:
    assert all(map(is_embedded_reber, strings))
    assert max(map(len, strings)) <= TASK.max_length and min(map(len, strings)) == 9


def test_every_legal_transition_occurs_with_probability_one_half(strings: list[str]) -> None:
    """Count each edge taken; at every two-way branch both edges are taken half the time."""
    taken: Counter[tuple[int, str]] = Counter()
    for string in strings:
        path = reber_path(string[2:-2])
        taken.update(zip(path[:-1], string[2:-2], strict=True))
    for state, edges in REBER.items():
        counts = [taken[state, symbol] for symbol in edges]
        assert min(counts) > 0
        if len(counts) == 2:
            assert stats.binomtest(counts[0], sum(counts), 0.5).pvalue > 1e-3
    branches = Counter(s[1] for s in strings)
    assert stats.binomtest(branches["T"], N, 0.5).pvalue > 1e-3


def test_the_second_symbol_repeats_before_the_final_e(draw: Batch, strings: list[str]) -> None:
    assert all(s[1] == s[-2] and s[-1] == "E" for s in strings)
    # the reference step is where that repeat is the target, read at step 1
    steps = TASK.reference_steps(draw)
    rows = torch.arange(N)
    assert torch.equal(draw.targets[rows, steps], draw.inputs[:, 1].argmax(-1))
    assert (draw.inputs[rows, steps].argmax(-1) == SYMBOLS.index("E")).all()


def test_lengths_follow_the_grammar(strings: list[str]) -> None:
    """Chi-square of the string lengths against the exact distribution by enumeration."""
    exact: Counter[int] = Counter()
    for inner, prob in inner_strings(30):
        exact[len(inner) + 4] += prob
    observed = Counter(map(len, strings))
    lengths = range(9, 24)  # the rest pooled
    expected = [exact[n] for n in lengths] + [1 - sum(exact[n] for n in lengths)]
    counts = [observed[n] for n in lengths] + [sum(c for n, c in observed.items() if n >= 24)]
    assert stats.chisquare(counts, N * np.array(expected)).pvalue > 1e-3


def test_batch_layout(draw: Batch, strings: list[str]) -> None:
    assert draw.seq_len == int(draw.lengths.max())  # as long as the longest string
    assert torch.equal(draw.lengths, torch.tensor([len(s) - 1 for s in strings]))
    valid = torch.arange(draw.seq_len) < draw.lengths[:, None]
    assert torch.equal(draw.mask, valid)
    assert (draw.inputs[~valid] == 0).all() and (draw.inputs[valid].sum(-1) == 1).all()
    assert torch.equal(draw.targets[:, :-1][valid[:, 1:]], draw.inputs[:, 1:].argmax(-1)[valid[:, 1:]])


def test_legal_next_matches_the_reference(draw: Batch, strings: list[str]) -> None:
    legal = TASK.legal_next(draw)
    for row in range(0, N, 97):
        expected = legal_sets(strings[row])
        got = [{SYMBOLS[i] for i in step.nonzero()[:, 0].tolist()} for step in legal[row]]
        assert got[: len(expected)] == expected
        assert not legal[row, len(expected) :].any()  # nothing on padding
    # the target is always one of the legal symbols
    assert legal.gather(2, draw.targets[..., None])[..., 0][draw.mask].all()


def test_max_length_redraws_longer_strings() -> None:
    """At the shortest bound every string has 9 symbols: each of the 4 equally likely ones."""
    task = EmbeddedReberTask(max_length=9)
    strings = strings_of(task.sample(4000, torch.Generator().manual_seed(0)))
    counts = Counter(strings)
    assert set(counts) == {f"B{b}B{inner}E{b}E" for b in "TP" for inner in ("TXS", "PVV")}
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3
    assert task.memory_lag == 5 and torch.equal(
        task.reference_steps(task.sample(8)) - 1, torch.full((8,), task.memory_lag)
    )


def test_memory_lag_bounds_every_lag(draw: Batch) -> None:
    assert TASK.memory_lag == TASK.max_length - 4
    assert int((TASK.reference_steps(draw) - 1).max()) <= TASK.memory_lag


@pytest.mark.parametrize("max_length", [9, 12, 15])
def test_baseline_equals_brute_force_enumeration(max_length: int) -> None:
    """The memoryless loss over every string of at most ``max_length`` symbols, enumerated."""
    strings = [(f"B{b}{inner}{b}E", prob / 2) for inner, prob in inner_strings(max_length - 4) for b in "TP"]
    total = sum(prob for _, prob in strings)
    scored = loss = 0.0
    for t in range(max_length - 1):
        following: Counter[str] = Counter()
        for string, prob in strings:
            if len(string) >= t + 2:
                following[string[t + 1]] += prob / total
        alive = sum(following.values())
        p = np.array(list(following.values())) / alive
        loss += alive * -np.sum(p * np.log(p))
        scored += alive
    assert EmbeddedReberTask(max_length=max_length).baseline_loss() == pytest.approx(loss / scored, rel=1e-12)


def test_baseline_matches_the_fitted_memoryless_predictor(draw: Batch) -> None:
    """Monte Carlo: per step, the empirical distribution of the next symbol, scored in-sample."""
    steps = torch.arange(draw.seq_len).expand_as(draw.mask)[draw.mask]
    targets = draw.targets[draw.mask]
    counts = torch.bincount(steps * 7 + targets, minlength=draw.seq_len * 7).view(draw.seq_len, 7).double()
    log_p = (counts / counts.sum(1, keepdim=True).clamp_min(1)).clamp_min(1e-300).log()
    losses = torch.zeros_like(draw.mask, dtype=torch.float64)
    losses[draw.mask] = -log_p[steps, targets]
    per_string, steps_per_string = losses.sum(1), draw.mask.sum(1).double()
    estimate = float(per_string.sum() / steps_per_string.sum())
    # the ratio estimator's standard error, and the in-sample fit's optimism (~(K - 1)/2 per step)
    error = float((per_string - estimate * steps_per_string).std() / steps_per_string.mean()) / math.sqrt(N)
    fit_bias = 6 * draw.seq_len / (2 * float(steps_per_string.sum()))
    assert estimate == pytest.approx(TASK.baseline_loss(), abs=5 * error + 2 * fit_bias)


def test_the_papers_criterion_accepts_the_grammars_own_prediction(draw: Batch) -> None:
    few = Batch(*(t[:500] for t in (draw.inputs, draw.targets, draw.mask, draw.lengths)))
    outputs = oracle_outputs(few)
    outputs[~few.mask] = torch.tensor([9.0, 0, 0, 0, 0, 0, 0])  # padding counts for nothing
    metrics = TASK.metrics(outputs, few)
    assert metrics["accuracy"] == 1.0 and metrics["error_rate"] == 0.0 and metrics["recall_accuracy"] == 1.0
    assert TASK.is_solved(metrics) and TASK.sequence_correct(outputs, few).all()
    assert metrics["loss"] == pytest.approx(float(TASK.loss(outputs, few)))
    assert 0.2 < metrics["loss_ratio"] < 0.5  # the coin flips of the grammar stay unpredictable


def test_one_hot_on_the_actual_symbol_misses_the_other_legal_one(draw: Batch) -> None:
    """A tie between the second legal symbol and an illegal one is not 'most active'."""
    few = Batch(*(t[:500] for t in (draw.inputs, draw.targets, draw.mask, draw.lengths)))
    outputs = 5.0 * torch.nn.functional.one_hot(few.targets, 7).float()
    single = (TASK.legal_next(few).sum(-1) == 1) & few.mask
    metrics = TASK.metrics(outputs, few)
    assert metrics["accuracy"] == pytest.approx(float(single.sum() / few.mask.sum()))
    assert metrics["error_rate"] == 1.0 and not TASK.is_solved(metrics)


def test_forgetting_the_branch_fails_only_the_recall_step(draw: Batch) -> None:
    few = Batch(*(t[:400] for t in (draw.inputs, draw.targets, draw.mask, draw.lengths)))
    outputs = oracle_outputs(few)
    rows = torch.arange(0, 400, 2)  # every other string predicts the wrong branch symbol
    steps = TASK.reference_steps(few)[rows]
    outputs[rows, steps] = outputs[rows, steps][:, [0, 2, 1, 3, 4, 5, 6]]  # swap T and P
    metrics = TASK.metrics(outputs, few)
    assert metrics["recall_accuracy"] == 0.5 and metrics["error_rate"] == 0.5
    assert metrics["accuracy"] == pytest.approx(1 - 200 / float(few.mask.sum()))
    assert TASK.sequence_correct(outputs, few).tolist() == [i % 2 == 1 for i in range(400)]


def test_same_seed_same_batch_and_no_global_rng() -> None:
    assert_seeded(TASK)


@pytest.mark.parametrize("max_length", [8, 60.0, "60", True])
def test_invalid_max_length(max_length: object) -> None:
    with pytest.raises(ValueError, match=r"^max_length=") as info:
        EmbeddedReberTask(max_length=max_length)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_make_task_and_describe() -> None:
    assert make_task("embedded_reber", max_length=20) == EmbeddedReberTask(max_length=20)
    text = TASK.describe(torch.Generator().manual_seed(5))
    assert text == TASK.describe(torch.Generator().manual_seed(5)) and text.startswith(str(TASK))
    string = strings_of(TASK.sample(1, torch.Generator().manual_seed(5)))[0]
    inputs, allowed = (line.split(":", 1)[1].split() for line in text.splitlines()[1:])
    assert "".join(inputs) == string[:-1]
    assert [set(a) for a in allowed] == legal_sets(string)
    assert f"step 1's {string[1]}" in text and str(TASK.memory_lag) in text


def test_cli_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "show", "embedded_reber", "--max-length", "20", "--seed", "2"]) == 0
    expected = EmbeddedReberTask(max_length=20).describe(torch.Generator().manual_seed(2))
    assert capsys.readouterr().out == expected + "\n"
