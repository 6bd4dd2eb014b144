"""seqmem/train.py: the training loop's bookkeeping (schedule,
budget, clipping, solve criterion, divergence), determinism, the scoped denormal flush, probe
callbacks, loading checkpoints, and -- slow -- that training really learns what a cell can
remember."""

import functools
import itertools
import math

import pandas as pd
import pytest
import torch

import tasks
from seqmem import stopping as stopping_module
from seqmem.config import TrainConfig
from seqmem.io import save_checkpoint
from seqmem.stopping import HochreiterStop
from seqmem.train import (
    PLATEAU_TOLERANCE,
    Plateau,
    ProbeContext,
    build_model,
    denormals_flushed,
    load_model,
    make_optimizer,
    train,
    training_loss,
)

HISTORY_COLUMNS = [
    "step",
    "sequences_seen",
    "loss",
    "loss_ratio",
    "train_loss",
    "grad_norm",
    "grad_norm_max",
    "elapsed_s",
    "solved",
]


def tiny(**changes) -> TrainConfig:
    """A config that trains in well under a second."""
    base = dict(
        task="adding",
        task_params={"length": 12},
        cell="lstm",
        hidden_size=8,
        batch_size=8,
        max_steps=5,
        eval_every=2,
        eval_batch_size=16,
    )
    return TrainConfig(**{**base, **changes})


def without_time(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns="elapsed_s")


def parameter_distance(before: dict, after: dict) -> float:
    return math.sqrt(sum(float((after[k] - before[k]).pow(2).sum()) for k in before))


# -- the training loop ------------------------------------------------------------------------


def test_history_has_one_row_per_evaluation():
    config = tiny(max_steps=5, eval_every=2)
    result = train(config, progress=False)
    history = result.history
    expected_steps = [*range(0, config.max_steps, config.eval_every), config.max_steps]
    assert history["step"].tolist() == expected_steps
    assert history["sequences_seen"].tolist() == [s * config.batch_size for s in expected_steps]
    assert set(HISTORY_COLUMNS) | {"abs_error", "error_rate"} <= set(history.columns)
    assert history[["train_loss", "grad_norm"]].iloc[0].isna().all()  # nothing trained at step 0
    assert history[["train_loss", "grad_norm", "grad_norm_max"]].iloc[1:].notna().all().all()
    assert (history["grad_norm_max"].iloc[1:] >= history["grad_norm"].iloc[1:]).all()
    assert history["elapsed_s"].is_monotonic_increasing
    assert (result.status, result.steps, result.diverged_step) == ("budget_exhausted", 5, None)
    assert result.final_metrics == {k: history[k].iloc[-1] for k in result.final_metrics}
    assert result.final_metrics["loss_ratio"] == pytest.approx(
        result.final_metrics["loss"] / config.make_task().baseline_loss()
    )


@pytest.mark.parametrize(
    ("max_steps", "max_sequences", "batch_size"), [(4, None, 8), (None, 20, 8), (3, 100, 8), (None, 16, 8)]
)
def test_budget_in_steps_or_sequences(max_steps, max_sequences, batch_size):
    config = tiny(max_steps=max_steps, max_sequences=max_sequences, batch_size=batch_size)
    result = train(config, progress=False)
    budgets = [max_steps] if max_steps else []
    budgets += [math.ceil(max_sequences / batch_size)] if max_sequences else []
    assert result.steps == min(budgets) == result.history["step"].iloc[-1]
    assert result.sequences_seen == min(budgets) * batch_size


