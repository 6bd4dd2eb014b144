"""seqmem/chunker.py: the two-level history compressor against a step-by-step reference built from
torch.nn cells, its surprise rule on the paper's experiment 2 sequences, the gradient it carries
across the steps the higher level skips, and training through ``train()``."""

import numpy as np
import pytest
import torch

from seqmem.analysis import gradient_norms_by_lag
from seqmem.cells import make_cell
from seqmem.chunker import SURPRISE, Chunker, ChunkerLevel, make_chunker
from seqmem.config import TrainConfig
from seqmem.train import build_model, train
from tasks import make_task

P = 10  # experiment 2 with 11 symbols: a1 .. a9, x, y


def chunker(variant="2a", hidden=3, preset="rnn", seed=0, **options):
    torch.manual_seed(seed)
    return make_chunker(preset, make_task("long_lag", p=P, variant=variant), hidden, **options).double()


def batch(variant, size=6, seed=0):
    task = make_task("long_lag", p=P, variant=variant)
    sample = task.sample(size, torch.Generator().manual_seed(seed))
    return task, type(sample)(sample.inputs.double(), sample.targets, sample.mask, sample.lengths)


def perfect_filler_predictor(model):
    """Set the lower level's predictor to the 2a grammar: x, y -> a1 and a_k -> a_{k+1}."""
    with torch.no_grad():
        model.predictor.weight.zero_()
        model.predictor.bias.zero_()
        for k in range(P - 2):
            model.predictor.weight[k + 1, k] = 1.0
        model.predictor.weight[0, P - 1] = model.predictor.weight[0, P] = 1.0


def reference(model, inputs):
    """Outputs and surprises step by step with torch.nn.RNNCell copies of both levels."""
    cells = []
    for level in (model.lower, model.higher):
        twin = torch.nn.RNNCell(level.input_size, level.hidden_size).double()
        twin.load_state_dict(level.state_dict())
        cells.append(twin)
    batch_size, length, _ = inputs.shape
    low = high = torch.zeros(batch_size, model.hidden_size, dtype=torch.float64)
    guess = torch.zeros(batch_size, model.input_size, dtype=torch.float64)
    outputs, surprises = [], []
    for t in range(length):
        x = inputs[:, t]
        surprise = ((guess - x).abs().max(dim=1).values >= SURPRISE) | (t == 0)
        low = cells[0](x, low)
        stamp = torch.full((batch_size, 1), t / model.time_scale, dtype=torch.float64)
        high = torch.where(surprise[:, None], cells[1](torch.cat([x, stamp], 1), high), high)
        outputs.append(model.readout(torch.cat([low, high], 1)))
        surprises.append(surprise)
        guess = model.predictor(torch.cat([x, low], 1))
    return torch.stack(outputs, 1), torch.stack(surprises, 1)


