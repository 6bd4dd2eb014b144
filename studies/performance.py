"""Every benchmark of seqmem in one run: one table of ratios, saved as JSON/CSV and drawn in a report.

Runs ``run(quick)`` of each module in ``benchmarks/`` (task sampling, training step vs bare
torch.nn, analysis cost, sweep scaling) one after the other in this process, so all ratios come
from the same machine state.  Each module measures both sides of its ratios itself, interleaved;
this script only gathers, records the machine (cores, torch version and threads, the 1-minute
load average before and after each area, the date), and reports:

    <out>/performance.json   {"machine": ..., "quick": ..., "errors": ..., "records": [one per row]}
    <out>/performance.csv    the same rows
    <out>/performance.png/.svg  ratio per row on a log axis, the target marked, colour = status
    <out>/index.html         the figure and the table

A missed target is printed (one line each) but is not an error: a benchmark reports, it does not
assert.  The exit status is 1 only when a benchmark module itself raised (its traceback is kept in
the JSON and the other areas still run).  This is not a ``seqmem run`` study (no grid to sweep):

    python studies/performance.py [--quick] [--only tasks,training,analysis,sweep] [--out DIR]
"""

from __future__ import annotations

import argparse
import html
import importlib
import os
import platform
import re
import sys
import textwrap
import traceback
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from seqmem.io import atomic_write, write_json
from seqmem.report.html import CSS, FigureSpec, figure_section
from seqmem.report.style import new_figure, styled
from seqmem.report.tables import html_table

# area -> module with ``run(quick: bool) -> DataFrame``, imported only when its area runs (a module
# that no longer imports is then recorded like one that raises, and the other areas still run)
AREAS: dict[str, str] = {
    "tasks": "benchmarks.tasks",
    "training": "benchmarks.training",
    "analysis": "benchmarks.analysis",
    "sweep": "benchmarks.sweep",
}
COLUMNS = ["benchmark", "case", "ours_s", "reference_s", "ratio", "target", "meets_target", "note"]
# Okabe & Ito colours, as in seqmem.report.style: blue = good, vermillion = bad
STATUS_COLORS = {"met": "#0072B2", "missed": "#D55E00", "no target": "#999999"}
SHOWN = ["area", "benchmark", "case", "ours_s", "reference_s", "ratio", "target", "status"]
_TARGET = re.compile(r"^\s*(<=|>=)\s*([-+0-9.eE]+)\s*x?\s*$")


def parse_target(target: str) -> tuple[str, float] | None:
    """``"<= 0.05"`` -> ``("<=", 0.05)``, ``">= 1.7x"`` -> ``(">=", 1.7)``; None when there is none."""
    match = _TARGET.match(str(target))
    return (match[1], float(match[2])) if match else None


def select_areas(only: str | None) -> list[str]:
    """The areas named in ``--only`` (comma separated), in their canonical order; all when None."""
    if only is None:
        return list(AREAS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in AREAS]
    if unknown or not names:
        raise ValueError(f"only: got {only!r}; allowed: a comma-separated subset of {', '.join(AREAS)}")
    return [area for area in AREAS if area in names]


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: cores, torch and its threads, the load right now, the date."""
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_start": _load(),
    }


def run_area(area: str, quick: bool) -> pd.DataFrame:
    """One module's table with the area and the load average before/after it as extra columns."""
    load_start = _load()
    table = importlib.import_module(AREAS[area]).run(quick)
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{AREAS[area]}.run: columns {missing} missing; expected {COLUMNS}")
    return table[COLUMNS].assign(area=area, load_start=load_start, load_end=_load())