@pytest.mark.parametrize("clip_fraction", [None, 0.1])
def test_grad_norm_is_recorded_before_clipping(clip_fraction):
    # With plain SGD at lr = 1 one step moves the weights by exactly the (clipped) gradient.
    config = tiny(optimizer="sgd", momentum=0.0, lr=1.0, grad_clip=None, max_steps=1, eval_every=1)
    before = build_model(config).state_dict()
    unclipped = train(config, progress=False)
    norm = unclipped.history["grad_norm"].iloc[-1]
    assert parameter_distance(before, unclipped.state_dict) == pytest.approx(norm, rel=1e-4)
    if clip_fraction is not None:
        clipped = train(
            TrainConfig.from_dict({**config.to_dict(), "grad_clip": clip_fraction * norm}), progress=False
        )
        assert clipped.history["grad_norm"].iloc[-1] == pytest.approx(norm, rel=1e-6)
        assert parameter_distance(before, clipped.state_dict) == pytest.approx(clip_fraction * norm, rel=1e-4)


@pytest.mark.parametrize(
    ("task", "task_params", "cell"),
    [
        ("adding", {"length": 12}, "lstm_chrono"),
        ("copy", {"delay": 4, "n_copy": 3}, "gru"),
        ("copy", {"delay": 4, "n_copy": 3}, "lstm_no_forget"),
        ("adding", {"length": 12}, "rnn"),
    ],
)
def test_same_config_same_history_whatever_the_global_rng(task, task_params, cell):
    config = tiny(task=task, task_params=task_params, cell=cell, max_steps=6)
    torch.manual_seed(1)
    first = train(config, progress=False)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    second = train(config, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # train leaves the global RNG alone
    pd.testing.assert_frame_equal(without_time(first.history), without_time(second.history))
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    other_seed = train(
        tiny(task=task, task_params=task_params, cell=cell, max_steps=6, seed=1), progress=False
    )
    assert not without_time(other_seed.history).equals(without_time(first.history))


def test_divergence_ends_the_run_and_keeps_the_history():
    # A tanh RNN under plain SGD at a huge learning rate, no loss bound: NaN within a few steps.
    config = tiny(
        cell="rnn",
        optimizer="sgd",
        lr=1e3,
        momentum=0.0,
        grad_clip=None,
        max_steps=200,
        eval_every=5,
        max_loss_ratio=None,
    )
    result = train(config, progress=False)
    assert result.status == "diverged"
    assert 1 <= result.diverged_step < config.max_steps
    assert result.steps == result.diverged_step == result.history["step"].iloc[-1]
    last = result.history.iloc[-1]
    assert not (math.isfinite(last["train_loss"]) and math.isfinite(last["grad_norm_max"]))
    assert result.history[["train_loss", "grad_norm"]].iloc[1:-1].map(math.isfinite).all().all()
    # the diverging update was not applied: the final weights are the last finite ones
    assert all(torch.isfinite(t).all() for t in result.state_dict.values())


def test_a_finite_loss_far_above_the_baseline_is_divergence():
    # SGD at lr 1e6 with clipping: the tanh RNN's loss stays finite, around 1e13 x the baseline.
    config = tiny(cell="rnn", optimizer="sgd", lr=1e6, max_steps=20, eval_every=5)
    result = train(config, progress=False)
    bound = config.max_loss_ratio * config.make_task().baseline_loss()
    assert (result.status, result.steps, result.diverged_step) == ("diverged", 2, 2)
    assert bound < result.history["train_loss"].iloc[-1] < math.inf
    before = train(TrainConfig.from_dict({**config.to_dict(), "max_loss_ratio": None}), progress=False)
    assert (before.status, before.steps) == ("budget_exhausted", config.max_steps)  # NaN/Inf alone miss it
    assert (before.history["train_loss"].iloc[1:] > bound).all()
    pd.testing.assert_frame_equal(
        without_time(before.history.iloc[:1]), without_time(result.history.iloc[:1])
    )


@pytest.fixture(params=[False, True], ids=["flush-off", "flush-on"])
def denormal_mode(request):
    """The process's denormal mode before a test, restored after it."""
    before = denormals_flushed()
    if not torch.set_flush_denormal(request.param):
        pytest.skip("this CPU cannot flush denormals")
    yield request.param
    torch.set_flush_denormal(before)


def test_the_denormal_probe_reads_the_mode_torch_sets(denormal_mode):
    assert denormals_flushed() is denormal_mode
    torch.set_flush_denormal(not denormal_mode)
    assert denormals_flushed() is (not denormal_mode)


def failing_probe(ctx: ProbeContext) -> None:
    raise RuntimeError("probe failed")


def test_train_flushes_denormals_while_training_and_restores_the_mode(denormal_mode):
    seen = []
    train(tiny(max_steps=2), callbacks=[lambda ctx: seen.append(denormals_flushed())], progress=False)
    assert seen == [True, True]  # probes run inside training, as the loop does
    assert denormals_flushed() is denormal_mode
    with pytest.raises(RuntimeError, match="probe failed"):
        train(tiny(max_steps=2), callbacks=[failing_probe], progress=False)
    assert denormals_flushed() is denormal_mode


def test_hochreiter_stopping_needs_a_task_with_a_per_sequence_criterion():
    with pytest.raises(ValueError, match=r"^stopping='hochreiter1997' is invalid for task 'copy': [^\n]+$"):
        tiny(task="copy", task_params={"delay": 5}, stopping="hochreiter1997")


def test_hochreiter_stopping_ends_the_run_on_the_training_stream(monkeypatch):
    monkeypatch.setattr(
        tasks.AddingTask,
        "sequence_correct",
        lambda self, outputs, batch: torch.ones(len(outputs), dtype=torch.bool),
    )
    monkeypatch.setattr(
        stopping_module, "HochreiterStop", functools.partial(HochreiterStop, window=16, max_loss=math.inf)
    )
    config = tiny(
        task_params={"length": 20, "variant": "hochreiter1997"},
        max_steps=20,
        eval_every=5,
        stopping="hochreiter1997",
    )
    result = train(config, progress=False)
    # 16 sequences = 2 batches of 8; the run is evaluated once more where it stops
    assert (result.status, result.steps, result.sequences_seen) == ("solved", 2, 16)
    assert result.history["step"].tolist() == [0, 2]


def test_hochreiter_stopping_ignores_solved_evaluations(monkeypatch):
    monkeypatch.setattr(tasks.AddingTask, "is_solved", lambda self, metrics: True)
    monkeypatch.setattr(
        stopping_module, "HochreiterStop", functools.partial(HochreiterStop, window=16, max_loss=0.0)
    )
    config = tiny(
        task_params={"length": 20, "variant": "hochreiter1997"},
        max_steps=6,
        eval_every=2,
        stopping="hochreiter1997",
    )
    result = train(config, progress=False)
    assert (result.status, result.steps) == ("budget_exhausted", 6)
    assert result.history["solved"].all()


@pytest.mark.parametrize(("patience", "stop"), [(1, True), (3, True), (2, False)])
def test_solve_criterion_needs_patience_consecutive_evaluations(monkeypatch, patience, stop):
    monkeypatch.setattr(tasks.AddingTask, "is_solved", lambda self, metrics: True)
    config = tiny(max_steps=20, eval_every=2, solve_patience=patience, stop_when_solved=stop)
    result = train(config, progress=False)
    assert result.status == "solved"
    assert result.steps == (config.eval_every * (patience - 1) if stop else config.max_steps)
    assert result.history["solved"].all()


def test_interrupted_streak_is_not_solved(monkeypatch):
    answers = itertools.cycle([True, False])
    monkeypatch.setattr(tasks.AddingTask, "is_solved", lambda self, metrics: next(answers))
    result = train(tiny(max_steps=12, eval_every=2, solve_patience=2), progress=False)
    assert result.status == "budget_exhausted" and result.steps == 12
    assert result.history["solved"].tolist() == [True, False] * 3 + [True]


def test_build_model_draws_the_readout_from_the_given_range_and_squashes_its_outputs():
    config = tiny(readout_init_range=0.05, logistic_output=True, input_to_output=True)
    model, default = build_model(config), build_model(tiny())
    for layer in (model.readout, model.input_readout):
        values = torch.cat([p.flatten() for p in layer.parameters()])
        assert values.abs().max() <= 0.05 and values.abs().max() > 0.02
    assert torch.equal(model.cell.weight_hh, default.cell.weight_hh)  # the cell is drawn as before
    batch = config.make_task().sample(3, torch.Generator().manual_seed(0))
    outputs = model(batch.inputs)
    assert ((outputs > 0) & (outputs < 1)).all()


def test_sequence_sum_loss_sums_each_sequences_scored_steps():
    task = tasks.make_task("long_lag", p=6, variant="2b")
    batch = task.sample(4, torch.Generator().manual_seed(0))
    outputs = torch.randn(4, 6, task.output_size)
    mean, reported = training_loss(tiny(), build_model(tiny()), task, outputs, batch)
    summed, same = training_loss(
        tiny(loss_reduction="sequence_sum"), build_model(tiny()), task, outputs, batch
    )
    per_step = torch.nn.functional.cross_entropy(outputs.transpose(1, 2), batch.targets, reduction="none")
    torch.testing.assert_close(mean, per_step.mean())
    torch.testing.assert_close(summed, per_step.sum(dim=1).mean())
    # the task's loss is what the history and the divergence bound see, whatever is descended
    torch.testing.assert_close(reported, task.loss(outputs, batch))
    torch.testing.assert_close(same, reported)


@pytest.mark.parametrize("reduction", ["mean", "sequence_sum"])
def test_cross_entropy_pulls_a_logistic_unit_by_its_error_where_the_squared_error_damps_it(reduction):
    # at the unit's net input: cross-entropy y - t, squared error 2 (y - t) y (1 - y) (closed forms)
    config = tiny(task_params={"length": 20, "variant": "hochreiter1997"}, logistic_output=True)
    task = config.make_task()
    batch = task.sample(4, torch.Generator().manual_seed(0))
    net = torch.randn(4, batch.seq_len, 1, generator=torch.Generator().manual_seed(1), requires_grad=True)
    outputs = torch.sigmoid(net)
    grads = {}
    for loss in ("squared", "cross_entropy"):
        changed = tiny(**{**config.to_dict(), "logistic_loss": loss, "loss_reduction": reduction})
        objective, reported = training_loss(changed, build_model(changed), task, outputs, batch)
        (grads[loss],) = torch.autograd.grad(objective, net, retain_graph=True)
        torch.testing.assert_close(reported, task.loss(outputs, batch))  # what the history sees
    y, error = outputs[..., 0].detach(), outputs[..., 0].detach() - batch.targets
    scored = batch.mask.sum() if reduction == "mean" else batch.batch_size
    torch.testing.assert_close(grads["cross_entropy"][..., 0], torch.where(batch.mask, error, 0) / scored)
    torch.testing.assert_close(
        grads["squared"][..., 0], torch.where(batch.mask, 2 * error * y * (1 - y), 0) / scored
    )


def test_the_chunker_trains_on_the_task_loss_plus_its_prediction_loss():
    config = tiny(task="long_lag", task_params={"p": 6}, cell="rnn", model="chunker", hidden_size=3)
    model, task = build_model(config), config.make_task()
    batch = task.sample(4, torch.Generator().manual_seed(0))
    outputs = model(batch.inputs)
    objective, loss = training_loss(config, model, task, outputs, batch)
    torch.testing.assert_close(loss, task.loss(outputs, batch))
    torch.testing.assert_close(objective, loss + model.prediction_loss)


def test_callbacks_see_every_evaluation_and_cannot_disturb_training():
    calls = []
    training_modes = []  # model.training at every forward pass with gradients (training steps)

    def record_mode(module, args):
        if torch.is_grad_enabled():
            training_modes.append(module.training)

    def probe(ctx: ProbeContext) -> pd.DataFrame:
        assert ctx.model.training and torch.is_grad_enabled()
        if ctx.phase == "init":
            ctx.model.register_forward_pre_hook(record_mode)
        assert ctx.eval_batch.batch_size == ctx.config.eval_batch_size
        loss = ctx.task.loss(ctx.model(ctx.eval_batch.inputs), ctx.eval_batch)
        grads = torch.autograd.grad(loss, list(ctx.model.parameters()), retain_graph=True)
        loss.backward()  # leaves .grad behind, on purpose
        ctx.model.eval()
        torch.rand(3)  # uses the global RNG
        calls.append((ctx.phase, ctx.step, ctx.sequences_seen))
        norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
        return pd.DataFrame({"quantity": ["grad_norm", "loss"], "value": [norm, loss.item()]})

    def silent(ctx: ProbeContext) -> None:
        return None

    def labelled(ctx: ProbeContext) -> pd.DataFrame:
        return pd.DataFrame({"step": [-1], "value": [0.0]})

    config = tiny(max_steps=5, eval_every=2)
    result = train(config, callbacks=[probe, silent, labelled], progress=False)
    steps = [0, 2, 4, 5]
    assert calls == [
        (p, s, s * config.batch_size) for p, s in zip(["init", "train", "train", "final"], steps, strict=True)
    ]
    probes = result.probes
    assert list(probes.columns[:3]) == ["step", "sequences_seen", "phase"]
    ours = probes[probes["quantity"].notna()]
    assert ours["step"].tolist() == [s for s in steps for _ in range(2)]
    assert ours.loc[ours["quantity"] == "loss", "value"].tolist() == pytest.approx(
        result.history["loss"].tolist()
    )
    assert (probes.loc[probes["quantity"].isna(), "step"] == -1).all()  # a callback's own step column is kept
    assert len(training_modes) > config.max_steps and all(training_modes)  # eval() was undone
    plain = train(config, progress=False)
    pd.testing.assert_frame_equal(without_time(plain.history), without_time(result.history))
    assert plain.probes.empty and list(plain.probes.columns) == ["step", "sequences_seen", "phase"]


def test_fresh_training_batches_and_one_fixed_held_out_batch(monkeypatch):
    sampled = []
    sample = tasks.AddingTask.sample
    monkeypatch.setattr(
        tasks.AddingTask, "sample", lambda self, *a, **k: sampled.append(sample(self, *a, **k)) or sampled[-1]
    )
    seen = []
    config = tiny(batch_size=8, eval_batch_size=8, max_steps=6)
    train(config, callbacks=[lambda ctx: seen.append(ctx.eval_batch)], progress=False)
    held_out, *training = sampled
    assert len(training) == config.max_steps
    assert all(batch is seen[0] for batch in seen) and torch.equal(seen[0].inputs, held_out.inputs)
    inputs = [held_out.inputs, *(batch.inputs for batch in training)]
    assert not any(torch.equal(a, b) for a, b in itertools.combinations(inputs, 2))


def test_solved_at_step_zero_still_gives_a_final_probe(monkeypatch):
    monkeypatch.setattr(tasks.AddingTask, "is_solved", lambda self, metrics: True)
    phases = []
    result = train(tiny(), callbacks=[lambda ctx: phases.append((ctx.phase, ctx.step))], progress=False)
    assert result.status == "solved" and result.steps == 0 and len(result.history) == 1
    assert phases == [("init", 0), ("final", 0)]


@pytest.mark.parametrize(("progress", "shown"), [(False, False), (None, False), (True, True)])
def test_progress_bar_only_when_asked_or_on_a_terminal(capsys, progress, shown):
    train(tiny(), progress=progress)  # under capsys stderr is not a terminal
    err = capsys.readouterr().err
    assert ("seq/s" in err) == shown


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_is_reported_before_training():
    with pytest.raises(ValueError, match="^device='cuda' is invalid"):
        train(tiny(device="cuda"), progress=False)


# -- checkpoints ------------------------------------------------------------------------------


def test_load_model_rebuilds_the_trained_model(tmp_path):
    config = tiny(task="copy", task_params={"delay": 4, "n_copy": 3}, cell="gru")
    result = train(config, progress=False)
    model = build_model(config)
    model.load_state_dict(result.state_dict)
    path = save_checkpoint(tmp_path / "checkpoint.pt", result.state_dict, config.to_dict())
    loaded, loaded_config = load_model(path)
    assert loaded_config == config
    inputs = config.make_task().sample(4, torch.Generator().manual_seed(0)).inputs
    assert torch.equal(loaded(inputs), model(inputs))
    assert not torch.equal(build_model(config)(inputs), model(inputs))  # training changed the model


# -- a net that grows: the cell joins once the training loss has stopped decreasing ----------------


@pytest.mark.parametrize(
    ("losses", "reached_at"),
    [
        ([4, 4, 4, 2, 2, 2, 2, 2, 2], 9),  # halved, then flat: the second comparison finds the plateau
        ([1, 1, 1, 1, 1, 1], 6),  # flat from the start: found at the first comparison, after 2 windows
        ([1, 1, 1, 0.995, 0.995, 0.995], 6),  # 0.5 % better is "stopped decreasing"
        ([1, 1, 1, 0.98, 0.98, 0.98, 0.96, 0.96, 0.96], None),  # 2 % better each window: still going
        ([1, 1, 1, 1, 1, 0.9, 0.9, 0.9, 0.9], None),  # compared only at whole windows, not in between
    ],
)
def test_plateau_compares_the_mean_of_each_window_with_the_one_before(losses, reached_at):
    assert PLATEAU_TOLERANCE == 0.01
    plateau = Plateau(3)
    answers = [plateau.add(loss) for loss in losses]
    assert answers == [k + 1 == reached_at for k in range(len(losses))]
    assert plateau.reached == (reached_at is not None)
    if reached_at is not None:
        assert plateau.add(0.0) is False  # reached once; never again


ONLINE = dict(optimizer="sgd", momentum=0.0, batch_size=1, grad_clip=None)  # one sequence per update


def growing(window: int = 8, **changes) -> TrainConfig:
    """Experiment 2a's net at p = 5, online, whose cell joins at the training loss's plateau."""
    net = {"bias": "none", "output_gate": False, "recurrent": False, "squashing": "logistic_identity"}
    return tiny(
        task="long_lag",
        task_params={"p": 5, "variant": "2a"},
        cell="lstm1997",
        hidden_size=1,
        cell_params=net,
        input_to_output=True,
        lr=0.5,
        cell_joins_at_plateau=window,
        **ONLINE,
        **changes,
    )


def test_the_cell_is_inert_until_the_loss_stops_decreasing_then_joins_and_learns():
    """Before the join the outputs see the inputs only: the cell's weights and the readout's
    weights from it keep their initial values (no error reaches them).  It joins at the first
    window whose mean loss is less than 1 % below the window before's (recomputed here from the
    per-step losses), and trains from then on; the run records the step."""
    window = 8
    config = growing(window, max_steps=120, eval_every=1)
    initial = build_model(config)
    cell_keys = [k for k in initial.state_dict() if k.startswith("cell.") or k == "readout.weight"]
    seen = []

    def record(ctx: ProbeContext) -> None:
        weights = {k: ctx.model.state_dict()[k].clone() for k in cell_keys}
        seen.append((ctx.step, ctx.model.cell_in, weights))

    result = train(config, [record], progress=False)
    losses = result.history["train_loss"].to_numpy()[1:]  # one step per row; row 0 is step 0
    means = [losses[k - window : k].mean() for k in range(window, len(losses) + 1, window)]
    first = next(n for n in range(1, len(means)) if means[n] > (1 - PLATEAU_TOLERANCE) * means[n - 1])
    expected = (first + 1) * window
    assert result.cell_joined_step == expected < config.max_steps
    assert result.summary()["cell_joined_step"] == expected
    for step, cell_in, weights in seen:
        assert cell_in == (step >= expected)
        if step <= expected:  # the join comes after that step's update
            assert all(torch.equal(weights[k], initial.state_dict()[k]) for k in cell_keys)
    final = result.state_dict
    assert bool(final["cell_joined"]) and not torch.equal(final["cell.weight_ih"], initial.cell.weight_ih)


def test_before_the_join_the_outputs_do_not_depend_on_the_cell():
    model = build_model(growing(max_steps=1))
    inputs = growing(max_steps=1).make_task().sample(4, torch.Generator().manual_seed(0)).inputs
    before = model(inputs)
    with torch.no_grad():
        model.cell.weight_ih.add_(1.0)
    assert torch.equal(model(inputs), before)
    model.join_cell()
    assert not torch.equal(model(inputs), before)


def test_a_net_with_its_cell_from_the_start_cannot_join_it_and_records_no_join():
    config = tiny()
    with pytest.raises(ValueError, match="join_cell\\(\\) is invalid here"):
        build_model(config).join_cell()
    assert "cell_joined" not in build_model(config).state_dict()  # checkpoints of such nets unchanged
    assert train(config, progress=False).cell_joined_step is None


def test_a_grown_net_reloads_with_its_cell_joined(tmp_path):
    config = growing(max_steps=60)
    result = train(config, progress=False)
    assert result.cell_joined_step is not None
    path = save_checkpoint(tmp_path / "checkpoint.pt", result.state_dict, config.to_dict())
    loaded, _ = load_model(path)
    assert loaded.cell_in and not build_model(config).cell_in


# -- learning ---------------------------------------------------------------------------------

# One budget for both: the LSTM must beat a tenth of the memoryless baseline within it, the tanh
# RNN must not get away from the baseline of the copy task with delay 100 (Arjovsky et al. 2016).
LEARNING_BUDGET = dict(
    hidden_size=32, optimizer="adam", lr=1e-2, batch_size=32, max_steps=1200, eval_every=50
)


@pytest.mark.slow
def test_lstm_learns_the_adding_problem():
    config = TrainConfig(task="adding", task_params={"length": 50}, cell="lstm", **LEARNING_BUDGET)
    result = train(config, progress=False)
    assert result.final_metrics["loss"] < 0.1 * config.make_task().baseline_loss()
    assert result.status == "solved"


@pytest.mark.slow
def test_tanh_rnn_stays_at_the_baseline_of_the_long_copy_task():
    config = TrainConfig(task="copy", task_params={"delay": 100}, cell="rnn", **LEARNING_BUDGET)
    result = train(config, progress=False)
    assert result.status == "budget_exhausted"
    assert result.history["loss_ratio"].iloc[1:].min() > 0.9
    assert result.final_metrics["loss_ratio"] < 1.1  # it did learn the memoryless strategy


@pytest.mark.parametrize("cell", ["exprnn", "urnn"])
def test_orthogonal_parameters_step_at_their_own_learning_rate(cell):
    config = TrainConfig(
        task="adding",
        task_params={"length": 6},
        cell=cell,
        hidden_size=4,
        optimizer="sgd",
        momentum=0.0,
        lr=0.1,
        orthogonal_lr=0.001,
        max_steps=1,
    )
    model = build_model(config)
    optimizer = make_optimizer(config, model)
    orthogonal = {id(p) for p in model.cell.orthogonal_parameters()}
    assert orthogonal and [len(g["params"]) for g in optimizer.param_groups] == [
        len(list(model.parameters())) - len(orthogonal),
        len(orthogonal),
    ]
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    before = {id(p): (p.detach().clone(), p.grad.clone()) for p in model.parameters()}
    optimizer.step()
    for p in model.parameters():  # plain SGD: p - lr * grad, with the group's lr
        start, grad = before[id(p)]
        lr = 0.001 if id(p) in orthogonal else 0.1
        torch.testing.assert_close(p.detach(), start - lr * grad, rtol=0, atol=1e-7)


def test_without_orthogonal_lr_one_group_in_parameter_order():
    config = TrainConfig(task="adding", task_params={"length": 6}, cell="exprnn", hidden_size=4, max_steps=1)
    model = build_model(config)
    (group,) = make_optimizer(config, model).param_groups
    assert group["params"] == list(model.parameters()) and group["lr"] == config.lr
