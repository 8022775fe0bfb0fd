"""Fixtures for integration tests: the simulator over real sockets with TLS.

* ``sim``: a fresh in-process simulator (TLS, ``admin:admin``, seed 0, faithful
  quirks) started with ``nursery.start(partial(hbtrio.sim.serve, ...))``; yields
  :class:`hbtrio.sim.SimInfo` (``host``, ``port``, ``ca_path``, ``url``, ``ws_url``,
  ``api_key``, and ``state`` whose ``order_log`` lists every accepted order).
* ``start_sim(nursery, **serve_kwargs)``: the same with other settings
  (``quirks="real"``, ``min_update_interval=0``, fault injection, ...).
* ``client_config(info, **overrides)``: a :class:`hbtrio.ClientConfig` for a simulator.
* ``sim_http``: a minimal raw HTTP/1.1 client (h11 over TLS) bound to ``sim``.
* ``sim_process``: a factory running ``python -m hbtrio sim`` as a real
  subprocess (for restart tests); every process is stopped at teardown.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import h11
import msgspec
import pytest
import trio

from hbtrio import ClientConfig
from hbtrio.sim import SimInfo, serve


@pytest.fixture(scope="session")
def sim_cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One certificate directory shared by every simulator of the session (fast starts)."""
    return tmp_path_factory.mktemp("sim-certs")


async def start_sim(nursery: trio.Nursery, **kwargs: Any) -> SimInfo:
    """Start an in-process simulator in ``nursery`` and return where it listens.

    Args:
        nursery: Nursery the server runs in (cancel it to stop the server).
        **kwargs: Keyword arguments of :func:`hbtrio.sim.serve`.

    Returns:
        The simulator's :class:`SimInfo`.
    """
    info: SimInfo = await nursery.start(partial(serve, **kwargs))
    return info


@pytest.fixture
async def sim(nursery: trio.Nursery, sim_cert_dir: Path) -> SimInfo:
    """A fresh in-process simulator with TLS (stopped when the test ends)."""
    return await start_sim(nursery, cert_dir=sim_cert_dir)


def client_config(info: SimInfo, **overrides: Any) -> ClientConfig:
    """A client configuration for a running simulator.

    Args:
        info: The simulator.
        **overrides: Other :class:`hbtrio.ClientConfig` fields.

    Returns:
        The configuration (TLS verified with the simulator's CA when it has one).
    """
    options: dict[str, Any] = {
        "host": info.host,
        "port": info.port,
        "api_key": info.api_key,
        "tls": info.ca_path is not None,
        "ca_file": info.ca_path,
    }
    options.update(overrides)
    return ClientConfig(**options)


def ssl_context_for(info: SimInfo) -> ssl.SSLContext:
    """An SSL context trusting the simulator's CA.

    Args:
        info: The simulator (must use TLS).

    Returns:
        The context.
    """
    assert info.ca_path is not None
    return ssl.create_default_context(cafile=info.ca_path)


def basic_auth(api_key: str) -> bytes:
    """The ``Authorization`` header value for a credential pair.

    Args:
        api_key: ``user:password``.

    Returns:
        ``b"Basic ..."``.
    """
    return b"Basic " + base64.b64encode(api_key.encode())


@dataclass
class Response:
    """One raw HTTP answer.

    Attributes:
        status: Status code.
        headers: Lower-cased header names to values.
        body: Raw body.
    """

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Decode the body as JSON."""
        return msgspec.json.decode(self.body)


@dataclass
class RawHTTP:
    """A minimal keep-alive HTTP/1.1 client (h11) for one simulator.

    Attributes:
        info: The simulator.
        auth: ``Authorization`` header sent by default.
    """

    info: SimInfo
    auth: bytes | None = None
    _stream: trio.abc.Stream | None = field(default=None, repr=False)
    _conn: h11.Connection | None = field(default=None, repr=False)

    async def _connect(self) -> None:
        tcp = await trio.open_tcp_stream(self.info.host, self.info.port)
        stream: trio.abc.Stream = tcp
        if self.info.ca_path is not None:
            stream = trio.SSLStream(tcp, ssl_context_for(self.info), server_hostname=self.info.host)
            await stream.do_handshake()
        self._stream = stream
        self._conn = h11.Connection(h11.CLIENT)

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        body: bytes | None = None,
        auth: bytes | bool | None = True,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        """Send one request and read its answer (reconnecting when needed).

        Args:
            method: HTTP method.
            path: Path and query.
            json: A JSON body to encode.
            body: A raw body (instead of ``json``).
            auth: ``True``: the default credentials; ``False``/``None``: none;
                bytes: this ``Authorization`` value.
            headers: Extra headers.

        Returns:
            The answer.
        """
        if self._conn is None or self._conn.our_state is not h11.IDLE:
            await self.aclose()
            await self._connect()
        assert self._conn is not None and self._stream is not None
        payload = msgspec.json.encode(json) if json is not None else (body or b"")
        hdrs = [("host", self.info.host), ("content-length", str(len(payload)))]
        if json is not None:
            hdrs.append(("content-type", "application/json"))
        value = basic_auth(self.info.api_key) if auth is True else auth or None
        if value:
            hdrs.append(("authorization", value.decode() if isinstance(value, bytes) else value))
        hdrs.extend(headers or [])
        conn = self._conn
        await self._stream.send_all(
            conn.send(h11.Request(method=method, target=path, headers=hdrs))
            + conn.send(h11.Data(data=payload))
            + conn.send(h11.EndOfMessage())
        )
        status = 0
        resp_headers: dict[str, str] = {}
        chunks: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await self._stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                resp_headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        return Response(status, resp_headers, b"".join(chunks))

    async def get(self, path: str, **kwargs: Any) -> Response:
        """``GET`` (see :meth:`request`)."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Response:
        """``POST`` (see :meth:`request`)."""
        return await self.request("POST", path, json, **kwargs)

    async def aclose(self) -> None:
        """Close the connection."""
        if self._stream is not None:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                with contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, OSError
                ):
                    await self._stream.aclose()
        self._stream = None
        self._conn = None


