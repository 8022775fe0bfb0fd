"""Entry point of a contender process: ``python -m hbtrio.bench.worker NAME``.

Reads ``hbtrio.bench.protocol`` commands from stdin, one per line, and
answers each with one reply line on stdout. Everything else a library prints
goes to stderr (``sys.stdout`` is redirected), so the protocol stays clean.

The floor runs its blocking calls directly; the peer runs on one persistent
asyncio loop; hbtrio runs inside ``trio.run``. Waiting for the next command
happens in a thread for the async contenders, so their event loops keep
serving their connections (keep-alive closes, pings) between commands.
"""

from __future__ import annotations

import base64
import sys
import traceback
from collections.abc import Awaitable, Callable
from functools import partial
from typing import IO, Any

from . import protocol
from .protocol import (
    CONTENDERS,
    AsyncContender,
    Cleanup,
    Command,
    Extra,
    Latency,
    Quit,
    Reply,
    Setup,
    Stream,
    SyncContender,
    Throughput,
)

__all__ = ["CONTENDERS", "main", "redact"]


def redact(text: str, secret: str | None) -> str:
    """Remove a credential pair and its base64 form from a text.

    Args:
        text: Any text (an error message).
        secret: The ``user:password`` pair, or ``None``.

    Returns:
        The text with every occurrence replaced by ``<redacted>``.
    """
    if not secret:
        return text
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    forms.add(secret.partition(":")[2])
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= 4:
            text = text.replace(form, "<redacted>")
    return text


class _State:
    secret: str | None = None


def _error(exc: BaseException) -> Reply:
    tb = traceback.format_exception(exc)
    sys.stderr.write(redact("".join(tb), _State.secret))
    sys.stderr.flush()
    return Reply(ok=False, error=redact(f"{type(exc).__name__}: {exc}", _State.secret))


def _reply_for(command: Command, result: Any) -> Reply:
    if isinstance(command, Setup):
        return Reply(info=result)
    if isinstance(command, Latency):
        return Reply(samples_us=result, count=len(result))
    if isinstance(command, Throughput | Stream):
        count, wall, cpu = result
        return Reply(count=count, wall_s=wall, cpu_s=cpu)
    if isinstance(command, Cleanup):
        return Reply(count=result)
    if isinstance(command, Extra):
        samples, values = result
        return Reply(samples_us=samples, count=len(samples), values=values)
    return Reply()


def _call_sync(contender: SyncContender, command: Command) -> Any:
    if isinstance(command, Setup):
        return contender.setup(command.target)
    if isinstance(command, Latency):
        return contender.latency(command.scenario, command.n, command.warmup)
    if isinstance(command, Throughput):
        return contender.throughput(command.concurrency, command.duration)
    if isinstance(command, Stream):
        return contender.stream(command.duration, command.warmup)
    if isinstance(command, Cleanup):
        return contender.cleanup()
    if isinstance(command, Extra):
        raise NotImplementedError(f"{command.scenario} is an hbtrio-only scenario")
    return None


async def _call_async(contender: AsyncContender, command: Command) -> Any:
    if isinstance(command, Setup):
        return await contender.setup(command.target)
    if isinstance(command, Latency):
        return await contender.latency(command.scenario, command.n, command.warmup)
    if isinstance(command, Throughput):
        return await contender.throughput(command.concurrency, command.duration)
    if isinstance(command, Stream):
        return await contender.stream(command.duration, command.warmup)
    if isinstance(command, Cleanup):
        return await contender.cleanup()
    if isinstance(command, Extra):
        return await contender.extra(command.scenario, command.n)
    return None


class _Channel:
    """The stdin/stdout pair of the protocol."""

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self._in = stdin
        self._out = stdout

    def read(self) -> Command | None:
        line = self._in.readline()
        if not line:
            return None
        command = protocol.decode_command(line)
        if isinstance(command, Setup):
            _State.secret = command.target.api_key
        return command

    def write(self, reply: Reply) -> None:
        self._out.write(protocol.encode(reply))
        self._out.flush()


def _run_sync(channel: _Channel, contender: SyncContender) -> None:
    while (command := channel.read()) is not None and not isinstance(command, Quit):
        try:
            channel.write(_reply_for(command, _call_sync(contender, command)))
        except Exception as exc:
            channel.write(_error(exc))
    contender.close()
    channel.write(Reply())


async def _serve_async(
    channel: _Channel,
    contender: AsyncContender,
    read: Callable[[], Awaitable[Command | None]],
) -> None:
    """Answer commands until ``Quit`` or end of input (any event loop).

    Args:
        channel: The protocol's pipes.
        contender: The contender to drive.
        read: Reads the next command without blocking the event loop.
    """
    while True:
        command = await read()
        if command is None or isinstance(command, Quit):
            break
        try:
            channel.write(_reply_for(command, await _call_async(contender, command)))
        except Exception as exc:
            channel.write(_error(exc))
    await contender.close()
    channel.write(Reply())


def _run_asyncio(channel: _Channel, contender: AsyncContender) -> None:
    import asyncio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await _serve_async(channel, contender, partial(loop.run_in_executor, None, channel.read))

    asyncio.run(main())


def _run_trio(channel: _Channel, contender: AsyncContender) -> None:
    import trio

    read = partial(trio.to_thread.run_sync, channel.read, abandon_on_cancel=True)
    trio.run(_serve_async, channel, contender, read)


def _make(name: str) -> tuple[Callable[[_Channel, Any], None], Any]:
    if name == "floor":
        from .floor import FloorContender

        return _run_sync, FloorContender()
    if name == "peer":
        from .peer import PeerContender

        return _run_asyncio, PeerContender()
    if name == "hbtrio":
        from .contender_hbtrio import HbtrioContender

        return _run_trio, HbtrioContender()
    if name == "hbtrio-aio":
        from .contender_bridges import AioContender

        return _run_asyncio, AioContender()
    if name == "hbtrio-sync":
        from .contender_bridges import SyncBridgeContender

        return _run_sync, SyncBridgeContender()
    raise SystemExit(f"unknown contender {name!r}; expected one of {', '.join(CONTENDERS)}")


def main(argv: list[str] | None = None) -> int:
    """Run one contender until ``quit`` or end of input.

    Args:
        argv: ``[NAME]`` (default: ``sys.argv[1:]``).

    Returns:
        Exit code.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write(f"usage: python -m hbtrio.bench.worker {{{'|'.join(CONTENDERS)}}}\n")
        return 2
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    runner, contender = _make(args[0])
    runner(_Channel(sys.stdin.buffer, out), contender)
    return 0


if __name__ == "__main__":
    sys.exit(main())
