"""The operator commands as a terminal user sees them, as real subprocesses.

Widths (``COLUMNS`` 80 and 200), piped output and a pseudo-terminal (``pty``),
``NO_COLOR``, a closed pipe, waiting for acceptance, a ``FAILED`` order's reason,
cancelling by id alone and ``--version``; against the simulator over TLS.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
import trio

import hbtrio
from hbtrio.sim import SimInfo
from tests.integration.conftest import start_sim

ESCAPE = "\x1b["
CLOSED_PIPE_EXIT = 141


def environment(sim: SimInfo, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBTRIO_") and k != "NO_COLOR"}
    env.pop("COLUMNS", None)
    env.pop("FORCE_COLOR", None)
    assert sim.ca_path is not None
    env.update(
        HBTRIO_API_KEY=sim.api_key,
        HBTRIO_HOST=sim.host,
        HBTRIO_PORT=str(sim.port),
        HBTRIO_CA_FILE=sim.ca_path,
        HBTRIO_TIMEOUT="5",
        TERM="xterm-256color",
    )
    env.update(extra)
    return env


async def piped(sim: SimInfo, *argv: str, **extra: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "hbtrio", *argv],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=environment(sim, **extra),
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def _run_in_pty(argv: list[str], env: dict[str, str], columns: int) -> tuple[int, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError as exc:  # EIO: the child closed the terminal
            assert exc.errno == errno.EIO
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


async def in_terminal(sim: SimInfo, *argv: str, columns: int = 100, **extra: str) -> str:
    code, out = await trio.to_thread.run_sync(
        _run_in_pty, [sys.executable, "-m", "hbtrio", *argv], environment(sim, **extra), columns
    )
    assert code == 0, out
    return out


def visible(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


async def place_resting(sim: SimInfo) -> str:
    code, out, err = await piped(
        sim, "place", "binance", "BTC-USDT", "buy", "0.53910", "--price", "50000.10", "--json"
    )
    assert code == 0, err
    order_id: str = json.loads(out)["order_id"]
    return order_id


@pytest.mark.parametrize("width", [80, 200])
async def test_tables_fit_the_width_and_keep_the_servers_digits(sim: SimInfo, width: int) -> None:
    order_id = await place_resting(sim)
    code, out, err = await piped(sim, "orders", COLUMNS=str(width))
    assert code == 0, err
    lines = out.splitlines()
    assert lines and all(len(line) <= width for line in lines), out
    assert ESCAPE not in out  # piped: plain text
    assert order_id in out and "0.53910" in out and "50000.10" in out
    headers = lines[0].split()
    if width == 80:
        assert "EXCHANGE" not in headers and "CREATED" not in headers
        assert lines[-1].startswith("hidden: EXCHANGE")
    else:
        assert headers == [
            "ORDER",
            "ID",
            "EXCHANGE",
            "MARKET",
            "SIDE",
            "TYPE",
            "AMOUNT",
            "PRICE",
            "FILLED",
            "STATUS",
            "CREATED",
            "(UTC)",
        ]
        assert "hidden" not in out

    code, out, err = await piped(sim, "book", "binance", "BTC-USDT", "-d", "5", COLUMNS=str(width))
    assert code == 0, err
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines)
    rows = lines[3:]
    assert len(rows) == 5
    # every price of a column has its decimal point at the same place
    for column in (1, 2):
        cells = [row.split()[column] for row in rows]
        points = {row.index(cell) + cell.find(".") for row, cell in zip(rows, cells, strict=True)}
        assert len(points) == 1 or all("." not in cell for cell in cells), rows


async def test_piped_output_without_columns_is_never_cut(sim: SimInfo) -> None:
    await place_resting(sim)
    code, out, _ = await piped(sim, "orders")
    assert code == 0
    assert "CREATED (UTC)" in out.splitlines()[0] and "hidden" not in out


async def test_colour_on_a_terminal_plain_with_no_color(sim: SimInfo) -> None:
    await place_resting(sim)
    out = await in_terminal(sim, "orders", columns=90)
    assert ESCAPE in out
    assert all(len(line) <= 90 for line in visible(out).splitlines())
    assert "0.53910" in visible(out)

    plain = await in_terminal(sim, "orders", columns=90, NO_COLOR="1")
    assert "\x1b" not in plain and "0.53910" in plain
    assert plain.splitlines()[0] == visible(out).splitlines()[0]

    wide = await in_terminal(sim, "book", "binance", "BTC-USDT", columns=200, COLUMNS="200")
    assert ESCAPE in wide and "BID SIZE" in visible(wide)


async def test_json_is_unchanged_and_plain(sim: SimInfo) -> None:
    out = await in_terminal(sim, "balances", "--exchange", "binance", "--json")
    assert "\x1b" not in out and out.lstrip().startswith("[")


async def test_a_closed_pipe_ends_quietly(sim: SimInfo) -> None:
    for _ in range(3):
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "hbtrio", "book", "binance", "BTC-USDT", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(sim),
        )
        assert proc.stdout is not None and proc.stderr is not None
        await proc.stdout.aclose()  # the reader went away (``| true``)
        err = b""
        while chunk := await proc.stderr.receive_some():
            err += chunk
        code = await proc.wait()
        assert (code, err) == (CLOSED_PIPE_EXIT, b"")


async def test_place_waits_for_acceptance_and_reports_failure(sim: SimInfo) -> None:
    code, out, err = await piped(sim, "place", "binance", "BTC-USDT", "sell", "50", "-p", "70000")
    assert code == 1 and out == ""
    assert err.startswith("hbtrio place: order sell-") and "Insufficient balance" in err
    assert len(err.splitlines()) == 1

    code, out, err = await piped(sim, "place", "binance", "BTC-USDT", "buy", "0.01", "-p", "50000")
    assert code == 0, err
    assert "OPEN" in out and "SUBMITTED" not in out

    code, out, err = await piped(
        sim, "place", "binance", "BTC-USDT", "sell", "50", "-p", "70000", "--no-wait"
    )
    assert code == 0, err
    assert "SUBMITTED" in out

    code, out, err = await piped(sim, "orders", "--history", COLUMNS="200")
    assert code == 0, err
    assert "REASON" in out.splitlines()[0]
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed) == 2 and all("Insufficient balance" in line for line in failed)

    code, out, err = await piped(sim, "orders", "--history", COLUMNS="80")
    assert code == 0, err
    assert all(len(line) <= 80 for line in out.splitlines())
    reasons = [line for line in out.splitlines() if re.match(r"sell-\S+ FAILED: Insuff", line)]
    assert len(reasons) == 2


async def test_cancel_by_order_id_alone(sim: SimInfo) -> None:
    order_id = await place_resting(sim)
    code, out, err = await piped(sim, "cancel", order_id)
    assert (code, out, err) == (0, f"cancel requested: {order_id}\n", "")


async def test_version(sim: SimInfo) -> None:
    code, out, _ = await piped(sim, "--version")
    assert (code, out) == (0, f"hbtrio {hbtrio.__version__}\n")
    code, out, _ = await piped(sim, "daemon", "--version")
    assert (code, out) == (0, f"hbtrio daemon {hbtrio.__version__}\n")


async def test_tls_mismatches_name_the_flag_and_the_variable(
    sim: SimInfo, nursery: trio.Nursery
) -> None:
    plain = await start_sim(nursery, tls=False)
    assert sim.ca_path is not None
    # a TLS client against a plain server
    code, out, err = await piped(
        sim, "balances", "--port", str(plain.port), "--retries", "0", HBTRIO_API_KEY=plain.api_key
    )
    assert (code, out) == (4, "") and len(err.splitlines()) == 1
    assert "does not speak TLS" in err and "--no-tls" in err and "HBTRIO_TLS=0" in err
    # a plain client against a TLS server
    code, out, err = await piped(sim, "balances", "--no-tls", "--retries", "0")
    assert (code, out) == (4, "") and len(err.splitlines()) == 1
    assert "leave out --no-tls" in err and "HBTRIO_TLS" in err and "--ca-file" in err
    # a TLS server whose CA the client was not given
    code, out, err = await piped(sim, "balances", "--retries", "0", HBTRIO_CA_FILE="")
    assert (code, out) == (4, "") and len(err.splitlines()) == 1
    assert "--ca-file" in err and "HBTRIO_CA_FILE" in err
    assert sim.api_key not in err
