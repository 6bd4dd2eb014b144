"""The headline table's plumbing, on a tiny version of the measurement."""

import numpy as np
import torch
from analysis_checks import curve

from seqmem.analysis import gradient_norms_by_lag, rnn_gradient_bound
from seqmem.analysis.headline import headline, main
from seqmem.model import make_model
from tasks import AddingTask


def test_rows_and_ratios_per_cell_and_path():
    table = headline(cells=("rnn", "lstm"), seeds=2, length=20, hidden_size=8, batch_size=4)
    assert list(zip(table["cell"], table["path"], strict=True)) == [
        ("rnn", "h"),
        ("lstm", "h"),
        ("lstm", "c"),
    ]
    assert (table["n_seeds"] == 2).all()
    task, ratios, bounds = AddingTask(length=20), [], []
    for seed in range(2):  # the definition, seed by seed
        torch.manual_seed(seed)
        model = make_model("rnn", task, 8)
        frame = gradient_norms_by_lag(
            model, task.sample(4, torch.Generator().manual_seed(seed)), task, dtype=torch.float64
        )
        norms = curve(frame, "grad_norm")
        ratios.append(np.log10(norms.iloc[-1] / norms.iloc[0]))
        bound = rnn_gradient_bound(model)
        bounds.append(bound.loc[bound["quantity"] == "gradient_bound", "value"].item())
    rnn = table.iloc[0]
    np.testing.assert_allclose(rnn["log10_ratio"], np.mean(ratios))
    np.testing.assert_allclose(rnn["ratio"], 10 ** np.mean(ratios))
    np.testing.assert_allclose(rnn["gradient_bound"], np.mean(bounds))
    assert table["gradient_bound"].iloc[1:].isna().all()


def test_prints_the_table(capsys):
    main(["--seeds", "2", "--length", "12", "--hidden-size", "4", "--batch-size", "2"])
    out = capsys.readouterr().out
    assert "norm(lag 11) / norm(lag 0)" in out
    assert all(cell in out for cell in ("rnn", "lstm", "gru", "irnn", "orthogonal_rnn"))
