"""The shared timing harness of benchmarks/ (its call order; no timed assertions)."""

import benchmarks
from benchmarks import medians, timings


def recorder(calls: list[str], name: str):
    return lambda: calls.append(name)


def test_timings_warms_up_each_function_then_alternates_the_order_every_round():
    calls: list[str] = []
    warm, times = timings({"a": recorder(calls, "a"), "b": recorder(calls, "b")}, repeats=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert set(warm) == {"a", "b"} and all(w >= 0 for w in warm.values())
    assert {name: len(values) for name, values in times.items()} == {"a": 3, "b": 3}


def test_medians_is_the_median_of_the_rounds(monkeypatch):
    monkeypatch.setattr(benchmarks, "timings", lambda fns, repeats: ({}, {"a": [3.0, 1.0, 2.0]}))
    assert medians({"a": lambda: None}, 3) == {"a": 2.0}
