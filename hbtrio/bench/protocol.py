"""The small JSON-lines protocol between the runner and a contender process.

The runner starts ``python -m hbtrio.bench.worker CONTENDER`` and writes one
command per line on its stdin; the worker answers each with exactly one
``Reply`` line on its stdout. The first command is ``Setup`` (which
carries the credentials: they travel over the pipe, never in argv or the
environment); the last is ``Quit``.

Every contender implements the same operations (see ``SyncContender``
and ``AsyncContender``) and measures its own latencies with
``time.perf_counter_ns``, so samples exclude the pipe.
"""

from __future__ import annotations

from typing import Final, Protocol

import msgspec

__all__ = [
    "ALL_LATENCY_SCENARIOS",
    "ALL_SCENARIOS",
    "BRIDGE_CONTENDERS",
    "BRIDGE_SCENARIOS",
    "CONTENDERS",
    "EXTRA_SCENARIOS",
    "AsyncContender",
    "Cleanup",
    "Command",
    "Extra",
    "Latency",
    "Quit",
    "Reply",
    "Setup",
    "Stream",
    "SyncContender",
    "Target",
    "Throughput",
    "decode_command",
    "decode_reply",
    "encode",
    "runs",
]

#: Latency scenarios every contender runs (request/response round trips).
ALL_LATENCY_SCENARIOS: Final = ("order_place", "order_book", "ticker")
#: Scenarios only hbtrio runs (they need its event machinery).
EXTRA_SCENARIOS: Final = ("order_event", "fanout", "memory")
#: Every scenario, in the order they run.
ALL_SCENARIOS: Final = (*ALL_LATENCY_SCENARIOS, "throughput", *EXTRA_SCENARIOS, "stream")
#: Every contender, in the order results are reported.
CONTENDERS: Final = ("hbtrio", "peer", "floor", "hbtrio-aio", "hbtrio-sync")
#: hbtrio through its asyncio and blocking front doors (``hbtrio.aio``, ``hbtrio.sync``).
BRIDGE_CONTENDERS: Final = ("hbtrio-aio", "hbtrio-sync")
#: The only scenarios the bridge contenders run.
BRIDGE_SCENARIOS: Final = ("order_place", "order_book")


def runs(contender: str, scenario: str) -> bool:
    """Whether a contender runs a scenario (the bridges run ``BRIDGE_SCENARIOS`` only).

    Args:
        contender: Contender name.
        scenario: Scenario name.

    Returns:
        ``True`` when it does.
    """
    return contender not in BRIDGE_CONTENDERS or scenario in BRIDGE_SCENARIOS


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """The server every contender talks to.

    Attributes:
        host: Server host.
        port: Server port.
        api_key: Credential pair ``user:password`` (secret: never printed).
        tls: ``https``/``wss`` when true.
        ca_file: CA bundle to verify the server with (``None``: system store).
        account: Account of every order call (placement, active orders,
            cancels, cancel-all, trades). On a simulator the suite starts, each
            contender has its own (``bench_<contender>``), so one contender's
            resting orders are never listed by another; with ``--url`` all share
            the one account named.
        connector: Connector of the benchmarked market.
        trading_pair: Trading pair of the benchmarked market.
        order_amount: Base amount of every benchmark order (a string Decimal).
        price_factor: Limit price of benchmark orders as a multiple of mid
            (e.g. ``"0.9"``: a buy resting 10 % below mid, never filled).
        book_depth: Depth of the ``order_book`` scenario.
        stream_depth: Depth of the ``stream`` scenario's subscription.
    """

    host: str
    port: int
    api_key: str
    tls: bool = True
    ca_file: str | None = None
    account: str = "master_account"
    connector: str = "binance"
    trading_pair: str = "BTC-USDT"
    order_amount: str = "0.001"
    price_factor: str = "0.9"
    book_depth: int = 20
    stream_depth: int = 10

    def __repr__(self) -> str:
        scheme = "https" if self.tls else "http"
        return (
            f"Target({scheme}://{self.host}:{self.port}, account={self.account!r}, "
            "api_key=<redacted>)"
        )

    __str__ = __repr__


class Setup(msgspec.Struct, frozen=True, tag="setup"):
    """Connect to the target. Answer: ``values={"version": ...}`` in ``Reply.info``."""

    target: Target


class Latency(msgspec.Struct, frozen=True, tag="latency"):
    """Run ``warmup`` untimed then ``n`` timed round trips of a latency scenario.

    Answer: ``Reply.samples_us``.
    """

    scenario: str
    n: int
    warmup: int = 0


class Throughput(msgspec.Struct, frozen=True, tag="throughput"):
    """``concurrency`` concurrent request loops for ``duration`` seconds.

    Answer: ``Reply.count`` requests, ``Reply.wall_s``, ``Reply.cpu_s``.
    """

    concurrency: int
    duration: float


