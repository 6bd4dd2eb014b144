"""The ``seqmem`` command.

    seqmem tasks list
    seqmem tasks show NAME [--param value ...] [--seed N]
    seqmem train --task adding --length 100 --cell lstm --hidden-size 128 --steps 3000 [--seed N] [--out DIR]
                 [--tensorboard DIR]
    seqmem run studies/NAME.py [--preset quick] [--out DIR] [--executor local|dask|slurm]
                 [--tensorboard DIR] ...
    seqmem report RESULTS_DIR

This is the one layer that both runs studies and renders reports: ``main_for_study`` (the
command line of every ``studies/*.py`` script, also behind ``seqmem run STUDY``) sweeps a study,
then renders its report; ``load_study_module`` imports a study script by path.

Each subcommand is a function in ``COMMANDS`` that adds its parser to the subparsers and sets
``run`` (``args -> exit status``) as a default; a new subcommand is one more entry.  Options
are generated from the dataclasses they fill: every ``TrainConfig`` field is a ``train``
option (``--hidden-size``, ``--max-steps`` ...), and every parameter of a registered task is
an option of ``tasks show`` and ``train`` (``--delay``, ``--length`` ...), converted to that
field's type; their help gives each one's type, choices and default.

Exit status: 0; 1 when runs failed, are missing or could not be read; 2 for bad input (one line
on stderr naming the option, field or file); 130 after Ctrl-C.  Warnings are one line each.

(Over 500 lines: it declares every command's options with their help, and the study scripts'
command line; kept in one module because the options and the code that reads them change together.)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import sys
import traceback
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, NoReturn

import torch

import tasks
from seqmem import results
from seqmem.cells import cell_names
from seqmem.config import OPTIMIZERS, STOPPING_RULES, RunConfig, TrainConfig
from seqmem.io import check_writable
from seqmem.report import write_report
from seqmem.sweep import SlurmConfig, Study, run_statuses, run_study, train_run
from seqmem.sweep.runs import RunFn
from seqmem.tensorboard import GRADIENT_PROBE, require_tensorboard, tensorboard_run
from tasks.base import Task, check_fields, check_int

__all__ = ["COMMANDS", "build_parser", "main", "main_for_study", "load_study_module"]

PARAM = "param:"  # argparse dest prefix of task parameters
FIELD = "field:"  # argparse dest prefix of TrainConfig fields
ALIASES = {"max_steps": ["--steps"], "max_sequences": ["--sequences"]}
BUDGET = "a budget is required: give --max-steps and/or --max-sequences"
FIELD_HELP = {
    "max_steps": f"budget in optimiser steps; {BUDGET}",
    "max_sequences": f"budget in training sequences; {BUDGET}",
    "grad_clip": "max global gradient norm",
    "device": "a torch device: cpu, cuda, cuda:N or mps",
    "max_loss_ratio": "diverged once a training loss exceeds this x the memoryless baseline",
}
FIELD_CHOICES = {
    "task": tuple(tasks.task_names()),
    "cell": tuple(cell_names()),
    "optimizer": OPTIMIZERS,
    "stopping": STOPPING_RULES,
}
TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


class UsageError(Exception):
    """A command-line mistake, reported by ``main`` as one line."""


class Parser(argparse.ArgumentParser):
    """argparse without the usage block on errors: ``main`` prints one line and exits with 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# -- errors and warnings as one line --------------------------------------------------------------


def _warning_line(message: Warning | str, *_: object, **__: object) -> None:
    print(f"seqmem: warning: {message}", file=sys.stderr)


@contextmanager
def _one_line_messages() -> Iterator[None]:
    """Warnings as one line each (not the source line that raised them)."""
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        yield


