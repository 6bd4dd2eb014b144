"""seqmem/config.py: TrainConfig, ProbeConfig and RunConfig validation and round trips, and run
identity: the run ids 0.1.0 wrote are an on-disk contract that later fields must not break."""

import dataclasses
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tasks
from seqmem.config import SINCE, ProbeConfig, RunConfig, TrainConfig, identity_dict

REPO = Path(__file__).absolute().parents[1]

# config.json of a run written by seqmem 0.1.0 (studies/gradient_decay.py --preset quick, its
# first run), as it lies in users' results folders: the fields 0.1.0 had, and the run id that
# names the folder.  Any field added since must be a ``later_field``, so that this id holds.
CONFIG_JSON_0_1_0 = {
    "probe": {
        "batch_size": 64,
        "dtype": "float64",
        "every_n_evals": 3,
        "jacobian_batch_size": 8,
        "lyapunov_k": 16,
        "quantities": [
            "grad_norm",
            "input_saliency",
            "jacobian",
            "forget_product",
            "gates",
            "lyapunov",
            "gradient_bound",
        ],
        "reference": "last",
    },
    "run_id": "9b6304316ea5",
    "train": {
        "batch_size": 32,
        "cell": "rnn",
        "device": "cpu",
        "eval_batch_size": 256,
        "eval_every": 100,
        "grad_clip": 1.0,
        "hidden_size": 64,
        "lr": 0.01,
        "max_sequences": None,
        "max_steps": 1500,
        "momentum": 0.9,
        "optimizer": "adam",
        "seed": 0,
        "solve_patience": 1,
        "stop_when_solved": True,
        "stopping": "eval",
        "task": "adding",
        "task_params": {"length": 100, "variant": "arjovsky2016"},
    },
}


def tiny(**changes) -> TrainConfig:
    base = dict(task="adding", task_params={"length": 12}, cell="lstm", hidden_size=8, max_steps=5)
    return TrainConfig(**{**base, **changes})


def run(**changes) -> RunConfig:
    fields = {"task": "adding", "task_params": {"length": 20}, "cell": "lstm", "max_steps": 10, **changes}
    return RunConfig(TrainConfig(**fields))


# -- TrainConfig ------------------------------------------------------------------------------

INVALID = [
    ("task", "nope"),
    ("task", 3),
    ("task_params", {"length": 1}),  # the task's own check
    ("task_params", {"delay": 5}),  # not a parameter of adding
    ("task_params", {}),  # adding needs a length
    ("task_params", {"length": [12]}),
    ("task_params", [("length", 12)]),
    ("cell", "transformer"),
    ("hidden_size", 0),
    ("hidden_size", 8.0),
    ("hidden_size", True),
    ("optimizer", "lbfgs"),
    ("lr", 0.0),
    ("lr", -1e-3),
    ("lr", float("nan")),
    ("lr", float("inf")),
    ("lr", "0.1"),
    ("momentum", 1.0),
    ("momentum", -0.1),
    ("batch_size", 0),
    ("max_steps", 0),
    ("max_steps", 2.5),
    ("max_steps", None),  # and max_sequences None: no budget at all
    ("max_sequences", 0),
    ("grad_clip", 0.0),
    ("grad_clip", float("inf")),
    ("eval_every", 0),
    ("eval_batch_size", 0),
    ("solve_patience", 0),
    ("stop_when_solved", 1),
    ("stopping", "early"),
    ("stopping", None),
    ("seed", -1),
    ("seed", 2**63),
    ("device", "tpu"),
    ("device", "cuda:x"),
    ("device", 0),
    ("max_loss_ratio", 1.0),  # the memoryless baseline itself is no divergence
    ("max_loss_ratio", float("inf")),  # None switches the bound off
    ("max_loss_ratio", "1e6"),
    ("cell_params", {"block_size": 2}),  # lstm takes no options
    ("cell_params", [("block_size", 2)]),
    ("cell_params", {"block_size": [2, "x"]}),
    ("input_to_output", 1),
    ("model", "transformer"),
    ("loss_reduction", "max"),
    ("logistic_loss", "huber"),
    ("logistic_loss", "cross_entropy"),  # without logistic_output there is no logistic unit
    ("logistic_output", "yes"),
    ("readout_init_range", 0.0),
    ("readout_init_range", float("nan")),
    ("orthogonal_lr", 0.0),
    ("orthogonal_lr", float("nan")),
    ("orthogonal_lr", "1e-4"),
    ("cell_joins_at_plateau", 0),
    ("cell_joins_at_plateau", 500),  # without input_to_output the outputs would see nothing
]


