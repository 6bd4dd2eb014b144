"""ProbeConfig validation and round trip; the probe callback's rows, in and out of train()."""

import json

import pandas as pd
import pytest
import torch
from analysis_checks import double

from seqmem.analysis import (
    COLUMNS,
    PROBE_COLUMNS,
    connectivity,
    forget_product_by_lag,
    gate_statistics,
    gradient_norms_by_lag,
    input_saliency_by_step,
    jacobian_norms_by_lag,
    lyapunov_spectrum,
    make_probe,
    rnn_gradient_bound,
)
from seqmem.analysis.common import prefix
from seqmem.analysis.scheme import COLUMN_TYPES
from seqmem.config import DEFAULT_PROBE_QUANTITIES, PROBE_QUANTITIES, ProbeConfig, TrainConfig
from seqmem.train import ProbeContext, build_model, train

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

QUICK = {"batch_size": 6, "jacobian_batch_size": 3, "lyapunov_k": 3}
TYPES = {"step": "int64", "sequences_seen": "int64", "phase": "str", **COLUMN_TYPES}


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


def functions(quick):
    """Per ProbeConfig quantity: the analysis function the probe's rows must equal, on the probe's
    model copy and batches (``quick`` sizes)."""
    return {
        "grad_norm": lambda m, batch, small, task: gradient_norms_by_lag(m, batch, task),
        "input_saliency": lambda m, batch, small, task: input_saliency_by_step(m, batch, task),
        "jacobian": lambda m, batch, small, task: jacobian_norms_by_lag(m, small, task),
        "forget_product": lambda m, batch, small, task: forget_product_by_lag(m, small, task),
        "gates": lambda m, batch, small, task: gate_statistics(m, batch, task),
        "lyapunov": lambda m, batch, small, task: lyapunov_spectrum(m, small, task, quick["lyapunov_k"]),
        "gradient_bound": lambda m, batch, small, task: (
            rnn_gradient_bound(m) if m.cell.gradient_bound() is not None else None
        ),
        "connectivity": lambda m, batch, small, task: connectivity(m, small, task),
    }


@pytest.mark.parametrize("quantity", PROBE_QUANTITIES)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rows_are_exactly_the_analysis_functions_frames(cell, quantity):
    ctx = context(cell, task_params={"length": 20, "variant": "hochreiter1997"})  # variable lengths
    assert len(set(ctx.eval_batch.lengths[: QUICK["batch_size"]].tolist())) > 1
    probe = make_probe(ProbeConfig(**QUICK, quantities=(quantity,)))(ctx)
    assert tuple(probe.columns) == PROBE_COLUMNS
    assert {c: str(t) for c, t in probe.dtypes.items()} == TYPES
    model = ctx.model.double()  # the probe measures in float64 by default
    batch = double(prefix(ctx.eval_batch, QUICK["batch_size"]))
    small = prefix(batch, QUICK["jacobian_batch_size"])
    expected = functions(QUICK)[quantity](model, batch, small, ctx.task)
    if expected is None or expected.empty:  # a quantity the cell does not have: left out
        assert probe.empty
        return
    assert set(probe["phase"]) == {"init"} and set(probe["step"]) == {0}
    pd.testing.assert_frame_equal(probe[list(COLUMNS)], expected)


def test_default_quantities_leave_out_the_costly_connectivity():
    assert "connectivity" in PROBE_QUANTITIES and "connectivity" not in ProbeConfig().quantities
    assert ProbeConfig().quantities == DEFAULT_PROBE_QUANTITIES


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
    assert tuple(first.columns) == PROBE_COLUMNS
    assert sorted(set(zip(first["step"], first["phase"], strict=True))) == [
        (0, "init"),
        (2, "train"),
        (4, "final"),
    ]
    assert set(first["quantity"]) == {"grad_norm", "cell_grad_norm", "forget_product"}


def test_jacobian_rows_leave_the_forget_product_to_its_own_quantity():
    ctx = context("lstm")
    probe = make_probe(ProbeConfig(**QUICK, quantities=("jacobian",)))(ctx)
    assert set(probe["quantity"]) == {
        "jacobian_spectral",
        "jacobian_frobenius",
        "cell_jacobian_spectral",
        "cell_jacobian_frobenius",
    }