def gather(areas: Sequence[str], quick: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the areas in order; return the tidy table and ``{"machine", "quick", "errors"}``.

    A module that raises is recorded under ``errors`` (area -> traceback) and the others still run.
    """
    machine = machine_info()
    tables, errors = [], {}
    bar = tqdm(areas, desc="benchmarks", unit="area")
    for area in bar:
        bar.set_postfix_str(area)
        try:
            tables.append(run_area(area, quick))
        except Exception:  # one broken benchmark must not lose the others' minutes of measurement
            errors[area] = traceback.format_exc()
    machine["load_end"] = _load()
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=[*COLUMNS, "area"])
    table = table.assign(
        meets_target=table["meets_target"].astype(bool),
        status=[_status(t, m) for t, m in zip(table["target"], table["meets_target"], strict=True)],
        date=machine["date"],
        cpu_count=machine["cpu_count"],
        torch_version=machine["torch_version"],
        torch_threads=machine["torch_threads"],
    )
    first = ["area", *COLUMNS, "status"]
    return table[first + [c for c in table.columns if c not in first]], {
        "machine": machine,
        "quick": quick,
        "errors": errors,
    }


def _status(target: str, meets: bool) -> str:
    if parse_target(target) is None:
        return "no target"
    return "met" if meets else "missed"


def missed_lines(table: pd.DataFrame) -> list[str]:
    """One line per missed target."""
    return [
        f"MISSED  {row.area}: {row.benchmark} [{row.case}]: ratio {row.ratio:.4g}, target {row.target}"
        for row in table[table["status"] == "missed"].itertuples()
    ]


def _labels(table: pd.DataFrame) -> list[str]:
    labels = ["\n".join(textwrap.wrap(f"{row.benchmark} · {row.case}", 60)) for row in table.itertuples()]
    # a repeated label would make seaborn average two rows into one bar
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        labels[i] = label if seen[label] == 1 else f"{label} (#{seen[label]})"
    return labels


@styled
def figure(table: pd.DataFrame) -> Figure:
    """One horizontal bar per row: the ratio on a log axis, the target as a black tick on its row,
    colour = status (met / missed / no target); areas separated by lines."""
    data = table.reset_index(drop=True).assign(label=_labels(table))
    fig, axes = new_figure(1, 1, panel=(10.0, 0.42 * len(data) + 1.4))
    ax = axes[0, 0]
    sns.barplot(
        data=data,
        x="ratio",
        y="label",
        hue="status",
        hue_order=[s for s in STATUS_COLORS if s in set(data["status"])],
        palette=STATUS_COLORS,
        dodge=False,
        errorbar=None,
        saturation=1.0,
        orient="h",
        ax=ax,
    )
    ax.set_xscale("log")
    targets = [parse_target(t) for t in data["target"]]
    rows = [i for i, t in enumerate(targets) if t is not None]
    ax.scatter(
        [targets[i][1] for i in rows],
        rows,
        marker="|",
        s=260,
        linewidths=2.2,
        color="black",
        zorder=3,
        label="target",
    )
    for i, row in data.iterrows():
        # right of the bar and of the target tick, so neither hides the text
        x = max(row["ratio"], targets[i][1] if targets[i] else 0.0)
        ax.annotate(
            f"{row['ratio']:.3g}  ({row['target']})",
            (x, i),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    for i in np.flatnonzero(data["area"].to_numpy()[1:] != data["area"].to_numpy()[:-1]):
        ax.axhline(i + 0.5, color="0.6", linewidth=0.8)
    ax.axvline(1.0, color="0.3", linestyle=":", linewidth=1.0)  # parity
    ax.set(xlabel="ratio (log scale; dotted: 1; each row's target gives its direction)", ylabel="")
    ax.margins(x=0.25)
    ax.set_ylim(len(data) - 0.5, -0.5)  # the target ticks must not widen the rows' band
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=4, frameon=False)
    return fig


def print_table(table: pd.DataFrame, info: dict[str, Any]) -> None:
    with pd.option_context(
        "display.width", 250, "display.max_colwidth", 70, "display.float_format", "{:.4g}".format
    ):
        print(table[SHOWN].to_string(index=False))
    machine = info["machine"]
    print(
        f"\n{machine['date']} · {machine['cpu_count']} cores · torch {machine['torch_version']} "
        f"({machine['torch_threads']} threads) · load average {machine['load_start']:.2f} at the start, "
        f"{machine['load_end']:.2f} at the end"
    )
    for line in missed_lines(table):
        print(line)
    for area, error in info["errors"].items():
        print(f"ERROR   {area}: {error.strip().splitlines()[-1]}")


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    # NaN -> null: json.dumps would write NaN, which is not JSON
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")


def _page(table: pd.DataFrame, info: dict[str, Any], out: Path) -> str:
    spec = FigureSpec(
        "performance",
        "Ratios of every benchmark",
        "One bar per measurement: its ratio (ours / reference unless its note says otherwise), on a "
        "log axis; black tick: the target.  Each ratio was measured with both sides interleaved in "
        "this one run.",
        "at least one benchmark row",
        lambda *_: figure(table) if not table.empty else None,
    )
    machine = info["machine"]
    facts = " · ".join(f"{html.escape(str(k))} {html.escape(str(v))}" for k, v in machine.items())
    missed = "".join(f"<li>{html.escape(line)}</li>" for line in missed_lines(table))
    errors = "".join(
        f"<h3>{html.escape(area)}</h3><pre>{html.escape(error)}</pre>"
        for area, error in info["errors"].items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>seqmem performance</title>
<style>{CSS}</style></head><body>
<h1>seqmem performance</h1>
<p class="meta">{"quick" if info["quick"] else "full"} run · {facts}</p>
{f'<h2>Missed targets</h2><ul class="note">{missed}</ul>' if missed else ""}
{f"<h2>Benchmarks that failed</h2>{errors}" if errors else ""}
<h2>Figure</h2>
{figure_section(spec, (), out)}
<h2>Table</h2>
{html_table(table[[*SHOWN, "note", "load_start", "load_end"]])}
<p><a href="performance.json">performance.json</a> · <a href="performance.csv">performance.csv</a></p>
</body></html>
"""


def save(table: pd.DataFrame, info: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    """Write performance.json, performance.csv, the figure (PNG + SVG) and index.html into ``out``;
    return the path of index.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "performance.json", {**info, "records": _records(table)})
    atomic_write(out / "performance.csv", lambda tmp: table.to_csv(tmp, index=False))
    page = _page(table, info, out)
    return atomic_write(out / "index.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's quick mode (fewer repeats)")
    parser.add_argument("--only", default=None, help=f"comma-separated areas (default: {','.join(AREAS)})")
    parser.add_argument("--out", type=Path, default=Path("results/performance"), help="output folder")
    args = parser.parse_args(argv)
    try:
        areas = select_areas(args.only)
    except ValueError as error:
        parser.error(str(error))
    table, info = gather(areas, args.quick)
    print_table(table, info)
    index = save(table, info, args.out)
    print(f"saved {args.out / 'performance.json'}, {args.out / 'performance.csv'}; report {index}")
    return 1 if info["errors"] else 0


if __name__ == "__main__":
    # benchmarks/ lies beside studies/ in the repository, outside the installed package, and a
    # script's import path starts at studies/: the repository root goes first.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