@pytest.mark.parametrize(("name", "value"), INVALID, ids=[f"{n}={v!r}" for n, v in INVALID])
def test_invalid_field_is_a_one_line_value_error_naming_field_and_value(name, value):
    with pytest.raises(ValueError) as info:
        tiny(**{name: value})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{name}={value!r} is invalid: ")
    assert len(message) > len(f"{name}={value!r} is invalid: ") + 5  # says what is allowed


def test_task_params_are_completed_frozen_and_hashable():
    short = TrainConfig(task="copy", task_params={"delay": 5}, cell="rnn", max_steps=1)
    spelled_out = TrainConfig(
        task="copy", task_params={"n_symbols": 8, "delay": 5, "n_copy": 10}, cell="rnn", max_steps=1
    )
    assert short == spelled_out and hash(short) == hash(spelled_out)
    assert short.task_params == {"delay": 5, "n_copy": 10, "n_symbols": 8}
    assert short.make_task() == tasks.CopyTask(delay=5)
    with pytest.raises(TypeError):
        short.task_params["delay"] = 6


def test_cell_params_reach_the_preset_are_checked_by_it_and_round_trip():
    config = tiny(cell="lstm1997", hidden_size=4, cell_params={"block_size": 2, "input_gate_bias": [-3, -6]})
    assert config.cell_params == {"block_size": 2, "input_gate_bias": (-3, -6)} and hash(config)
    data = json.loads(json.dumps(RunConfig(config).to_dict()))
    assert data["train"]["cell_params"]["input_gate_bias"] == [-3, -6]
    again = RunConfig.from_dict(data)
    assert again.train == config and again.run_id == RunConfig(config).run_id
    with pytest.raises(
        ValueError, match=r"^cell_params=\{'block_size': 3\} is invalid: block_size=3 is invalid"
    ):
        tiny(cell="lstm1997", hidden_size=4, cell_params={"block_size": 3})


def test_cross_entropy_is_the_error_of_logistic_outputs():
    assert tiny(logistic_output=True, logistic_loss="cross_entropy").logistic_loss == "cross_entropy"
    with pytest.raises(
        ValueError, match=r"^logistic_loss='cross_entropy' is invalid: [^\n]+ logistic_output=False; [^\n]+$"
    ):
        tiny(logistic_loss="cross_entropy")


def test_logistic_outputs_need_a_regression_task():
    assert tiny(logistic_output=True).logistic_output  # adding: a regression task
    with pytest.raises(ValueError, match=r"^logistic_output=True is invalid for task 'copy': [^\n]+$"):
        tiny(task="copy", task_params={"delay": 5}, logistic_output=True)


def test_numbers_are_canonical():
    assert tiny(lr=1).to_dict() == tiny(lr=1.0).to_dict()
    assert isinstance(tiny(lr=1).lr, float)
    assert isinstance(tiny(max_loss_ratio=100).max_loss_ratio, float)


def test_to_dict_round_trips_through_json_and_pickle():
    config = tiny(
        task="copy",
        task_params={"delay": 7},
        grad_clip=None,
        optimizer="sgd",
        max_sequences=40,
        max_loss_ratio=None,
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert list(data) == [f.name for f in dataclasses.fields(TrainConfig)]
    assert TrainConfig.from_dict(data) == config
    assert pickle.loads(pickle.dumps(config)) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"task": "adding", "cell": "lstm", "max_steps": 1, "colour": "red"}, "colour='red' is invalid: "),
        ({"task": "adding"}, "cell is missing: TrainConfig requires it"),
    ],
)
def test_from_dict_rejects_unknown_and_missing_fields(data, message):
    with pytest.raises(ValueError) as info:
        TrainConfig.from_dict({"task_params": {"length": 10}, **data})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


# -- ProbeConfig ------------------------------------------------------------------------------


def test_probe_config_rejects_unknown_fields_and_round_trips():
    config = ProbeConfig(quantities=["grad_norm", "gates"], every_n_evals=3, dtype="float32")
    assert ProbeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"^colour='red' is invalid: ProbeConfig has no such field"):
        ProbeConfig.from_dict({"colour": "red"})


# -- RunConfig and run identity ---------------------------------------------------------------


def test_run_config_round_trips_and_rejects_unknown_and_missing_fields():
    config = RunConfig(tiny(seed=3), ProbeConfig(every_n_evals=2))
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.run_id == config.run_id
    assert RunConfig.from_dict({"train": tiny().to_dict()}) == RunConfig(tiny())  # probe: None
    with pytest.raises(ValueError, match=r"^probes=None is invalid: RunConfig has no such field"):
        RunConfig.from_dict({"train": tiny().to_dict(), "probes": None})
    with pytest.raises(ValueError, match=r"^train is missing: RunConfig requires it"):
        RunConfig.from_dict({"probe": None})


