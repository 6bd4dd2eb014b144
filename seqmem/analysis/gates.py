"""Gate activations by step: are the LSTM/GRU gates open, shut, or saturated?"""

from __future__ import annotations

import pandas as pd
import torch

from seqmem.model import SequenceModel

__all__ = ["SIGMOID_GATES", "SATURATION", "gate_statistics"]

# The sigmoid gates (LSTM i, f, o; GRU r, z); the tanh candidates g and n are no gates.
SIGMOID_GATES = ("i", "f", "o", "r", "z")
SATURATION = (0.05, 0.95)
COLUMNS = ["t", "gate", "mean", "median", "q10", "q90", "saturated"]


def gate_statistics(model: SequenceModel, inputs: torch.Tensor) -> pd.DataFrame:
    """Per step t and sigmoid gate, statistics over batch and units of the gate activations:
    mean, median, q10, q90 and ``saturated``, the fraction below 0.05 or above 0.95 (where the
    gate's derivative, at most 0.05, all but stops gradients through it).  Columns: t, gate,
    mean, median, q10, q90, saturated.  Empty (same columns) for cells without gates (RNN).
    """
    with torch.no_grad():
        _, states = model(inputs, return_states=True)
    frames = []
    for gate in (name for name in SIGMOID_GATES if name in states.gates):
        values = states.gates[gate].transpose(0, 1).reshape(inputs.shape[1], -1).double().cpu()  # (L, B*H)
        q10, median, q90 = torch.quantile(values, values.new_tensor([0.1, 0.5, 0.9]), dim=1)
        saturated = (values < SATURATION[0]) | (values > SATURATION[1])
        frames.append(
            pd.DataFrame(
                {
                    "t": range(inputs.shape[1]),
                    "gate": gate,
                    "mean": values.mean(dim=1).numpy(),
                    "median": median.numpy(),
                    "q10": q10.numpy(),
                    "q90": q90.numpy(),
                    "saturated": saturated.double().mean(dim=1).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
