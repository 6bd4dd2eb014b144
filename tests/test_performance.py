"""studies/performance.py: gathering, saving, the figure and the report, on fake benchmark modules
(no real benchmark runs, no timings)."""

import importlib.util
import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.colors import to_rgba

SCRIPT = Path(__file__).resolve().parents[1] / "studies" / "performance.py"

# What each fake benchmark module returns: a met, a missed and a target-less row, across areas.
FAKE_ROWS = {
    "alpha": [
        {
            "benchmark": "sampling",
            "case": "copy T=1000",
            "ours_s": 0.002,
            "reference_s": 0.5,
            "ratio": 0.004,
            "target": "<= 0.05",
            "meets_target": True,
            "note": "fast enough",
        },
        {
            "benchmark": "flop_rate",
            "case": "lstm B=64",
            "ours_s": 0.1,
            "reference_s": 0.03,
            "ratio": 0.3,
            "target": "none",
            "meets_target": True,
            "note": "no target at this size",
        },
    ],
    "beta": [
        {
            "benchmark": "parallel_speedup",
            "case": "8 runs, 2 workers vs 1",
            "ours_s": 1.0,
            "reference_s": 1.5,
            "ratio": 1.5,
            "target": ">= 1.7x",
            "meets_target": False,
            "note": "ratio = reference / ours",
        },
    ],
}
EXPECTED_STATUS = {"sampling": "met", "flop_rate": "no target", "parallel_speedup": "missed"}


