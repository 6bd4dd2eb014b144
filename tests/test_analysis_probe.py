"""ProbeConfig validation and round trip; the probe callback's rows, in and out of train()."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from seqmem.analysis import (
    PROBE_COLUMNS,
    gate_statistics,
    gradient_norms_by_lag,
    jacobian_norms_by_lag,
    lyapunov_spectrum,
    make_probe,
    rnn_gradient_bound,
)
from seqmem.config import ProbeConfig, TrainConfig
from seqmem.train import ProbeContext, build_model, train

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

QUICK = {"batch_size": 6, "jacobian_batch_size": 2, "lyapunov_k": 3}


def context(cell, phase="init", step=0, task_params=None, eval_every=2):
    config = TrainConfig(
        task="adding",
        task_params=task_params or {"length": 12},
        cell=cell,
        hidden_size=5,
        max_steps=4,
        eval_every=eval_every,
        eval_batch_size=8,
    )
    task = config.make_task()
    batch = task.sample(8, torch.Generator().manual_seed(0))
    return ProbeContext(build_model(config), task, config, batch, step, step * 32, phase)


def rows_of(probe, quantity, stat="mean"):
    return probe[(probe["quantity"] == quantity) & (probe["stat"] == stat)].sort_values("t")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantities", ("grad_norm", "entropy")),
        ("quantities", "grad_norm"),
        ("quantities", ()),
        ("every_n_evals", -1),
        ("batch_size", 0),
        ("jacobian_batch_size", 0),
        ("lyapunov_k", 0),
        ("reference", "first"),
        ("dtype", "float16"),
    ],
)
def test_config_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        ProbeConfig(**{field: value})


def test_config_round_trips_through_json():
    config = ProbeConfig(quantities=["grad_norm", "gates"], every_n_evals=3, dtype="float32")
    again = ProbeConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.quantities == ("grad_norm", "gates")
    with pytest.raises(ValueError, match="colour"):
        ProbeConfig.from_dict({"colour": "red"})


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rows_are_the_analysis_functions_in_long_format(cell):
    ctx = context(cell, task_params={"length": 20, "variant": "hochreiter1997"})  # variable lengths
    probe = make_probe(ProbeConfig(**QUICK))(ctx)
    assert list(probe.columns) == PROBE_COLUMNS
    kinds = {
        "int64": pd.api.types.is_integer_dtype,
        "str": pd.api.types.is_string_dtype,
        "float64": pd.api.types.is_float_dtype,
    }
    types = ["int64", "int64", "str", "str", "int64", "int64", "str", "float64"]
    assert all(kinds[kind](probe[column]) for column, kind in zip(PROBE_COLUMNS, types, strict=True))
    assert set(probe["phase"]) == {"init"} and set(probe["step"]) == {0}
    model = ctx.model.double()  # the probe measures in float64 by default
    batch = ctx.eval_batch
    batch = type(batch)(batch.inputs[:6].double(), batch.targets[:6], batch.mask[:6], batch.lengths[:6])
    common = int(batch.lengths.min())
    grads = gradient_norms_by_lag(model, batch, ctx.task)
    np.testing.assert_allclose(
        rows_of(probe, "grad_norm", "q90")["value"], grads.sort_values("t")["grad_norm_q90"]
    )
    jac = jacobian_norms_by_lag(model, batch.inputs[:2, :common])
    np.testing.assert_allclose(
        rows_of(probe, "jacobian_spectral")["value"], jac.sort_values("t")["jacobian_spectral"]
    )
    lyap = lyapunov_spectrum(model, batch.inputs[:2, :common], 3)
    np.testing.assert_allclose(rows_of(probe, "lyapunov")["value"], lyap["exponent"])
    assert (rows_of(probe, "lyapunov")["lag"] == -1).all()
    expected = {"grad_norm", "input_saliency", "jacobian_spectral", "jacobian_frobenius"}
    if cell == "lstm":
        expected |= {
            "cell_grad_norm",
            "cell_jacobian_spectral",
            "forget_product",
            "gate_i",
            "gate_f",
            "gate_o",
        }
    if cell == "gru":
        expected |= {"gate_r", "gate_z"}
    if cell == "rnn":
        bound = rows_of(probe, "gradient_bound")
        assert bound[["t", "lag"]].to_numpy().tolist() == [[-1, -1]]
        assert bound["value"].iloc[0] == pytest.approx(rnn_gradient_bound(model)["bound"].iloc[0])
    else:
        gates = gate_statistics(model, batch.inputs[:, :common])
        name = gates["gate"].iloc[0]
        saturated = rows_of(probe, f"gate_{name}", "saturated")
        np.testing.assert_allclose(saturated["value"], gates[gates["gate"] == name]["saturated"])
    assert expected <= set(probe["quantity"])
    assert set(probe["stat"]) >= {"mean", "median", "q10", "q90"}


def test_probe_leaves_the_model_alone():
    ctx = context("lstm")
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    make_probe(ProbeConfig(**QUICK, dtype="float32"))(ctx)
    assert all(torch.equal(before[k], v) for k, v in ctx.model.state_dict().items())
    assert all(p.grad is None for p in ctx.model.parameters())


@pytest.mark.parametrize(("every", "step", "due"), [(2, 2, False), (2, 4, True), (0, 4, False), (1, 2, True)])
def test_probes_every_nth_evaluation(every, step, due):
    probe = make_probe(ProbeConfig(quantities=("gradient_bound",), every_n_evals=every))
    assert (probe(context("rnn", "train", step)) is not None) == due
    assert probe(context("rnn", "final", step)) is not None  # init and final always


def test_in_training_deterministic_and_labelled():
    config = TrainConfig(
        task="adding",
        task_params={"length": 10},
        cell="lstm",
        hidden_size=4,
        max_steps=4,
        eval_every=2,
        eval_batch_size=8,
        batch_size=4,
    )
    probe = make_probe(
        ProbeConfig(quantities=("grad_norm", "forget_product"), batch_size=4, jacobian_batch_size=2)
    )
    first, second = (train(config, [probe], progress=False).probes for _ in range(2))
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == PROBE_COLUMNS
    assert sorted(set(zip(first["step"], first["phase"], strict=True))) == [
        (0, "init"),
        (2, "train"),
        (4, "final"),
    ]
    assert set(first["quantity"]) == {"grad_norm", "cell_grad_norm", "forget_product"}


def test_forget_product_alone_equals_the_jacobian_pass():
    ctx = context("lstm")
    alone = make_probe(ProbeConfig(**QUICK, quantities=("forget_product",)))(ctx)
    both = make_probe(ProbeConfig(**QUICK, quantities=("jacobian", "forget_product")))(ctx)
    assert set(alone["quantity"]) == {"forget_product"}
    pd.testing.assert_frame_equal(alone, both[both["quantity"] == "forget_product"].reset_index(drop=True))
