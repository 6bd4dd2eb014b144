"""gate_statistics against gates recomputed by hand along torch.nn's own trajectory."""

import numpy as np
import pytest
import torch

from seqmem.analysis import gate_statistics
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


@pytest.mark.parametrize("preset", ["lstm", "lstm_chrono", "lstm_no_forget", "gru"])
def test_statistics_match_gates_by_hand(preset):
    model = model_for(preset)
    inputs = 2 * torch.randn(4, 7, INPUT, dtype=torch.float64)
    frame = gate_statistics(model, inputs)
    expected = gates_by_hand(model, inputs)
    assert sorted(frame["gate"].unique()) == sorted(expected)  # g and n are no gates
    for name, values in expected.items():
        rows = frame[frame["gate"] == name]
        assert rows["t"].tolist() == list(range(7))
        flat = values.transpose(1, 0, 2).reshape(7, -1)  # (L, B*H)
        np.testing.assert_allclose(rows["mean"], flat.mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(rows["median"], np.median(flat, axis=1), rtol=1e-12)
        np.testing.assert_allclose(rows["q10"], np.quantile(flat, 0.1, axis=1), rtol=1e-12)
        np.testing.assert_allclose(rows["q90"], np.quantile(flat, 0.9, axis=1), rtol=1e-12)
        saturated = ((flat < 0.05) | (flat > 0.95)).mean(axis=1)
        np.testing.assert_allclose(rows["saturated"], saturated)


def test_saturation_counts_shut_and_open_gates():
    model = model_for("lstm")
    with torch.no_grad():
        model.cell.bias_hh[:HIDDEN] = -50.0  # input gate shut
        model.cell.bias_hh[HIDDEN : 2 * HIDDEN] = 50.0  # forget gate open
    frame = gate_statistics(model, torch.randn(2, 3, INPUT, dtype=torch.float64)).set_index("gate")
    assert (frame.loc["i", "saturated"] == 1.0).all() and (frame.loc["f", "saturated"] == 1.0).all()
    assert (frame.loc["o", "saturated"] < 1.0).all()


def test_rnn_has_no_gates():
    frame = gate_statistics(model_for("rnn"), torch.randn(2, 3, INPUT, dtype=torch.float64))
    assert frame.empty and list(frame.columns) == ["t", "gate", "mean", "median", "q10", "q90", "saturated"]