@pytest.fixture
async def sim_http(sim: SimInfo) -> AsyncIterator[RawHTTP]:
    """A raw HTTP client bound to ``sim``."""
    http = RawHTTP(sim)
    try:
        yield http
    finally:
        await http.aclose()


@dataclass
class SimProcess:
    """A simulator running as a real ``python -m hbtrio sim`` subprocess.

    Attributes:
        args: Extra command-line arguments.
        cert_dir: Certificate directory (kept across restarts).
        port: Listen port (0 until the first start picks one).
        host: Listen host.
        api_key: Credential pair (passed through ``HBTRIO_SIM_API_KEY``).
        line: The "listening" line the last start printed.
    """

    args: list[str]
    cert_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    api_key: str = "admin:admin"
    line: str = ""
    process: trio.Process | None = None
    tls: bool = True

    @property
    def ca_path(self) -> str | None:
        """The CA certificate (``None`` with ``--no-tls``)."""
        return str(self.cert_dir / "ca.pem") if self.tls else None

    @property
    def info(self) -> SimInfo:
        """A :class:`SimInfo` for the running process (``state`` is not available)."""
        scheme = "https" if self.tls else "http"
        return SimInfo(
            host=self.host,
            port=self.port,
            ca_path=self.ca_path,
            url=f"{scheme}://{self.host}:{self.port}",
            ws_url=f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}/ws/market-data",
            api_key=self.api_key,
            state=None,  # type: ignore[arg-type]
        )

    async def start(self, wait_s: float = 20.0) -> str:
        """Start (or restart on the same port) and wait for the listening line.

        Args:
            wait_s: Seconds to wait for the line.

        Returns:
            The line.
        """
        self.tls = "--no-tls" not in self.args
        cmd = [
            sys.executable,
            "-m",
            "hbtrio",
            "sim",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--cert-dir",
            str(self.cert_dir),
            *self.args,
        ]
        env = dict(os.environ, HBTRIO_SIM_API_KEY=self.api_key)
        self.process = await trio.lowlevel.open_process(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        assert self.process.stdout is not None
        buffer = b""
        with trio.fail_after(wait_s):
            while b"\n" not in buffer:
                chunk = await self.process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError(f"simulator exited early: {buffer!r}")
                buffer += chunk
        self.line = buffer.split(b"\n", 1)[0].decode()
        url = self.line.split(" listening on ", 1)[1].split(" ", 1)[0]
        self.port = int(url.rsplit(":", 1)[1])
        return self.line

    async def stop(self, sig: int | None = signal.SIGTERM, wait_s: float = 10.0) -> int:
        """Send ``sig`` (unless ``None``: it was sent already) and wait for the exit code.

        Args:
            sig: Signal to send, or ``None`` to only wait.
            wait_s: Seconds to wait before killing it.

        Returns:
            The exit code.
        """
        process = self.process
        if process is None:
            return 0
        if process.returncode is None:
            if sig is not None:
                process.send_signal(sig)
            with trio.move_on_after(wait_s):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        self.process = None
        return process.returncode if process.returncode is not None else -9


@pytest.fixture
async def sim_process(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[SimProcess]]]:
    """Factory: ``proc = await sim_process("--seed", "3")`` starts ``hbtrio sim``."""
    started: list[SimProcess] = []

    async def launch(*args: str, api_key: str = "admin:admin") -> SimProcess:
        proc = SimProcess(list(args), tmp_path / f"certs{len(started)}", api_key=api_key)
        started.append(proc)
        await proc.start()
        return proc

    try:
        yield launch
    finally:
        with trio.CancelScope(shield=True):
            for proc in started:
                await proc.stop()
