"""A very short end-to-end run of the suite against the simulator it starts itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

from hbtrio.bench.report import JSON_SCHEMA
from hbtrio.bench.runner import Settings, run_bench, settings_for


def _tiny(contenders: tuple[str, ...], levels: tuple[int, ...]) -> Settings:
    """A run of a few seconds: 20 samples per latency scenario."""
    return settings_for(
        "quick",
        samples=20,
        batch=10,
        warmup=1,
        first_warmup=2,
        levels=levels,
        throughput_window=0.1,
        throughput_rounds=1,
        stream_window=0.2,
        stream_rounds=1,
        contenders=contenders,
        scenarios=("order_place", "order_book", "ticker", "throughput", "stream"),
    )


def test_short_run_floor_and_peer(tmp_path: Path) -> None:
    settings = _tiny(("peer", "floor"), (1, 4))
    lines: list[str] = []
    results = run_bench(
        settings, output=tmp_path, plot=False, show_progress=False, echo=lines.append
    )
    assert results.errors == []
    # a started simulator gives each contender its own account
    assert results.target["accounts"] == {"peer": "bench_peer", "floor": "bench_floor"}
    assert results.contenders["peer"]["account"] == "bench_peer"
    assert results.contenders["floor"]["account"] == "bench_floor"
    for scenario in ("order_place", "order_book", "ticker"):
        for contender in ("peer", "floor"):
            assert results.latency[scenario][contender].count == 20
    for level in (1, 4):
        assert results.throughput[level]["floor"].requests > 0
        assert results.throughput[level]["peer"].cpu_s > 0
    assert results.stream["floor"].requests > 0
    assert results.stream["peer"].requests > 0
    assert results.contenders["floor"]["available"] is True
    assert results.contenders["hbtrio"]["available"] is False
    assert results.contenders["hbtrio"]["note"] == "not selected"
    result_lines = [x for x in lines if x.startswith("RESULT ")]
    assert re.fullmatch(
        r"RESULT scenario=order_place hbtrio_p50_us=NA hbtrio_p99_us=NA "
        r"peer_p50_us=\d+\.\d peer_p99_us=\d+\.\d floor_p50_us=\d+\.\d floor_p99_us=\d+\.\d",
        result_lines[0],
    )
    assert len(result_lines) == 3 + 2 + 1
    [json_file] = tmp_path.glob("hbtrio-bench-*.json")
    data = json.loads(json_file.read_text())
    jsonschema.validate(data, JSON_SCHEMA)
    assert data["target"]["simulator"] is True
    assert "bench:" not in json_file.read_text()  # the generated credential never lands in files


def test_short_run_of_the_bridge_contenders(tmp_path: Path) -> None:
    """``hbtrio-aio`` and ``hbtrio-sync`` run order_place and order_book, nothing else."""
    settings = _tiny(("hbtrio-aio", "hbtrio-sync", "floor"), (1,))
    lines: list[str] = []
    results = run_bench(
        settings, output=tmp_path, plot=False, show_progress=False, echo=lines.append
    )
    assert results.errors == []
    for contender in ("hbtrio-aio", "hbtrio-sync"):
        assert results.contenders[contender]["available"] is True
        assert results.contenders[contender]["account"] == f"bench_{contender}"
        for scenario in ("order_place", "order_book"):
            assert results.latency[scenario][contender].count == 20
        assert contender not in results.latency["ticker"]
        assert contender not in results.throughput[1]
        assert contender not in results.stream
    place = next(x for x in lines if x.startswith("RESULT scenario=order_place "))
    assert re.search(r"hbtrio-aio_p50_us=\d+\.\d hbtrio-aio_p99_us=\d+\.\d", place)
    assert re.search(r"hbtrio-sync_p50_us=\d+\.\d hbtrio-sync_p99_us=\d+\.\d", place)
    assert any(x.startswith("GOAL aio_order_place_p99: ") for x in lines)
    [json_file] = tmp_path.glob("hbtrio-bench-*.json")
    jsonschema.validate(json.loads(json_file.read_text()), JSON_SCHEMA)