def _exit_status(command: Callable[[], int]) -> int:
    """``command()``'s exit status, with every error a single line on stderr (2) and Ctrl-C 130."""
    with _one_line_messages():
        try:
            return command()
        except (UsageError, ValueError, OSError) as error:
            print(f"seqmem: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # the sweep has said what it kept
            return 130
        except SystemExit as exit_:  # --help
            return exit_.code if isinstance(exit_.code, int) else 0


# -- converting option text to dataclass field types ----------------------------------------------


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of a field hint such as ``int | None``."""
    options = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in options
    if optional:
        (hint,) = (option for option in options if option is not type(None))
    if typing.get_origin(hint) is Literal:
        hint = type(typing.get_args(hint)[0])
    return hint, optional


def parse_value(flag: str, text: str, hint: Any) -> Any:
    """``text`` as the type ``hint`` of a dataclass field: int, float, str, bool, a Literal of
    strings, or any of these ``| None`` (spelled 'none')."""
    hint, optional = _unwrap(hint)
    if optional and text.lower() == "none":
        return None
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if hint is bool and text.lower() in words:
        return words[text.lower()]
    if hint in (int, float, str):
        try:
            return hint(text)
        except ValueError:
            pass
    allowed = TYPE_WORDS.get(hint, "a string")
    raise UsageError(f"{flag}={text!r} is invalid: must be {allowed}{' or none' if optional else ''}")


def describe_field(hint: Any, default: Any, choices: Sequence[str] | None = None) -> str:
    """What a field takes and its default, for help texts: 'an integer (default: 10)',
    'one of eval, hochreiter1997 (default: eval)', 'a number or none (default: 1.0)',
    'an integer (required)'."""
    hint, optional = _unwrap(hint)
    kind = f"one of {', '.join(choices)}" if choices else TYPE_WORDS.get(hint, "a string")
    shown = (
        "required" if default is dataclasses.MISSING else f"default: {'none' if default is None else default}"
    )
    return f"{kind}{' or none' if optional else ''} ({shown})"


def metavar(hint: Any, choices: Sequence[str] | None = None) -> str:
    """The placeholder of an option in usage lines: NAME for a choice, else INT, FLOAT, BOOL or STR."""
    return "NAME" if choices else _unwrap(hint)[0].__name__.upper()


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def task_classes() -> dict[str, type[Task]]:
    """The registered task classes by name, found among the ``tasks`` package's exports."""
    exported = [getattr(tasks, name) for name in tasks.__all__]
    by_name = {getattr(c, "name", None): c for c in exported if isinstance(c, type) and issubclass(c, Task)}
    return {name: by_name[name] for name in tasks.task_names()}


def add_task_params(parser: argparse.ArgumentParser) -> None:
    """One option per parameter name of any registered task (values parsed later, per task); its
    help gives, per task that has it, the type, choices and default."""
    uses: dict[str, list[str]] = {}
    placeholders: dict[str, set[str]] = {}
    for name, cls in task_classes().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("choices")
            uses.setdefault(f.name, []).append(f"{name}: {describe_field(hints[f.name], f.default, choices)}")
            placeholders.setdefault(f.name, set()).add(metavar(hints[f.name], choices))
    group = parser.add_argument_group("task parameters (see `seqmem tasks list`)")
    for param, described in uses.items():
        (shown,) = placeholders[param] if len(placeholders[param]) == 1 else {"VALUE"}
        group.add_argument(
            flag(param),
            dest=PARAM + param,
            metavar=shown,
            default=argparse.SUPPRESS,
            help="; ".join(described),
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


def _writable(option: str, folder: Path) -> None:
    try:
        check_writable(folder)
    except OSError as error:
        raise UsageError(f"{option}={str(folder)!r} is invalid: cannot write there ({error})") from None


TENSORBOARD_HELP = (
    "log to TensorBoard under DIR/<run_id>: at every evaluation the loss, loss / baseline, the "
    "training gradient norm and the task's metrics, and at every probe the gradient-decay curve "
    "(||dL/dh_t|| by lag) as an image; view with `tensorboard --logdir DIR`; needs "
    "`pip install 'seqmem[tensorboard]'`"
)


def run_function(tensorboard: Path | None) -> RunFn:
    """How each run is trained: ``train_run``, or with ``--tensorboard DIR`` the same logged under
    DIR/<run_id> (a partial of a module-level function, so process and dask workers can import
    it).  Checked before any training: TensorBoard is installed and DIR is writable."""
    if tensorboard is None:
        return train_run
    try:
        require_tensorboard()
    except ImportError as error:
        raise UsageError(f"--tensorboard is unavailable: {error}") from None
    _writable("--tensorboard", tensorboard)
    return functools.partial(tensorboard_run, log_dir=tensorboard.resolve())


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
    check_int("--seed", args.seed, 0, 2**63 - 1)  # the seeds TrainConfig accepts
    task = tasks.make_task(args.name, **task_params(args, args.name))
    print(task.describe(torch.Generator().manual_seed(args.seed)))
    return 0


def add_tasks_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="list the tasks or show an example of one")
    commands = parser.add_subparsers(dest="tasks_command", required=True, metavar="{list,show}")
    commands.add_parser("list", help="the task names and their parameters").set_defaults(run=run_tasks_list)
    show = commands.add_parser("show", help="print one example of a task: what the model must remember")
    show.add_argument("name", metavar="NAME", help=f"one of {', '.join(tasks.task_names())}")
    show.add_argument(
        "--seed", type=int, default=0, metavar="INT", help="seed of the example, >= 0 (default: 0)"
    )
    add_task_params(show)
    show.set_defaults(run=run_tasks_show)


# -- seqmem train ---------------------------------------------------------------------------------


def add_train_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one model on one task",
        description=f"Train one model on one task ({BUDGET}).",
    )
    group = parser.add_argument_group("training (TrainConfig fields)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "task_params":
            continue
        described = describe_field(hints[f.name], f.default, FIELD_CHOICES.get(f.name))
        group.add_argument(
            flag(f.name),
            *ALIASES.get(f.name, []),
            dest=FIELD + f.name,
            metavar=metavar(hints[f.name], FIELD_CHOICES.get(f.name)),
            required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            default=argparse.SUPPRESS,
            help="; ".join(text for text in (FIELD_HELP.get(f.name), described) if text),
        )
    add_task_params(parser)
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="store the run in DIR as a one-run study (config.json, metrics.parquet, checkpoint.pt, "
        "status.json under DIR/runs/<run_id>, and DIR/study.json), which `seqmem report DIR` and "
        "seqmem.results.load_study read; DIR is checked for writing before training",
    )
    parser.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help=f"{TENSORBOARD_HELP}; the run then records the gradient-norm probe (stored with --out "
        "too) (default: no logging)",
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: when a terminal)"
    )
    parser.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    hints = typing.get_type_hints(TrainConfig)
    fields = {name: parse_value(flag(name), text, hints[name]) for name, text in given(args, FIELD).items()}
    config = TrainConfig(**fields, task_params=task_params(args, fields["task"]))
    run = RunConfig(config, GRADIENT_PROBE if args.tensorboard is not None else None)
    run_fn = run_function(args.tensorboard)
    if args.out is not None:
        _writable("--out", args.out)  # before training: a run that cannot be stored is lost
    result = run_fn(run, args.progress)
    print(
        f"{config.cell} on {config.make_task()}: {result.status} after {result.steps} steps "
        f"({result.sequences_seen} sequences, {result.elapsed_s:.1f} s)"
    )
    for name, value in result.final_metrics.items():
        print(f"  {name:<12} {value:.6g}")
    if args.out is not None:
        name = args.out.resolve().name
        study = Study(
            name=name if Study.valid_name(name) else "train", base=config.to_dict(), probe=run.probe
        )
        results.write_study_info(args.out, study.info(None))
        path = results.write_run(
            args.out,
            run,
            history=result.history,
            probes=result.probes,
            state_dict=result.state_dict,
            outcome=result.summary(),
        )
        print(f"wrote {path} (`seqmem report {args.out}` renders it)")
    if args.tensorboard is not None:
        print(
            f"logged to {args.tensorboard / run.run_id} (`tensorboard --logdir {args.tensorboard}` shows it)"
        )
    return 0


