"""The bus's acceptance scenario, small: simulator, broker, daemon and consumer processes.

100 orders (half filled, half cancelled) placed through the daemon's client, the
broker SIGKILLed and restarted without persistence once and the daemon restarted
once mid-run; the consumer must end with exactly the daemon's order and fill
events, each order's in order. ``benchmarks/bus_acceptance.py`` is the full run.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.bus_acceptance import acceptance


def test_every_order_event_once_and_in_order_across_restarts(tmp_path: Path) -> None:
    result = acceptance(
        orders=100, broker_restarts=1, daemon_restarts=1, concurrency=4, rate=25, work=tmp_path
    )
    assert result["orders_with_terminal_event"] == 100
    assert result["missing"] == 0
    assert result["duplicated"] == 0
    assert result["orders_out_of_order"] == 0
    # at least each order's terminal update and each market order's fill
    assert result["consumer_events"] == result["daemon_events"] >= 150
    assert result["consumer_stats"]["connects"] >= 2  # it did live through the broker restart
    assert result["ok"]