@pytest.mark.parametrize("variant", ["2a", "2b"])
def test_forward_is_the_two_level_recurrence(variant):
    model = chunker(variant)
    _, data = batch(variant)
    outputs = model(data.inputs)
    expected, surprises = reference(model, data.inputs)
    torch.testing.assert_close(outputs, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(model.surprises, surprises)
    guesses = torch.stack(
        [
            model.predictor(torch.cat([data.inputs[:, t], h], 1))
            for t, h in enumerate(model(data.inputs, True)[1]["lower"].h)
        ],
        dim=1,
    )
    expected_loss = (guesses[:, :-1] - data.inputs[:, 1:]).square().sum(-1).mean()
    torch.testing.assert_close(model.prediction_loss, expected_loss, rtol=1e-12, atol=1e-12)


def test_predictable_inputs_never_reach_the_higher_level():
    model = chunker("2a")
    perfect_filler_predictor(model)
    _, data = batch("2a")
    _, levels = model(data.inputs, return_states=True)
    assert model.surprises[:, 0].all() and not model.surprises[:, 1:].any()
    high = torch.stack(levels["higher"].h, dim=1)
    torch.testing.assert_close(high, high[:, :1].expand_as(high), rtol=0, atol=0)  # held since step 0
    assert model.prediction_loss.item() == pytest.approx(0.0, abs=1e-24)


def test_random_fillers_all_reach_the_higher_level():
    model = chunker("2b")
    perfect_filler_predictor(model)  # the 2a grammar guesses 2b's random fillers wrong
    _, data = batch("2b", size=32)
    model(data.inputs)
    repeats = (data.inputs[:, 1:].argmax(-1) == data.inputs[:, :-1].argmax(-1) + 1).float().mean()
    assert model.surprises.float().mean() == pytest.approx(1 - repeats.item() * (P - 1) / P, abs=0.02)


def mean_grad_norm_by_lag(frame):
    rows = frame[(frame["quantity"] == "grad_norm") & (frame["stat"] == "mean")]
    return rows.set_index("lag")["value"].sort_index()


def test_the_higher_level_carries_its_gradient_across_skipped_steps():
    """With the fillers predicted, the answer's gradient reaches the higher state of step 0
    undiminished; the lower level's (a tanh RNN run over every step) decays."""
    model = chunker("2a", hidden=4)
    perfect_filler_predictor(model)
    task, data = batch("2a")
    higher, lower = (
        mean_grad_norm_by_lag(gradient_norms_by_lag(model.level(name), data, task))
        for name in ("higher", "lower")
    )
    assert len(higher) == len(lower) == P
    np.testing.assert_allclose(higher.to_numpy(), higher.iloc[0], rtol=1e-12)
    assert lower.iloc[-1] < 1e-2 * lower.iloc[0]


def test_levels_are_views_of_one_model():
    model = chunker("2a")
    level = model.level("higher")
    assert isinstance(level, ChunkerLevel) and level.cell is model.higher
    _, data = batch("2a")
    torch.testing.assert_close(level(data.inputs), model(data.inputs), rtol=0, atol=0)
    with pytest.raises(ValueError, match="name='top' is invalid: must be one of 'lower', 'higher'"):
        model.level("top")


def test_sizes_are_checked():
    lower = make_cell("rnn", 11, 3)
    with pytest.raises(ValueError, match="higher cell sizes .* are invalid: must be input_size=12"):
        Chunker(lower, make_cell("rnn", 11, 3), 11, 3, 11, time_scale=10.0)
    with pytest.raises(ValueError, match="time_scale=0 is invalid"):
        Chunker(lower, make_cell("rnn", 12, 3), 11, 3, 11, time_scale=0)


def test_input_to_output_adds_a_direct_path():
    model = chunker("2a", input_to_output=True)
    _, data = batch("2a")
    assert model.input_readout.weight.shape == (P + 1, P + 1)
    expected = reference(model, data.inputs)[0] + model.input_readout(data.inputs)
    torch.testing.assert_close(model(data.inputs), expected, rtol=1e-12, atol=1e-12)


def test_trains_with_train_and_solves_a_short_2a():
    config = TrainConfig(
        task="long_lag",
        task_params={"p": P, "variant": "2a"},
        cell="rnn",
        model="chunker",
        hidden_size=2,
        input_to_output=True,
        optimizer="sgd",
        momentum=0.0,
        lr=0.5,
        batch_size=1,
        grad_clip=None,
        loss_reduction="sequence_sum",
        max_steps=300,
        eval_every=100,
        eval_batch_size=32,
    )
    assert isinstance(build_model(config), Chunker)
    result = train(config, progress=False)
    model = build_model(config)
    model.load_state_dict(result.state_dict)
    _, data = batch("2a", size=32)
    model(data.inputs.float())
    # the lower level has learned the fixed fillers: only the first symbol is still a surprise
    assert model.surprises[:, 0].all() and model.surprises[:, 1:].float().mean() < 0.05
    assert result.status == "solved" and result.final_metrics["error_rate"] == 0.0