class Stream(msgspec.Struct, frozen=True, tag="stream"):
    """Subscribe to order-book snapshots (``update_interval`` 0) and count them.

    Answer: ``Reply.count`` snapshots decoded in ``Reply.wall_s``.
    """

    duration: float
    warmup: float = 0.2


class Extra(msgspec.Struct, frozen=True, tag="extra"):
    """An hbtrio-only scenario (``order_event``, ``fanout``, ``memory``).

    Answer: ``Reply.samples_us`` and/or ``Reply.values``.
    """

    scenario: str
    n: int


class Cleanup(msgspec.Struct, frozen=True, tag="cleanup"):
    """Cancel every open order of the account on the target market (untimed).

    Answer: ``Reply.count`` orders cancelled.
    """


class Quit(msgspec.Struct, frozen=True, tag="quit"):
    """Close connections and exit."""


Command = Setup | Latency | Throughput | Stream | Extra | Cleanup | Quit


class Reply(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One answer of a worker.

    Attributes:
        ok: False when the command failed; ``error`` says why.
        error: Readable error (never containing the API key).
        samples_us: Latency samples in microseconds.
        count: Requests completed, snapshots received or orders cancelled.
        wall_s: Wall-clock seconds of the measured window.
        cpu_s: Process CPU seconds (user + system) over the same window.
        values: Named figures of an ``Extra`` scenario.
        info: Descriptive strings (library versions, notes).
    """

    ok: bool = True
    error: str | None = None
    samples_us: list[float] = msgspec.field(default_factory=list)
    count: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    values: dict[str, float] = msgspec.field(default_factory=dict)
    info: dict[str, str] = msgspec.field(default_factory=dict)


_command_decoder: Final[msgspec.json.Decoder[Command]] = msgspec.json.Decoder(Command)
_reply_decoder: Final = msgspec.json.Decoder(Reply)
_encoder: Final = msgspec.json.Encoder()


def encode(
    message: Setup | Latency | Throughput | Stream | Extra | Cleanup | Quit | Reply,
) -> bytes:
    """Encode a command or reply as one line.

    Args:
        message: The message.

    Returns:
        JSON bytes ending with a newline.
    """
    return _encoder.encode(message) + b"\n"


def decode_command(line: bytes) -> Command:
    """Decode one command line.

    Args:
        line: The line.

    Returns:
        The command.

    Raises:
        msgspec.ValidationError: Not a known command.
        msgspec.DecodeError: Not JSON.
    """
    return _command_decoder.decode(line)


def decode_reply(line: bytes) -> Reply:
    """Decode one reply line.

    Args:
        line: The line.

    Returns:
        The reply.

    Raises:
        msgspec.ValidationError: Not a reply.
        msgspec.DecodeError: Not JSON.
    """
    return _reply_decoder.decode(line)


class SyncContender(Protocol):
    """A contender whose operations block (the floor)."""

    def setup(self, target: Target) -> dict[str, str]:
        """Connect; return descriptive info (versions)."""
        ...

    def latency(self, scenario: str, n: int, warmup: int) -> list[float]:
        """Timed round trips of a latency scenario, microseconds."""
        ...

    def throughput(self, concurrency: int, duration: float) -> tuple[int, float, float]:
        """Return ``(requests, wall_s, cpu_s)``."""
        ...

    def stream(self, duration: float, warmup: float) -> tuple[int, float, float]:
        """Return ``(snapshots, wall_s, cpu_s)``."""
        ...

    def cleanup(self) -> int:
        """Cancel every open order of the target market; return how many."""
        ...

    def close(self) -> None:
        """Release every connection."""
        ...


class AsyncContender(Protocol):
    """A contender whose operations are coroutines (peer on asyncio, hbtrio on Trio)."""

    async def setup(self, target: Target) -> dict[str, str]:
        """Connect; return descriptive info (versions)."""
        ...

    async def latency(self, scenario: str, n: int, warmup: int) -> list[float]:
        """Timed round trips of a latency scenario, microseconds."""
        ...

    async def throughput(self, concurrency: int, duration: float) -> tuple[int, float, float]:
        """Return ``(requests, wall_s, cpu_s)``."""
        ...

    async def stream(self, duration: float, warmup: float) -> tuple[int, float, float]:
        """Return ``(snapshots, wall_s, cpu_s)``."""
        ...

    async def cleanup(self) -> int:
        """Cancel every open order of the target market; return how many."""
        ...

    async def extra(self, scenario: str, n: int) -> tuple[list[float], dict[str, float]]:
        """Run an hbtrio-only scenario; return ``(samples_us, values)``."""
        ...

    async def close(self) -> None:
        """Release every connection."""
        ...