# -- seqmem run / seqmem report ---------------------------------------------------------------------


def add_run_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a study script's sweep (resumably), then render its report",
        description="Run the sweep of the study script STUDY, then render its report.  The "
        "study's options (--preset, --out, --executor ...) follow STUDY: `seqmem run STUDY --help` "
        "lists them with the study's presets.",
    )
    parser.add_argument(
        "study", type=Path, nargs="?", metavar="STUDY", help="a study script, e.g. studies/gradient_decay.py"
    )
    parser.add_argument("study_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run_study_script)


def run_study_script(args: argparse.Namespace) -> int:
    if args.study is None:
        raise UsageError("STUDY is missing: give a study script, e.g. studies/gradient_decay.py")
    return main_for_study(load_study_module(args.study), args.study_args, prog=f"seqmem run {args.study}")


REPORT_HELP = (
    "writes RESULTS_DIR/report/index.html (self-contained: figures inlined, a summary per cell, "
    "failed and unreadable runs with their errors, the study's config) and every figure as PNG "
    "and SVG beside it; exit status 1 when runs are missing or unreadable"
)


def add_report_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render the figures and HTML report of a results folder",
        description=f"Render the report of a study's results folder: {REPORT_HELP}.",
    )
    parser.add_argument(
        "study_dir",
        type=Path,
        metavar="RESULTS_DIR",
        help="a study's results folder, e.g. results/gradient_decay",
    )
    parser.set_defaults(run=run_report)


