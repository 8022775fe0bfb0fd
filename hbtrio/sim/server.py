"""Running the simulator: ``serve`` and ``SimInfo``.

The server is hypercorn's Trio worker (HTTP/1.1 only, TLS from the files of
``hbtrio.sim.tls``) around the lean ASGI app of ``hbtrio.sim.app``, plus one
task driving the simulated liquidity at ``book_change_rate`` changes per second
per market.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import trio

from hbtrio._validation import ACCOUNT_RE

from .app import SimApp
from .engine import MAKER_ACCOUNT
from .liquidity import Simulation
from .state import Quirks, SimSettings, SimState
from .tls import ensure_certs
from .ws import GOING_AWAY, MarketSignals, market_data_session

__all__ = ["SimInfo", "check_accounts", "serve"]


@dataclass(frozen=True, slots=True)
class SimInfo:
    """Where a started simulator listens.

    Attributes:
        host: Listen host.
        port: Listen port (the real one when 0 was asked for).
        ca_path: CA certificate to verify the server with (``None`` without TLS).
        url: Base URL of the REST API, e.g. ``https://127.0.0.1:8000``.
        ws_url: URL of the market-data WebSocket.
        api_key: The credential pair ``user:password`` (not shown by ``repr``).
        state: The live simulator state: ``state.order_log`` is every order it
            accepted (``OrderLogEntry(order_id, request, accepted_at)``),
            ``state.engine`` the matching engine (orders, fills, balances).
    """

    host: str
    port: int
    ca_path: str | None
    url: str
    ws_url: str
    api_key: str = field(repr=False)
    state: SimState = field(repr=False, compare=False)


def check_accounts(accounts: Sequence[str]) -> tuple[str, ...]:
    """Validate the simulator's user account names.

    Names follow the client's rule (``hbtrio._validation.check_account``): 1-64
    letters, digits, ``_`` or ``-``, starting with a letter or digit.

    Args:
        accounts: The names, in the order ``GET /accounts/`` lists them.

    Returns:
        The names as a tuple.

    Raises:
        ValueError: No name, a duplicate, or a name the client would refuse.
    """
    if isinstance(accounts, str):
        raise ValueError("accounts must be a sequence of names, not one string")
    names = tuple(accounts)
    if not names:
        raise ValueError("at least one account is needed")
    for name in names:
        if not isinstance(name, str) or not ACCOUNT_RE.fullmatch(name) or name == MAKER_ACCOUNT:
            raise ValueError(
                f"invalid account name {name!r}: 1-64 letters, digits, '_' or '-', "
                "starting with a letter or digit"
            )
    if len(set(names)) != len(names):
        raise ValueError("account names must be distinct")
    return names


async def _drive_liquidity(simulation: Simulation, rate: float) -> None:
    if rate <= 0:
        return
    period = 1.0 / rate
    start = trio.current_time()
    done = 0
    while True:
        due = int((trio.current_time() - start) * rate) - done
        if due > 0:
            # never more than one second of backlog at once: a busy server skips changes
            steps = min(due, max(1, math.ceil(rate)))
            done += due
            for i in range(steps):
                simulation.step()
                if i + 1 < steps:
                    # let subscribers at update_interval 0 see each change of a batch
                    await trio.lowlevel.checkpoint()
        await trio.sleep(max(period, 0.0005))


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str = "admin:admin",
    seed: int = 0,
    accounts: Sequence[str] = ("master_account",),
    tls: bool = True,
    cert_dir: str | Path | None = None,
    ca_out: str | Path | None = None,
    quirks: Quirks = "faithful",
    heartbeat_interval: float = 30.0,
    min_update_interval: float = 0.25,
    book_change_rate: float = 10.0,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    drop_ws_after_s: float | None = None,
    drop_ws_after_msgs: int | None = None,
    stall_rate: float = 0.0,
    idle_timeout: float = 5.0,
    terminal_linger: float | None = None,
    fill_wait: float | None = None,
    connector_clock_refresh: float | None = None,
    no_credentials: Iterable[tuple[str, str]] = (),
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    task_status: trio.TaskStatus[SimInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a simulator until cancelled or until ``shutdown_trigger`` returns.

    Use it as ``info = await nursery.start(partial(serve, ...))``.

    Args:
        host: Listen address.
        port: Listen port; 0 picks a free one (see ``SimInfo.port``).
        api_key: The HTTP Basic credential pair ``user:password``.
        seed: Seed of the simulated liquidity and of fault injection.
        accounts: User account names (see ``check_accounts``); each starts with
            the default balances on every connector. ``GET /accounts/`` lists them.
        tls: Serve HTTPS/WSS (default) or plain HTTP/WS.
        cert_dir: Directory keeping the CA and server certificate (reused when
            present). ``None``: a temporary directory removed on exit.
        ca_out: Also write the CA certificate there.
        quirks: ``"faithful"`` or ``"real"`` (the real server's known defects).
        heartbeat_interval: Seconds between WebSocket heartbeats.
        min_update_interval: Lowest WebSocket ``update_interval`` (0 allowed).
        book_change_rate: Book changes per second per market.
        latency_ms: Milliseconds added before every answer: each REST response
            and each WebSocket message (greeting, acks, pongs, heartbeats,
            pushes, errors), pipelined (the rate is not capped). TCP, TLS and
            WebSocket handshakes are not delayed.
        error_rate: Share of REST answers that are a 503 (request not processed)
            or a 500 (request processed, answer lost).
        drop_ws_after_s: Close every WebSocket (1001) after this many seconds.
        drop_ws_after_msgs: Close every WebSocket (1001) after it sent this many messages.
        stall_rate: Share of REST requests processed but never answered.
        idle_timeout: Seconds after which an idle kept-alive connection is closed.
        terminal_linger: Seconds a finished order stays listed by ``orders/active``
            (default: 0 with ``quirks="real"``, it vanishes at once; 1 otherwise).
        fill_wait: Seconds a ``FILLED`` order stays listed by ``orders/active``
            with its previous status and ``filled_amount == amount`` (default:
            0.5 with ``quirks="real"``, as the real server waits for the fill
            events; 0 otherwise).
        connector_clock_refresh: Seconds between refreshes of the clock stamping
            ``created_at`` in ``orders/active`` (default: 300 with
            ``quirks="real"``, so it is minutes behind; 0, the exact time, otherwise).
        no_credentials: ``(account, connector)`` pairs without exchange
            credentials: placing there answers 500 ``Unexpected error placing
            trade: ...`` as the real server does.
        shutdown_trigger: Awaited; when it returns, WebSockets are closed with
            1001 and the server stops gracefully.
        task_status: Receives the ``SimInfo`` once listening.

    Raises:
        ValueError: ``accounts`` is empty, repeats a name or holds an invalid one,
            or a duration is negative or infinite.
    """
    account_names = check_accounts(accounts)
    real = quirks == "real"
    linger = (0.0 if real else 1.0) if terminal_linger is None else float(terminal_linger)
    wait = (0.5 if real else 0.0) if fill_wait is None else float(fill_wait)
    refresh = (
        (300.0 if real else 0.0)
        if connector_clock_refresh is None
        else float(connector_clock_refresh)
    )
    for name, value in (
        ("terminal_linger", linger),
        ("fill_wait", wait),
        ("connector_clock_refresh", refresh),
    ):
        if not value >= 0 or math.isinf(value):
            raise ValueError(f"{name} must be finite and >= 0")
    lacking = frozenset((str(a), str(c)) for a, c in no_credentials)

    from hypercorn.trio import serve as hypercorn_serve

    from ._hypercorn import SimConfig, install_idle_watch, install_response_coalescing

    install_response_coalescing()
    install_idle_watch()

    settings = SimSettings(
        api_key=api_key,
        seed=seed,
        quirks=quirks,
        heartbeat_interval=heartbeat_interval,
        min_update_interval=min_update_interval,
        book_change_rate=book_change_rate,
        latency_ms=latency_ms,
        error_rate=error_rate,
        drop_ws_after_s=drop_ws_after_s,
        drop_ws_after_msgs=drop_ws_after_msgs,
        stall_rate=stall_rate,
        accounts=account_names,
        terminal_linger=linger,
        fill_wait=wait,
        connector_clock_refresh=refresh,
        no_credentials=lacking,
    )
    simulation = Simulation(
        seed=seed,
        accounts=account_names,
        book_change_rate=book_change_rate,
        terminal_linger=linger,
    )
    simulation.engine.fill_wait = wait
    state = SimState(settings, simulation)
    signals = MarketSignals()
    simulation.engine.listeners.append(signals)
    app = SimApp(state, partial(market_data_session, state, signals))

    config = SimConfig()
    bind_host = f"[{host}]" if ":" in host else host
    config.bind = [f"{bind_host}:{port}"]
    config.keep_alive_timeout = idle_timeout
    config.keep_alive_max_requests = 2**62
    config.loglevel = "WARNING"
    config.accesslog = None
    config.alpn_protocols = ["http/1.1"]
    config.graceful_timeout = 1.0
    config.websocket_ping_interval = None

    temp_dir: str | None = None
    ca_path: str | None = None
    if tls:
        if cert_dir is None:
            temp_dir = tempfile.mkdtemp(prefix="hbtrio-sim-certs-")
            cert_dir = temp_dir
        paths = ensure_certs(Path(cert_dir), host, Path(ca_out) if ca_out is not None else None)
        config.certfile = str(paths.cert)
        config.keyfile = str(paths.key)
        ca_path = str(Path(ca_out) if ca_out is not None else paths.ca)

    async def graceful() -> None:
        if shutdown_trigger is None:
            await trio.sleep_forever()
        else:
            await shutdown_trigger()
        for closer in list(state.ws_closers):
            closer(GOING_AWAY)
        with trio.move_on_after(0.5):
            while state.ws_closers:  # noqa: ASYNC110 - sessions end on their own
                await trio.sleep(0.01)

    try:
        async with trio.open_nursery() as nursery:

            async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
                await hypercorn_serve(
                    cast(Any, app), config, shutdown_trigger=graceful, task_status=task_status
                )
                nursery.cancel_scope.cancel()

            binds: list[str] = await nursery.start(run_server)
            real_port = int(binds[0].rsplit(":", 1)[1])
            scheme = "https" if tls else "http"
            authority = f"{bind_host}:{real_port}"
            info = SimInfo(
                host=host,
                port=real_port,
                ca_path=ca_path,
                url=f"{scheme}://{authority}",
                ws_url=f"{'wss' if tls else 'ws'}://{authority}/ws/market-data",
                api_key=api_key,
                state=state,
            )
            nursery.start_soon(_drive_liquidity, simulation, book_change_rate)
            task_status.started(info)
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
