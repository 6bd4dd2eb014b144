"""The ``seqmem`` command.

    seqmem tasks list
    seqmem tasks show NAME [--param value ...] [--seed N]
    seqmem train --task adding --length 100 --cell lstm --hidden-size 128 --steps 3000 [--seed N] [--out DIR]
    seqmem run studies/NAME.py [--preset quick] [--out DIR] [--executor local|dask] [--scheduler ADDR] ...
    seqmem report RESULTS_DIR

This is the one layer that both runs studies and renders reports: ``main_for_study`` (the
command line of every ``studies/*.py`` script, also behind ``seqmem run``) sweeps a study, then
renders its report; ``load_study_module`` imports a study script by path.

Each subcommand is a function in ``COMMANDS`` that adds its parser to the subparsers and sets
``run`` (``args -> exit status``) as a default; a new subcommand is one more entry.  Options
are generated from the dataclasses they fill: every ``TrainConfig`` field is a ``train``
option (``--hidden-size``, ``--max-steps`` ...), and every parameter of a registered task is
an option of ``tasks show`` and ``train`` (``--delay``, ``--length`` ...), converted to that
field's type.  Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import torch

import tasks
from seqmem.cells import cell_names
from seqmem.config import OPTIMIZERS, TrainConfig
from seqmem.io import atomic_write, save_checkpoint
from seqmem.report import render_report
from seqmem.sweep import Study, run_statuses, run_study
from seqmem.train import train
from tasks.base import Task, check_fields

__all__ = ["COMMANDS", "build_parser", "main", "main_for_study", "load_study_module"]

PARAM = "param:"  # argparse dest prefix of task parameters
FIELD = "field:"  # argparse dest prefix of TrainConfig fields
ALIASES = {"max_steps": ["--steps"], "max_sequences": ["--sequences"]}
FIELD_HELP = {
    "task": f"one of {', '.join(tasks.task_names())}",
    "cell": f"one of {', '.join(cell_names())}",
    "optimizer": f"one of {', '.join(OPTIMIZERS)}",
    "max_steps": "budget in optimiser steps",
    "max_sequences": "budget in training sequences",
    "grad_clip": "max global gradient norm, or none",
    "max_loss_ratio": "diverged once a training loss exceeds this x the memoryless baseline, or none",
}


class UsageError(Exception):
    """A command-line mistake, reported by ``main`` as one line."""


class Parser(argparse.ArgumentParser):
    """argparse without the usage block on errors: ``main`` prints one line and exits with 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# -- converting option text to dataclass field types ----------------------------------------------


def parse_value(flag: str, text: str, hint: Any) -> Any:
    """``text`` as the type ``hint`` of a dataclass field: int, float, str, bool, a Literal of
    strings, or any of these ``| None`` (spelled 'none')."""
    options = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in options
    if optional:
        if text.lower() == "none":
            return None
        (hint,) = (option for option in options if option is not type(None))
    if typing.get_origin(hint) is Literal:
        hint = type(typing.get_args(hint)[0])
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if hint is bool and text.lower() in words:
        return words[text.lower()]
    if hint in (int, float, str):
        try:
            return hint(text)
        except ValueError:
            pass
    allowed = {int: "an integer", float: "a number", bool: "true or false"}.get(hint, "a string")
    raise UsageError(f"{flag}={text!r} is invalid: must be {allowed}{' or none' if optional else ''}")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def task_classes() -> dict[str, type[Task]]:
    """The registered task classes by name, found among the ``tasks`` package's exports."""
    exported = [getattr(tasks, name) for name in tasks.__all__]
    by_name = {getattr(c, "name", None): c for c in exported if isinstance(c, type) and issubclass(c, Task)}
    return {name: by_name[name] for name in tasks.task_names()}


def add_task_params(parser: argparse.ArgumentParser) -> None:
    """One option per parameter name of any registered task (values parsed later, per task)."""
    owners: dict[str, list[str]] = {}
    for name, cls in task_classes().items():
        for f in dataclasses.fields(cls):
            owners.setdefault(f.name, []).append(name)
    group = parser.add_argument_group("task parameters (see `seqmem tasks list`)")
    for param, names in owners.items():
        group.add_argument(
            flag(param), dest=PARAM + param, metavar="VALUE", default=argparse.SUPPRESS, help=", ".join(names)
        )


def given(args: argparse.Namespace, prefix: str) -> dict[str, str]:
    """The options under ``prefix`` that were given, by field name (not yet converted)."""
    return {dest.removeprefix(prefix): text for dest, text in vars(args).items() if dest.startswith(prefix)}