@pytest.fixture(scope="module")
def performance():
    spec = importlib.util.spec_from_file_location("performance_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_module(name, rows, calls):
    module = types.ModuleType(name)

    def run(quick=False):
        calls.append((name, quick))
        return pd.DataFrame(rows)

    module.run = run
    return module


@pytest.fixture
def fake_areas(monkeypatch, performance):
    """Replace the benchmark modules by fakes; returns the list of (module, quick) calls."""
    calls = []
    areas = {}
    for area, rows in FAKE_ROWS.items():
        name = f"fake_benchmark_{area}"
        monkeypatch.setitem(sys.modules, name, _fake_module(name, rows, calls))
        areas[area] = name
    monkeypatch.setattr(performance, "AREAS", areas)
    return calls


@pytest.fixture
def expected():
    """The fake rows as one frame, with their area, in run order."""
    return pd.concat(
        [pd.DataFrame(rows).assign(area=area) for area, rows in FAKE_ROWS.items()], ignore_index=True
    )


@pytest.fixture
def ran(performance, fake_areas, tmp_path, capsys):
    """main() run once on the fakes: (exit code, out folder, printed text, calls)."""
    code = performance.main(["--quick", "--out", str(tmp_path / "perf")])
    return code, tmp_path / "perf", capsys.readouterr().out, fake_areas


def test_every_area_runs_once_in_order_with_quick(ran):
    code, _, _, calls = ran
    assert code == 0
    assert calls == [(f"fake_benchmark_{area}", True) for area in FAKE_ROWS]


def test_json_round_trips_the_rows_and_the_machine(performance, ran, expected):
    _, out, _, _ = ran
    saved = json.loads((out / "performance.json").read_text())
    assert saved["quick"] is True and saved["errors"] == {}
    assert {"date", "cpu_count", "torch_version", "torch_threads", "load_start", "load_end"} <= set(
        saved["machine"]
    )
    records = pd.DataFrame(saved["records"])
    columns = ["area", *performance.COLUMNS]
    pd.testing.assert_frame_equal(records[columns], expected[columns], check_dtype=False)
    assert list(records["status"]) == [EXPECTED_STATUS[b] for b in expected["benchmark"]]
    machine_columns = ["cpu_count", "torch_version", "torch_threads", "date"]
    assert (records[machine_columns] == pd.Series(saved["machine"])[machine_columns]).all(axis=None)


def test_csv_has_every_row(performance, ran, expected):
    _, out, _, _ = ran
    csv = pd.read_csv(out / "performance.csv")
    columns = ["area", *performance.COLUMNS]
    pd.testing.assert_frame_equal(csv[columns], expected[columns], check_dtype=False)
    assert {"load_start", "load_end", "status"} <= set(csv.columns)


def test_missed_target_is_printed_once_and_only_it(ran):
    code, _, printed, _ = ran
    missed = [line for line in printed.splitlines() if line.startswith("MISSED")]
    assert code == 0  # a missed target reports, it does not fail
    assert len(missed) == 1
    assert "parallel_speedup" in missed[0] and ">= 1.7x" in missed[0] and "1.5" in missed[0]


def test_report_embeds_the_figure_and_the_table(ran, expected):
    _, out, _, _ = ran
    page = (out / "index.html").read_text()
    assert "data:image/png;base64," in page
    assert (out / "performance.png").stat().st_size > 0 and (out / "performance.svg").stat().st_size > 0
    for case in expected["case"]:
        assert case in page
    assert "Missed targets" in page


def _bars(ax):
    """(y centre, width, face colour) of every drawn bar, top row first."""
    bars = [bar for container in ax.containers for bar in container]
    return sorted((bar.get_y() + bar.get_height() / 2, bar.get_width(), bar.get_facecolor()) for bar in bars)


def test_figure_has_one_bar_per_row_coloured_by_status(performance, ran):
    _, out, _, _ = ran
    table = pd.read_csv(out / "performance.csv", keep_default_na=False)
    ax = performance.figure(table).axes[0]
    assert ax.get_xscale() == "log"
    bars = _bars(ax)
    assert len(bars) == len(table)
    for (_, width, colour), (_, row) in zip(bars, table.iterrows(), strict=True):
        assert width == pytest.approx(row["ratio"])
        assert colour == to_rgba(performance.STATUS_COLORS[EXPECTED_STATUS[row["benchmark"]]])


def test_figure_marks_each_target_on_its_row(performance, ran):
    _, out, _, _ = ran
    table = pd.read_csv(out / "performance.csv", keep_default_na=False)
    ax = performance.figure(table).axes[0]
    (ticks,) = [c for c in ax.collections if c.get_label() == "target"]
    # rows 0 and 2 have targets 0.05 and 1.7; row 1 has none
    assert ticks.get_offsets().tolist() == [[0.05, 0.0], [1.7, 2.0]]


def test_a_failing_benchmark_is_recorded_and_the_others_still_run(
    performance, fake_areas, monkeypatch, tmp_path, capsys
):
    def broken(quick=False):
        raise RuntimeError("benchmark exploded")

    monkeypatch.setattr(sys.modules["fake_benchmark_alpha"], "run", broken)
    code = performance.main(["--out", str(tmp_path)])
    saved = json.loads((tmp_path / "performance.json").read_text())
    assert code == 1
    assert "benchmark exploded" in saved["errors"]["alpha"]
    assert [r["area"] for r in saved["records"]] == ["beta"]
    assert "ERROR   alpha: RuntimeError: benchmark exploded" in capsys.readouterr().out


def test_a_table_without_the_contract_columns_is_an_error(performance, fake_areas, monkeypatch):
    monkeypatch.setattr(
        sys.modules["fake_benchmark_beta"], "run", lambda quick=False: pd.DataFrame({"x": [1]})
    )
    table, info = performance.gather(["alpha", "beta"], quick=True)
    assert "ratio" in info["errors"]["beta"] and "fake_benchmark_beta" in info["errors"]["beta"]
    assert set(table["area"]) == {"alpha"}


@pytest.mark.parametrize(
    ("only", "areas"),
    [(None, ["alpha", "beta"]), ("beta", ["beta"]), ("beta, alpha", ["alpha", "beta"])],
)
def test_only_selects_areas_in_canonical_order(performance, fake_areas, only, areas):
    assert performance.select_areas(only) == areas


@pytest.mark.parametrize("only", ["gamma", "alpha,gamma", ","])
def test_unknown_area_is_a_one_line_value_error(performance, fake_areas, only):
    with pytest.raises(ValueError, match=r"^only: .*allowed: .*alpha, beta$"):
        performance.select_areas(only)


@pytest.mark.parametrize(
    ("target", "parsed"),
    [("<= 0.05", ("<=", 0.05)), (">= 1.7x", (">=", 1.7)), ("<=1.0", ("<=", 1.0)), ("none", None)],
)
def test_parse_target(performance, target, parsed):
    assert performance.parse_target(target) == parsed
