"""RESULT lines, goals, table and JSON file of the bench suite (no server needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from hbtrio.bench.report import (
    JSON_SCHEMA,
    Results,
    Throughput,
    evaluate_goals,
    format_table,
    machine_description,
    result_lines,
    to_json,
    write_json,
    write_plot,
)

NUM = r"(?:\d+\.\d|NA)"


def _full_results() -> Results:
    r = Results(mode="quick", started_at="2025-01-01T00:00:00+00:00", duration_s=1.0)
    r.machine = machine_description()
    r.target = {"url": "https://127.0.0.1:1", "simulator": True}
    for name in ("hbtrio", "peer", "floor"):
        r.contenders[name] = {"available": True, "note": "", "info": {}}
    base = {"hbtrio": 800.0, "peer": 1200.0, "floor": 700.0}
    for scenario in ("order_place", "order_book", "ticker"):
        for c, v in base.items():
            r.latency_of(scenario, c).record_many([v, v * 1.1, v * 3])
    for level in (1, 8, 32):
        r.throughput_of(level, "hbtrio").add(1000, 1.0, 0.1)
        r.throughput_of(level, "peer").add(900, 1.0, 0.2)
        r.throughput_of(level, "floor").add(1100, 1.0, 0.07)
    r.stream_of("hbtrio").add(500, 1.0, 0.05)
    r.stream_of("peer").add(450, 1.0, 0.06)
    r.stream_of("floor").add(600, 1.0, 0.03)
    from hbtrio.bench.stats import LatencyHistogram

    r.extras["order_event"] = {"values": {}, "histogram": LatencyHistogram([50_000.0, 90_000.0])}
    r.extras["fanout"] = {
        "values": {"added_p50_us": 12.5, "added_p99_us": 40.0},
        "histogram": LatencyHistogram([20.0, 30.0]),
    }
    r.extras["memory"] = {"values": {"rss_mb": 48.25, "delta_mb": 3.0}}
    return r


def test_result_lines_exact_form() -> None:
    lines = result_lines(_full_results())
    latency_re = re.compile(
        rf"^RESULT scenario=(order_place|order_book|ticker) hbtrio_p50_us={NUM} "
        rf"hbtrio_p99_us={NUM} peer_p50_us={NUM} peer_p99_us={NUM} "
        rf"floor_p50_us={NUM} floor_p99_us={NUM}$"
    )
    tp_re = re.compile(
        rf"^RESULT scenario=throughput concurrency=(1|8|32) hbtrio_per_s={NUM} "
        rf"peer_per_s={NUM} floor_per_s={NUM} hbtrio_cpu_us={NUM} peer_cpu_us={NUM} "
        rf"floor_cpu_us={NUM}$"
    )
    stream_re = re.compile(
        rf"^RESULT scenario=stream hbtrio_per_s={NUM} peer_per_s={NUM} floor_per_s={NUM}$"
    )
    assert sum(bool(latency_re.match(x)) for x in lines) == 3
    assert [tp_re.match(x).group(1) for x in lines if tp_re.match(x)] == ["1", "8", "32"]  # type: ignore[union-attr]
    assert sum(bool(stream_re.match(x)) for x in lines) == 1
    assert "RESULT scenario=order_event hbtrio_p50_us=50000.0 hbtrio_p99_us=90000.0" in lines
    assert "RESULT scenario=fanout hbtrio_p50_us=12.5 hbtrio_p99_us=40.0" in lines
    assert "RESULT scenario=memory hbtrio_rss_mb=48.2 hbtrio_delta_mb=3.0" in lines
    assert len(lines) == 10
    assert "RESULT scenario=throughput concurrency=32 hbtrio_per_s=1000.0 peer_per_s=900.0" in (
        " ".join(lines)
    )


def test_missing_contender_is_na() -> None:
    r = Results()
    r.latency_of("order_book", "floor").record_many([100.0, 200.0])
    r.throughput_of(32, "peer").add(10, 1.0, 0.01)
    lines = result_lines(r)
    assert lines[0] == (
        "RESULT scenario=order_book hbtrio_p50_us=NA hbtrio_p99_us=NA peer_p50_us=NA "
        "peer_p99_us=NA floor_p50_us=100.0 floor_p99_us=200.0"
    )
    assert lines[1] == (
        "RESULT scenario=throughput concurrency=32 hbtrio_per_s=NA peer_per_s=10.0 "
        "floor_per_s=NA hbtrio_cpu_us=NA peer_cpu_us=1000.0 floor_cpu_us=NA"
    )
    assert len(lines) == 2


def test_goals_evaluated() -> None:
    goals = {g.name: g for g in evaluate_goals(_full_results())}
    # order_place p50: hbtrio 800 - floor 700 = 100 <= 0.5 * (1200 - 700) = 250
    assert goals["order_place_p50_overhead"].met is True
    assert goals["order_place_p99"].met is True
    assert goals["throughput_c32_cpu"].met is True  # 100 us <= 0.6 * 222 us
    assert goals["throughput_c32_rate"].met is True
    assert goals["stream_rate"].met is True  # 500 >= 0.7 * 600
    assert goals["order_event_p99"].met is True
    assert goals["order_event_p99"].line().startswith("GOAL order_event_p99: met (")


def test_goals_not_met_and_missing() -> None:
    r = _full_results()
    r.latency["order_book"]["hbtrio"].record_many([5000.0] * 20)
    r.stream["hbtrio"] = Throughput(100, 1.0, 0.01)
    del r.extras["order_event"]
    goals = {g.name: g for g in evaluate_goals(r)}
    assert goals["order_book_p50_overhead"].met is False
    assert goals["order_book_p99"].met is False
    assert goals["stream_rate"].met is False
    assert goals["order_event_p99"].met is None
    assert "NOT met" in goals["stream_rate"].line()
    line = goals["order_event_p99"].line()
    assert "n/a" in line and "NA" not in line
    assert "not computed: no figure for hbtrio order_event p99" in line
    del r.latency["order_place"]["peer"]
    goals = {g.name: g for g in evaluate_goals(r)}
    assert "no figure for peer order_place p50)" not in goals["order_place_p50_overhead"].line()
    assert "no figure for peer order_place p50 (" in goals["order_place_p50_overhead"].line()


def test_json_matches_schema(tmp_path: Path) -> None:
    path = tmp_path / "out" / "r.json"
    write_json(_full_results(), path)
    data = json.loads(path.read_text())
    jsonschema.validate(data, JSON_SCHEMA)
    assert data["latency"]["order_place"]["peer"]["summary"]["count"] == 3
    assert data["throughput"]["32"]["floor"]["per_s"] == 1100.0
    assert data["hbtrio_only"]["memory"]["values"]["rss_mb"] == 48.25
    assert data["result_lines"] == result_lines(_full_results())
    assert data["machine"]["usable_cpus"] >= 1


def test_json_of_empty_run_matches_schema() -> None:
    r = Results()
    r.machine = machine_description()
    r.target = {"url": "https://x:1", "simulator": False}
    r.throughput_of(8, "peer")  # created, nothing measured: nan figures become null
    data = to_json(r)
    jsonschema.validate(data, JSON_SCHEMA)
    assert data["throughput"]["8"]["peer"]["per_s"] is None


def test_schema_rejects_a_broken_file() -> None:
    data = to_json(_full_results())
    data["result_lines"] = ["not a result"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, JSON_SCHEMA)


def test_table_shows_every_figure() -> None:
    table = format_table(_full_results())
    assert "order_place  hbtrio" in table
    assert "Throughput" in table and "Stream" in table
    assert "memory (hbtrio): delta_mb=3.0, rss_mb=48.2" in table


def test_table_shows_skipped_contender() -> None:
    r = Results()
    r.contenders["hbtrio"] = {"available": False, "note": "not yet", "info": {}}
    assert "note: hbtrio skipped: not yet" in format_table(r)


def test_plot_written_or_reason(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    why = write_plot(_full_results(), png)
    if why is None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib" in why
    assert write_plot(Results(), tmp_path / "empty.png") is not None


def test_bridge_contenders_join_the_result_lines_where_they_ran() -> None:
    from hbtrio.bench import protocol
    from hbtrio.bench.report import Results

    results = Results()
    for name, value in (("hbtrio", 300.0), ("peer", 900.0), ("floor", 200.0)):
        results.latency_of("order_place", name).record_many([value] * 10)
        results.latency_of("ticker", name).record_many([value] * 10)
    results.latency_of("order_place", "hbtrio-aio").record_many([400.0] * 10)
    lines = result_lines(results)
    place = next(x for x in lines if x.startswith("RESULT scenario=order_place "))
    ticker = next(x for x in lines if x.startswith("RESULT scenario=ticker "))
    assert "hbtrio-aio_p50_us=" in place and "hbtrio-sync" not in place
    assert "hbtrio-aio" not in ticker
    goals = {g.name: g for g in evaluate_goals(results)}
    assert goals["aio_order_place_p50_overhead"].met is True  # 200 <= 0.5 x 700
    assert goals["aio_order_place_p99"].met is True
    assert not protocol.runs("hbtrio-aio", "ticker") and protocol.runs("hbtrio-sync", "order_book")
    assert protocol.runs("hbtrio", "stream")