def task_params(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The task parameters given on the command line, typed for task ``name``."""
    texts = given(args, PARAM)
    cls = task_classes().get(name)
    if cls is None:  # an unknown task name: let the config or the registry say so
        return texts
    check_fields(f"task {name!r}", cls, texts, spell=flag)
    hints = typing.get_type_hints(cls)
    return {param: parse_value(flag(param), text, hints[param]) for param, text in texts.items()}


# -- seqmem tasks ---------------------------------------------------------------------------------


def signature(cls: type[Task]) -> str:
    params = [
        f.name if f.default is dataclasses.MISSING else f"{f.name}={f.default!r}"
        for f in dataclasses.fields(cls)
    ]
    return f"{cls.__name__}({', '.join(params)})"


def run_tasks_list(args: argparse.Namespace) -> int:
    for name, cls in task_classes().items():
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:<20} {signature(cls)}\n{'':<20} {summary}")
    return 0


def run_tasks_show(args: argparse.Namespace) -> int:
    task = tasks.make_task(args.name, **task_params(args, args.name))
    print(task.describe(torch.Generator().manual_seed(args.seed)))
    return 0


def add_tasks_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="list the tasks or show an example of one")
    commands = parser.add_subparsers(dest="tasks_command", required=True, metavar="{list,show}")
    commands.add_parser("list", help="the task names and their parameters").set_defaults(run=run_tasks_list)
    show = commands.add_parser("show", help="print one example of a task: what the model must remember")
    show.add_argument("name", metavar="NAME", help=f"one of {', '.join(tasks.task_names())}")
    show.add_argument("--seed", type=int, default=0, help="seed of the example (default: 0)")
    add_task_params(show)
    show.set_defaults(run=run_tasks_show)


# -- seqmem train ---------------------------------------------------------------------------------


def add_train_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one model on one task")
    group = parser.add_argument_group("training (TrainConfig fields)")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "task_params":
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = "" if required else f"default: {f.default}"
        group.add_argument(
            flag(f.name),
            *ALIASES.get(f.name, []),
            dest=FIELD + f.name,
            metavar="VALUE",
            required=required,
            default=argparse.SUPPRESS,
            help="; ".join(text for text in (FIELD_HELP.get(f.name, ""), default) if text),
        )
    add_task_params(parser)
    parser.add_argument("--out", type=Path, help="write history.csv and checkpoint.pt to this folder")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: when a terminal)"
    )
    parser.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    hints = typing.get_type_hints(TrainConfig)
    fields = {name: parse_value(flag(name), text, hints[name]) for name, text in given(args, FIELD).items()}
    config = TrainConfig(**fields, task_params=task_params(args, fields["task"]))
    result = train(config, progress=args.progress)
    print(
        f"{config.cell} on {config.make_task()}: {result.status} after {result.steps} steps "
        f"({result.sequences_seen} sequences, {result.elapsed_s:.1f} s)"
    )
    for name, value in result.final_metrics.items():
        print(f"  {name:<12} {value:.6g}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        history = atomic_write(args.out / "history.csv", lambda p: result.history.to_csv(p, index=False))
        checkpoint = save_checkpoint(args.out / "checkpoint.pt", result.state_dict, config.to_dict())
        print(f"wrote {history} and {checkpoint}")
    return 0


# -- seqmem run / seqmem report ---------------------------------------------------------------------


def add_run_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a study script's sweep (resumably), then render its report",
        description="Everything after STUDY goes to the study's own command line "
        "(--preset, --out, --executor, --scheduler, --workers, --retry-failed, --no-report).",
    )
    parser.add_argument(
        "study", type=Path, metavar="STUDY", help="a study script, e.g. studies/gradient_decay.py"
    )
    parser.add_argument("study_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run_study_script)


def run_study_script(args: argparse.Namespace) -> int:
    return main_for_study(load_study_module(args.study), args.study_args)


def add_report_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="render the figures and HTML report of a results folder")
    parser.add_argument("study_dir", type=Path, metavar="RESULTS_DIR", help="e.g. results/gradient_decay")
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    if not (args.study_dir / "study.json").is_file():
        raise UsageError(
            f"RESULTS_DIR={str(args.study_dir)!r} is invalid: must be a study folder containing study.json"
        )
    print(render_report(args.study_dir))
    return 0


# -- study scripts -------------------------------------------------------------------------------------


def load_study_module(path: str | Path) -> Study:
    """Import a study script (studies/NAME.py) by path and return its module-level ``STUDY``."""
    path = Path(path)
    if path.suffix != ".py" or not path.is_file():
        raise ValueError(f"path={str(path)!r} is invalid: must be an existing .py study script")
    name = f"seqmem_study_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses defined in the script look their module up by name
    spec.loader.exec_module(module)
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise ValueError(
            f"{path}: STUDY={type(study).__name__} is invalid: must be a module-level seqmem.sweep.Study"
        )
    return study


def main_for_study(study: Study, argv: list[str] | None = None) -> int:
    """Command line of a study script: run the sweep, then render its report.  Returns the exit
    status: 1 if any run failed, else 0."""
    parser = argparse.ArgumentParser(description=f"Run the {study.name!r} study, then render its report.")
    parser.add_argument(
        "--preset", default="quick" if "quick" in study.presets else None, choices=list(study.presets) or None
    )
    parser.add_argument("--out", default="results", help="results folder (default: results)")
    parser.add_argument("--executor", default="local", choices=["local", "dask"])
    parser.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    parser.add_argument("--retry-failed", action="store_true", help="redo runs recorded as failed")
    parser.add_argument("--no-report", action="store_true", help="skip rendering the report")
    args = parser.parse_args(argv)
    try:
        study_dir = run_study(
            study,
            preset=args.preset,
            out=args.out,
            executor=args.executor,
            workers=args.workers,
            scheduler=args.scheduler,
            retry_failed=args.retry_failed,
        )
    except ValueError as err:
        parser.error(str(err))
    if not args.no_report:
        print(f"report: {render_report(study_dir)}")
    statuses = run_statuses(study_dir, study.grid(args.preset)).values()
    return 1 if any(status in (None, "failed") for status in statuses) else 0


# -- entry point ----------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "tasks": add_tasks_command,
    "train": add_train_command,
    "run": add_run_command,
    "report": add_report_command,
}


def build_parser() -> Parser:
    parser = Parser(prog="seqmem", description="Long-term memory in recurrent networks.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for add_command in COMMANDS.values():
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``seqmem`` command; returns the exit status (2 for bad input, after one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (UsageError, ValueError, OSError) as error:
        print(f"seqmem: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
