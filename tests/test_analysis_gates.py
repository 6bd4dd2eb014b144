"""gate_statistics and forget_product_by_lag against gates recomputed by hand along torch.nn's own
trajectory, for sequences of one length and of different lengths (padding contributes nothing)."""

import numpy as np
import pytest
import torch
from analysis_checks import ANY_TASK, batch_of, curve

from seqmem.analysis import COLUMNS, forget_product_by_lag, gate_statistics
from seqmem.cells import make_cell
from seqmem.model import SequenceModel

HIDDEN, INPUT = 6, 3


def model_for(preset):
    cell = make_cell(preset, INPUT, HIDDEN, memory_lag=20)
    return SequenceModel(cell, INPUT, HIDDEN, 2).double()


def gates_by_hand(model, inputs):
    """Sigmoid gate activations (B, L, H) from the equations: the LSTM unrolled by hand (the 1997
    LSTM reports its effective forget gate, 1), the GRU's states from torch.nn.GRUCell."""
    cell = model.cell
    lstm = cell.gate_names[0] == "i"
    gru = torch.nn.GRUCell(INPUT, HIDDEN).double()
    if not lstm:
        gru.load_state_dict(cell.state_dict())
    h = c = torch.zeros(inputs.shape[0], HIDDEN, dtype=torch.float64)
    gates = {name: [] for name in (("i", "f", "o") if lstm else ("r", "z"))}
    with torch.no_grad():
        for x in inputs.unbind(dim=1):
            x_part = (x @ cell.weight_ih.T + cell.bias_ih).chunk(len(cell.gate_names), dim=1)
            h_part = (h @ cell.weight_hh.T + cell.bias_hh).chunk(len(cell.gate_names), dim=1)
            act = {n: torch.sigmoid(x_part[k] + h_part[k]) for k, n in enumerate(cell.gate_names)}
            if lstm:
                act["f"] = act["f"] if cell.forget_gate else torch.ones_like(h)
                c = act["f"] * c + act["i"] * torch.tanh(x_part[2] + h_part[2])
                h = act["o"] * torch.tanh(c)
            else:
                h = gru(x, h)
            for name, values in gates.items():
                values.append(act[name])
    return {name: torch.stack(values, dim=1).numpy() for name, values in gates.items()}


def pooled_by_lag(gates, lengths):
    """Per lag from each sequence's last step: the activations (sequences reaching it x units)."""
    by_lag = {}
    for b, length in enumerate(lengths):
        for t in range(length):
            by_lag.setdefault(length - 1 - t, []).append(gates[b, t])
    return {lag: np.concatenate(values) for lag, values in sorted(by_lag.items())}


@pytest.mark.parametrize("lengths", [[7, 7, 7, 7], [7, 4, 6, 1]], ids=["fixed", "variable"])
@pytest.mark.parametrize("preset", ["lstm", "lstm_chrono", "lstm_no_forget", "gru"])
def test_statistics_match_gates_by_hand(preset, lengths):
    model = model_for(preset)
    inputs = 2 * torch.randn(4, 7, INPUT, dtype=torch.float64)
    wild = inputs.clone()
    for b, length in enumerate(lengths):
        wild[b, length:] = 30.0  # padding: must change nothing
    frame = gate_statistics(model, batch_of(wild, lengths), ANY_TASK)
    expected = gates_by_hand(model, inputs)
    assert {q.removeprefix("gate_") for q in frame["quantity"]} == set(expected)  # g and n are no gates
    for name, values in expected.items():
        pooled = pooled_by_lag(values, lengths)
        assert curve(frame, f"gate_{name}").index.tolist() == list(pooled)
        for stat, statistic in (
            ("mean", np.mean),
            ("median", np.median),
            ("q10", lambda v: np.quantile(v, 0.1)),
            ("q90", lambda v: np.quantile(v, 0.9)),
            ("saturated", lambda v: ((v < 0.05) | (v > 0.95)).mean()),
        ):
            reference = [statistic(v) for v in pooled.values()]
            np.testing.assert_allclose(curve(frame, f"gate_{name}", stat), reference, rtol=1e-12)
        rows = frame[(frame["quantity"] == f"gate_{name}") & (frame["stat"] == "mean")]
        assert rows["n"].tolist() == [len(v) for v in pooled.values()]
        if len(set(lengths)) == 1:  # one length: the step at each lag is exact
            assert rows["t"].tolist() == [6 - lag for lag in pooled]


def test_saturation_counts_shut_and_open_gates():
    model = model_for("lstm")
    with torch.no_grad():
        model.cell.bias_hh[:HIDDEN] = -50.0  # input gate shut
        model.cell.bias_hh[HIDDEN : 2 * HIDDEN] = 50.0  # forget gate open
    frame = gate_statistics(model, batch_of(torch.randn(2, 3, INPUT, dtype=torch.float64)), ANY_TASK)
    saturated = frame[frame["stat"] == "saturated"].groupby("quantity")["value"]
    assert (saturated.min()[["gate_i", "gate_f"]] == 1.0).all() and (saturated.max()["gate_o"] < 1.0)


def test_a_nan_activation_poisons_its_lag_only():
    model = model_for("gru")
    inputs = torch.randn(2, 4, INPUT, dtype=torch.float64)
    inputs[1, 3] = torch.nan  # the last step of the second sequence: lag 0
    frame = gate_statistics(model, batch_of(inputs), ANY_TASK)
    at_zero = frame["lag"] == 0
    assert frame.loc[at_zero, "value"].isna().all() and frame.loc[~at_zero, "value"].notna().all()


def test_rnn_has_no_gates():
    frame = gate_statistics(
        model_for("rnn"), batch_of(torch.randn(2, 3, INPUT, dtype=torch.float64)), ANY_TASK
    )
    assert frame.empty and tuple(frame.columns) == COLUMNS


@pytest.mark.parametrize("preset", ["lstm", "lstm_no_forget"])
def test_forget_product_is_the_product_of_later_forget_gates(preset):
    model = model_for(preset)
    lengths = [6, 3]
    inputs = torch.randn(2, 6, INPUT, dtype=torch.float64)
    frame = forget_product_by_lag(model, batch_of(inputs, lengths), ANY_TASK)
    forget = gates_by_hand(model, inputs)["f"]
    by_lag = {}
    for b, length in enumerate(lengths):
        for t in range(length):
            by_lag.setdefault(length - 1 - t, []).append(np.prod(forget[b, t + 1 : length], axis=0).mean())
    expected = [np.mean(by_lag[lag]) for lag in sorted(by_lag)]
    np.testing.assert_allclose(curve(frame, "forget_product"), expected, rtol=1e-12)
    if preset == "lstm_no_forget":  # the constant error carousel: nothing is ever forgotten
        np.testing.assert_allclose(frame["value"], 1.0)


def test_forget_product_needs_a_forget_gate():
    frame = forget_product_by_lag(
        model_for("gru"), batch_of(torch.randn(2, 3, INPUT, dtype=torch.float64)), ANY_TASK
    )
    assert frame.empty and tuple(frame.columns) == COLUMNS
