"""Every program in ``examples/`` runs green against the simulator.

Each example runs as a subprocess (``sys.executable examples/NAME.py``) against a
fresh in-process simulator over TLS, configured through the environment
(``HBTRIO_HOST``, ``HBTRIO_PORT``, ``HBTRIO_API_KEY``, ``HBTRIO_CA_FILE``), must exit
0, print the lines expected of it, and never print the API key.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import trio

from hbtrio.sim import SimInfo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIME_LIMIT = 45.0

# Regular expressions each example's output must match (each searched line by line).
EXPECTED: dict[str, list[str]] = {
    "place_and_cancel": [
        r"^resting: \S+ BUY 0\.001\d* @ \d+",
        r"^open orders: \[.+\]",
        r"^cancel requested$",
        r"^order \S+: CANCELLED$",
        r"^market order \S+: FILLED$",
        r"^cancelled in bulk: 2$",
    ],
    "market_data": [
        r"^ETH-USDT book at \d+\.\d{3}$",
        r"^\s+\d[\d.]* +\d[\d.]* \| \d[\d.]* +\d[\d.]*$",
        r"^BTC-USDT bid=\d[\d.]* ask=\d[\d.]* last=\d[\d.]* vol=\d",
        r"^\s+\d+ o=\d[\d.]* h=\d[\d.]* c=\d[\d.]*$",
        r"^BTC-USDT min order size: 0\.00001$",
    ],
    "account": [
        r"^binance +BTC +total=10\S* free=10\S*$",
        r"^binance +USDT +total=\d",
        r"^history page: [1-9]\d* orders, more=(True|False)$",
        r"^  \S+ FILLED 0\.002",
        r"^filled orders in the last hour: [1-9]\d*$",
        r"^  fill \S+: BUY 0\.00\d* @ \d",
    ],
    "streaming_events": [
        r"^book  bid=\d[\d.]* ask=\d[\d.]*$",
        r"^trade (BUY|SELL) \d",
        r"^order \S+ -> FILLED$",
        r"^fill  0\.001\d* @ \d",
        r"^events subscriber cut off: .*fell behind",
    ],
    "error_handling": [
        r"^ConfigError: retries$",
        r"^InputValidationError: market$",
        r"^MinOrderSizeNotMet: 0\.001$",
        r"^InsufficientFunds: Insufficient balance",
        r"^PriceOutOfRange: Order price is outside the allowed range",
        r"^OrderNotFound: no-such-order$",
        r"^NotFound: 404 GET /connectors/no_such_exchange/trading-rules False$",
        r"^placed without ambiguity$",
        r"^AuthenticationFailed$",
        r"^ConnectionFailed: ConnectionFailed$",
    ],
    "config_from_env": [
        r"^config: ClientConfig\(host='127\.0\.0\.1', port=\d+, api_key='\*\*\*', timeout=2\.0",
        r"^refused: port - must be in 1\.\.65535$",
        r"^connected to Hummingbot API 1\.0\.1: state=CONNECTED$",
    ],
    "asyncio_service": [
        r"^GET /book -> 200 \{'bid': '\d[\d.]*', 'ask': '\d[\d.]*'\}$",
        r"^concurrent requests answered: 5$",
        r"^POST /orders -> 201 \{'order_id': '\S+', 'status': 'cancel requested'\}$",
        r"^GET /nowhere -> 404$",
        r"^service stopped; client closed: DISCONNECTED$",
    ],
    "blocking_script": [
        r"^best bid \d[\d.]* / best ask \d[\d.]*$",
        r"^panels refreshed: 4$",
        r"^snapshot 2: mid \d",
        r"^order \S+: CANCELLED$",
        r"^typed error: OrderNotFound$",
        r"^closed: DISCONNECTED$",
    ],
    "anyio_task_group": [
        r"^ticker bid=\d[\d.]* ask=\d[\d.]*$",
        r"^books received: [1-9]\d*$",
    ],
}


def test_every_example_is_checked() -> None:
    names = sorted(p.stem for p in EXAMPLES.glob("*.py"))
    assert len(names) >= 6
    assert names == sorted(EXPECTED)


def _environment(info: SimInfo) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBTRIO_")}
    assert info.ca_path is not None
    env.update(
        HBTRIO_HOST=info.host,
        HBTRIO_PORT=str(info.port),
        HBTRIO_API_KEY=info.api_key,
        HBTRIO_CA_FILE=info.ca_path,
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_example_runs_against_the_simulator(name: str, sim: SimInfo) -> None:
    with trio.fail_after(TIME_LIMIT):
        result = await trio.run_process(
            [sys.executable, str(EXAMPLES / f"{name}.py")],
            env=_environment(sim),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    stdout = result.stdout.decode()
    stderr = result.stderr.decode()
    report = f"--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert result.returncode == 0, report
    lines = stdout.splitlines()
    for pattern in EXPECTED[name]:
        assert any(re.search(pattern, line) for line in lines), f"no line ~ {pattern}\n{report}"
    assert sim.api_key not in stdout + stderr
    assert "Traceback" not in stderr, report


def test_examples_are_programs_configured_from_the_environment() -> None:
    for path in EXAMPLES.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{path.name}: no docstring saying what it shows"
        assert 'if __name__ == "__main__":' in text, path.name
        assert "ClientConfig.from_env(" in text, path.name