def render(study_dir: Path) -> int:
    """Render the report of ``study_dir`` and print its path; 1 if runs are missing or
    unreadable (the report and the warnings list them), else 0."""
    frames = results.load_study(study_dir)
    if frames.runs.empty and frames.problems.run_id.isna().all():  # not even an unreadable run
        raise UsageError(f"RESULTS_DIR={str(study_dir)!r} is invalid: it holds no runs to report")
    _writable("RESULTS_DIR", study_dir / "report")
    print(f"report: {write_report(frames, frames.info, study_dir / 'report')}")
    if not frames.problems.empty:
        print(
            f"seqmem: warning: {len(frames.problems)} files are missing or unreadable (named above and "
            "listed in the report)",
            file=sys.stderr,
        )
    return 1 if not frames.problems.empty else 0


def run_report(args: argparse.Namespace) -> int:
    if not (args.study_dir / "study.json").is_file():
        raise UsageError(
            f"RESULTS_DIR={str(args.study_dir)!r} is invalid: must be a study folder containing study.json"
        )
    return render(args.study_dir)


# -- study scripts -------------------------------------------------------------------------------------


def _script_line(error: BaseException, path: Path) -> str:
    """':<line>' of the study script where ``error`` was raised (or its syntax error), or ''."""
    if isinstance(error, SyntaxError) and error.lineno is not None:
        return f":{error.lineno}"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == path]
    return f":{frames[-1].lineno}" if frames else ""


def load_study_module(path: str | Path) -> Study:
    """Import a study script (studies/NAME.py) by path and return its module-level ``STUDY``; a
    script that raises (a syntax error included) is a one-line ValueError naming file and line."""
    path = Path(path)
    if path.suffix != ".py" or not path.is_file():
        raise ValueError(f"path={str(path)!r} is invalid: must be an existing .py study script")
    name = f"seqmem_study_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses defined in the script look their module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        message = error.msg if isinstance(error, SyntaxError) else str(error)
        raise ValueError(
            f"{path}{_script_line(error, path.resolve())}: the study script raised "
            f"{type(error).__name__}: {(message.splitlines() or [''])[0]}"
        ) from None
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise ValueError(
            f"{path}: STUDY={type(study).__name__} is invalid: must be a module-level seqmem.sweep.Study"
        )
    return study