def test_run_id_is_stable_across_processes():
    config = run()
    code = (
        "import json, sys; from seqmem.config import RunConfig; "
        "print(RunConfig.from_dict(json.loads(sys.argv[1])).run_id)"
    )
    # A different hash seed would change any id built on hash().
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(config.to_dict())],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == config.run_id
    assert re.fullmatch(r"[0-9a-f]{12}", config.run_id)


@pytest.mark.parametrize(
    "changes",
    [
        {"seed": 1},
        {"lr": 2e-3},
        {"cell": "gru"},
        {"task_params": {"length": 21}},
        {"task_params": {"length": 20, "variant": "hochreiter1997"}},
        {"max_steps": None, "max_sequences": 320},
        {"max_loss_ratio": 1e3},
        {"max_loss_ratio": None},
        {"cell": "lstm1997", "cell_params": {"block_size": 2}},
        {"input_to_output": True},
        {"model": "chunker"},
        {"loss_reduction": "sequence_sum"},
        {"input_to_output": True, "cell_joins_at_plateau": 500},
    ],
)
def test_run_id_changes_with_the_config(changes):
    assert run(**changes).run_id != run().run_id


def test_run_id_ignores_spelling():
    # default task parameters spelled out, other key order, lr as an int: the same run
    same = run(task_params={"variant": "arjovsky2016", "length": 20}, lr=0.001)
    assert same.run_id == run().run_id
    assert RunConfig.from_dict(json.loads(same.canonical_json())).run_id == same.run_id


@pytest.mark.parametrize(
    ("cell", "task", "task_params", "max_steps", "seed", "run_id"),
    [
        ("rnn", "adding", {"length": 100}, 1500, 0, "9b6304316ea5"),
        ("lstm", "copy", {"delay": 50}, 1000, 1, "f7957890f766"),
        ("gru", "adding", {"length": 100}, 1500, 1, "c0675bf83b8b"),
    ],
)
def test_run_ids_written_by_0_1_0_are_kept(cell, task, task_params, max_steps, seed, run_id):
    # Runs of studies/gradient_decay.py --preset quick, with the folder names seqmem 0.1.0 gave
    # them: the on-disk contract that lets those folders resume.
    train = TrainConfig(
        task=task,
        task_params=task_params,
        cell=cell,
        hidden_size=64,
        lr=1e-2,
        max_steps=max_steps,
        eval_every=100,
        seed=seed,
    )
    probe = ProbeConfig(every_n_evals=3, batch_size=64, jacobian_batch_size=8, lyapunov_k=16)
    assert RunConfig(train, probe).run_id == run_id


def test_a_config_written_by_0_1_0_loads_with_its_id():
    written = {key: value for key, value in CONFIG_JSON_0_1_0.items() if key != "run_id"}
    loaded = RunConfig.from_dict(written)
    # 0.1.0's identity: the sha256 of exactly the dict it wrote, canonically serialised
    canonical = json.dumps(written, sort_keys=True, separators=(",", ":"))
    assert loaded.run_id == hashlib.sha256(canonical.encode()).hexdigest()[:12] == CONFIG_JSON_0_1_0["run_id"]
    assert loaded.train.max_loss_ratio == 1e6 and "max_loss_ratio" in loaded.to_dict()["train"]


@pytest.mark.parametrize(("cls", "part"), [(TrainConfig, "train"), (ProbeConfig, "probe")])
def test_fields_added_after_0_1_0_say_so_and_leave_the_identity_at_their_default(cls, part):
    old = list(CONFIG_JSON_0_1_0[part])
    later = [f for f in dataclasses.fields(cls) if f.name not in old]
    assert all(SINCE in f.metadata for f in later), [f.name for f in later if SINCE not in f.metadata]
    assert not [f.name for f in dataclasses.fields(cls) if f.name in old and SINCE in f.metadata]
    config = tiny() if cls is TrainConfig else ProbeConfig()
    assert sorted(identity_dict(config)) == sorted(old)


def test_orthogonal_lr_needs_a_cell_with_orthogonal_parameters():
    with pytest.raises(ValueError, match=r"^orthogonal_lr=0.0001 is invalid for cell 'rnn': it has no "):
        tiny(cell="rnn", orthogonal_lr=1e-4)
    for cell in ("exprnn", "urnn"):
        assert tiny(cell=cell, hidden_size=4, orthogonal_lr=1e-4).orthogonal_lr == 1e-4


def test_orthogonal_lr_enters_the_run_id_only_when_set():
    default, slower = tiny(cell="exprnn"), tiny(cell="exprnn", orthogonal_lr=1e-4)
    assert "orthogonal_lr" not in identity_dict(default) and identity_dict(slower)["orthogonal_lr"] == 1e-4
    assert RunConfig(default).run_id != RunConfig(slower).run_id
    assert TrainConfig.from_dict(slower.to_dict()) == slower