def study_parser(study: Study, prog: str | None = None) -> Parser:
    """The command line of a study script: its presets (with their sizes) and every sweep option."""
    parser = Parser(
        prog=prog, description=f"Run the {study.name!r} study (resumably), then render its report."
    )
    sizes = "; ".join(f"{name}: {len(study.grid(name))} runs" for name in study.presets)
    default = "quick" if "quick" in study.presets else None
    parser.add_argument(
        "--preset",
        default=default,
        choices=list(study.presets) or None,
        help=f"which grid to run ({sizes or 'the study has no presets'}; default: {default})",
    )
    parser.add_argument(
        "--out", default="results", metavar="DIR", help=f"results folder: DIR/{study.name} (default: results)"
    )
    parser.add_argument(
        "--executor",
        default="local",
        choices=["local", "dask", "slurm"],
        help="where the runs execute: local processes, a dask cluster, or SLURM jobs (default: local)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="INT",
        help="local processes, or LocalCluster workers (default: one per core)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a dask scheduler, e.g. tcp://host:8786 (default: a LocalCluster)",
    )
    parser.add_argument(
        "--wait-workers",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the first dask or SLURM worker before giving up (default: 600)",
    )
    parser.add_argument("--retry-failed", action="store_true", help="redo the runs stored as failed")
    parser.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help=f"{TENSORBOARD_HELP}; every run trained now is logged (runs stored already are not "
        "trained again, so not logged); dask and SLURM workers must share DIR (default: no logging)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip rendering the report")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: when a terminal)"
    )
    slurm = parser.add_argument_group(
        "SLURM jobs (with --executor slurm; needs `pip install 'seqmem[slurm]'`)",
        "Each job runs one single-threaded dask worker per core; runs lost at the walltime are redone.",
    )
    defaults = SlurmConfig()
    for name, metavar, kind, text in (
        ("cores", "INT", int, "CPU cores per job"),
        ("memory", "AMOUNT", str, "memory per job, e.g. 16GB"),
        ("walltime", "[D-]HH:MM:SS", str, "time limit per job"),
        ("queue", "PARTITION", str, "the partition"),
        ("jobs", "INT", int, "how many jobs to submit"),
    ):
        shown = getattr(defaults, name)
        slurm.add_argument(
            flag(name),
            type=kind,
            metavar=metavar,
            default=argparse.SUPPRESS,
            help=f"{text} (default: {'the cluster default' if shown is None else shown})",
        )
    slurm.add_argument(
        "--job-extra",
        action="append",
        metavar="OPTION",
        default=argparse.SUPPRESS,
        help="one more #SBATCH option, e.g. --job-extra=--account=lab (repeatable)",
    )
    return parser


def _slurm_config(args: argparse.Namespace) -> SlurmConfig | None:
    names = [f.name for f in dataclasses.fields(SlurmConfig)]
    options = {name: getattr(args, name) for name in names if hasattr(args, name)}
    if args.executor != "slurm":
        if options:
            raise UsageError(f"{flag(next(iter(options)))} is only used with --executor slurm")
        return None
    return SlurmConfig(**options)


def main_for_study(study: Study, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command line of a study script: run the sweep, then render its report.  Returns the exit
    status: 1 if any run failed or is missing, 2 for bad input, 130 after Ctrl-C, else 0."""

    def sweep() -> int:
        args = study_parser(study, prog).parse_args(argv)
        study_dir = run_study(
            study,
            preset=args.preset,
            out=args.out,
            executor=args.executor,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=args.progress,
            retry_failed=args.retry_failed,
            slurm=_slurm_config(args),
            wait_workers=args.wait_workers,
            run_fn=run_function(args.tensorboard),
        )
        report_status = 0 if args.no_report else render(study_dir)
        statuses = run_statuses(study_dir, study.grid(args.preset)).values()
        return 1 if any(status in (None, "failed") for status in statuses) else report_status

    return _exit_status(sweep)


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
    """Run the ``seqmem`` command; returns the exit status (see the module docstring)."""

    def command() -> int:
        args = build_parser().parse_args(argv)
        return args.run(args)

    return _exit_status(command)


if __name__ == "__main__":
    sys.exit(main())
