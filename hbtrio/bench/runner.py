"""The orchestrator of ``hbtrio bench``.

It starts the simulator in a separate process (TLS on, on a port of its own
choosing, one account per contender) or uses the server the user names (one
account shared by all), starts each contender in its own worker process
(``hbtrio.bench.worker``), and drives them in rounds: in each round every
contender runs one batch of every scenario, the contenders' order rotating from
round to round, so machine drift hits all alike. Only one contender works at a
time. Between rounds of ``order_place`` the benchmark orders are cancelled in
bulk, untimed: one cleanup per account used (by the floor worker when it uses
that account).
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import re
import secrets
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final
from urllib.parse import urlsplit

import msgspec
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from .._cli_ops.render import make_console
from .._validation import check_account
from . import protocol
from .protocol import (
    ALL_LATENCY_SCENARIOS,
    ALL_SCENARIOS,
    CONTENDERS,
    Cleanup,
    Command,
    Extra,
    Latency,
    Quit,
    Reply,
    Setup,
    Stream,
    Target,
    Throughput,
    runs,
)
from .report import (
    CONTENDER_ORDER,
    Results,
    evaluate_goals,
    format_table,
    machine_description,
    result_lines,
    write_json,
    write_plot,
)

__all__ = [
    "ALL_SCENARIOS",
    "DEFAULT_ACCOUNT",
    "SIM_ACCOUNTS",
    "BenchError",
    "Settings",
    "SimProcess",
    "WorkerProcess",
    "contender_targets",
    "parse_target_url",
    "run_bench",
    "settings_for",
]

#: Account of every contender on a server the user names (``--url``), unless told.
DEFAULT_ACCOUNT: Final = "master_account"
#: Account of each contender on a simulator the suite starts: one each, so that a
#: contender listing its open orders never lists (nor makes the server serialise)
#: the orders another contender left resting.
SIM_ACCOUNTS: Final[dict[str, str]] = {name: f"bench_{name}" for name in CONTENDERS}

_LISTENING: Final = re.compile(r"listening on (\S+)(?: \(ca: ([^)]+)\))?")


class BenchError(Exception):
    """The suite cannot run (the simulator did not start, no contender left...)."""


@dataclass(frozen=True)
class Settings:
    """What to run and how long.

    Attributes:
        mode: ``quick``, ``full`` or ``custom``.
        samples: Timed samples per latency scenario and contender.
        batch: Samples per contender per round (rounds = samples / batch).
        warmup: Untimed round trips at the start of every batch.
        first_warmup: Untimed round trips of a contender's first batch of a scenario.
        levels: Concurrency levels of ``throughput``.
        throughput_window: Seconds per contender, level and round.
        throughput_rounds: Rounds of ``throughput``.
        stream_window: Seconds counted per contender and round.
        stream_rounds: Rounds of ``stream``.
        event_samples: Fills measured by ``order_event``.
        fanout_samples: Events published by ``fanout`` (per subscriber count).
        contenders: Contenders to run.
        scenarios: Scenarios to run.
        sim_book_rate: Book changes per second per market of a started simulator
            (kept low so background liquidity adds little noise to latencies).
        stream_book_rate: Book rate of the started simulator during ``stream``:
            it is restarted on the same port with the same certificates, so
            snapshots are plentiful.
        seed: Simulator seed.
        reply_timeout: Seconds a worker may take to answer one command.
    """

    mode: str = "quick"
    samples: int = 2000
    batch: int = 250
    warmup: int = 5
    first_warmup: int = 50
    levels: tuple[int, ...] = (1, 8, 32)
    throughput_window: float = 0.4
    throughput_rounds: int = 2
    stream_window: float = 0.5
    stream_rounds: int = 2
    event_samples: int = 200
    fanout_samples: int = 2000
    contenders: tuple[str, ...] = CONTENDERS
    scenarios: tuple[str, ...] = ALL_SCENARIOS
    sim_book_rate: float = 50.0
    stream_book_rate: float = 1000.0
    seed: int = 1
    reply_timeout: float = 120.0

    @property
    def rounds(self) -> int:
        """Rounds of the latency scenarios."""
        return max(1, math.ceil(self.samples / self.batch))


def settings_for(mode: str, **overrides: object) -> Settings:
    """The settings of a mode, with overrides.

    Args:
        mode: ``quick`` (whole suite under a minute on 2 cores, 2,000 samples per
            latency scenario and contender) or ``full`` (20,000).
        **overrides: Fields of ``Settings`` to change (``None`` values ignored).

    Returns:
        The settings.

    Raises:
        ValueError: Unknown mode.
    """
    if mode == "quick":
        base = Settings()
    elif mode == "full":
        base = Settings(
            mode="full",
            samples=20_000,
            batch=500,
            throughput_window=1.0,
            throughput_rounds=5,
            stream_window=1.0,
            stream_rounds=5,
            event_samples=2000,
            fanout_samples=20_000,
            reply_timeout=300.0,
        )
    else:
        raise ValueError(f"unknown mode {mode!r}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        data = asdict(base)
        data.update(changes)
        if "samples" in changes or "batch" in changes:
            data["mode"] = "custom"
        base = Settings(**data)
    return base


def parse_target_url(url: str) -> tuple[str, int, bool]:
    """Split a server URL.

    Args:
        url: ``https://host:port`` or ``http://host:port``.

    Returns:
        ``(host, port, tls)``.

    Raises:
        ValueError: Not an http(s) URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL must look like https://HOST:PORT")
    if parts.username or parts.password:
        raise ValueError("put the credentials in --api-key, not in the URL")
    tls = parts.scheme == "https"
    return parts.hostname, parts.port or (443 if tls else 80), tls


def contender_targets(
    base: Target, contenders: Sequence[str], *, own_accounts: bool
) -> dict[str, Target]:
    """The target of each contender.

    Args:
        base: Server, credential and market shared by every contender.
        contenders: Contender names.
        own_accounts: Give each contender its own account (``SIM_ACCOUNTS``: a
            simulator the suite starts); false keeps ``base.account`` for all
            (a server the user names).

    Returns:
        Contender name to target; the targets differ at most in ``account``.
    """
    if not own_accounts:
        return {name: base for name in contenders}
    return {
        name: msgspec.structs.replace(base, account=SIM_ACCOUNTS.get(name, f"bench_{name}"))
        for name in contenders
    }


# -- processes -----------------------------------------------------------------------------


class SimProcess:
    """The simulator in its own process (``python -m hbtrio.cli sim``).

    Args:
        workdir: Directory for its certificates.
        api_key: Credential pair it accepts.
        seed: Random seed.
        book_rate: Book changes per second per market.
        port: Port to listen on (0: any free port; see ``url``).
        accounts: User accounts it holds (``--accounts``).
        extra_args: More ``hbtrio sim`` options.
    """

    def __init__(
        self,
        workdir: Path,
        api_key: str,
        *,
        seed: int = 1,
        book_rate: float = 50.0,
        port: int = 0,
        accounts: Sequence[str] = tuple(SIM_ACCOUNTS.values()),
        extra_args: Sequence[str] = (),
    ) -> None:
        self._args = [
            sys.executable,
            "-m",
            "hbtrio.cli",
            "sim",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--seed",
            str(seed),
            "--cert-dir",
            str(workdir / "certs"),
            "--ca-out",
            str(workdir / "ca.pem"),
            "--min-update-interval",
            "0",
            "--book-rate",
            str(book_rate),
            "--accounts",
            ",".join(accounts),
            *extra_args,
        ]
        # The credential travels in the environment, never in argv (``ps`` shows argv).
        self._env = {**os.environ, "HBTRIO_SIM_API_KEY": api_key}
        self._ca_default = str(workdir / "ca.pem")
        self._proc: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self._lines: deque[str] = deque(maxlen=200)
        self.url = ""
        self.ca_file: str | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the simulator and wait for its ``listening on`` line.

        Args:
            timeout: Seconds to wait.

        Raises:
            BenchError: It exited or did not say where it listens in time.
        """
        self._proc = subprocess.Popen(
            self._args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env,
        )
        found = threading.Event()
        out = self._proc.stdout
        assert out is not None

        def drain() -> None:  # keeps reading so the pipe never fills up
            for raw in out:
                line = raw.decode("utf-8", "replace").rstrip()
                self._lines.append(line)
                match = _LISTENING.search(line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    self.ca_file = match.group(2) or (
                        self._ca_default if self.url.startswith("https") else None
                    )
                    found.set()

        self._drain = threading.Thread(target=drain, name="sim-output", daemon=True)
        self._drain.start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.output_tail()
                raise BenchError(f"the simulator did not start:\n{tail}")

    def output_tail(self, lines: int = 20) -> str:
        """The simulator's last output lines.

        Args:
            lines: How many.

        Returns:
            The lines joined.
        """
        return "\n".join(list(self._lines)[-lines:])

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        if self._drain is not None:
            self._drain.join(5.0)
        if proc.stdout is not None:
            proc.stdout.close()


class WorkerProcess:
    """One contender in its own process, spoken to over the JSON-lines protocol.

    Args:
        name: Contender name.
        log: File receiving the worker's stderr.
    """

    def __init__(self, name: str, log: IO[bytes]) -> None:
        self.name = name
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "hbtrio.bench.worker", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )

    def call(self, command: Command, timeout: float) -> Reply:
        """Send one command and wait for its reply.

        Args:
            command: The command.
            timeout: Seconds to wait for the reply.

        Returns:
            The reply (``ok`` false when the worker reported an error).

        Raises:
            BenchError: The worker died or did not answer in time.
        """
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(protocol.encode(command))
            stdin.flush()
        except BrokenPipeError:
            raise BenchError(f"{self.name} worker exited") from None
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            self.kill()
            raise BenchError(f"{self.name} worker did not answer within {timeout:.0f} s")
        line = stdout.readline()
        if not line:
            raise BenchError(f"{self.name} worker exited (code {self._proc.wait()})")
        return protocol.decode_reply(line)

    def quit(self) -> None:
        """Ask the worker to exit; kill it if it does not within 10 s."""
        if self._proc.poll() is None:
            try:
                self.call(Quit(), 10.0)
                self._proc.wait(10.0)
            except (BenchError, OSError, subprocess.TimeoutExpired):
                self.kill()
        self._close_pipes()

    def kill(self) -> None:
        """Kill the worker."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(OSError):
                    pipe.close()


# -- progress ------------------------------------------------------------------------------


class Progress:
    """The progress display on stderr: steps done, rate and time left.

    On a terminal it is a rich progress bar (redrawn in place); otherwise one
    plain line per scenario with the same figures.

    Args:
        total: Number of steps.
        stream: Where to write (default: ``sys.stderr``).
        enabled: False to stay silent.
    """

    def __init__(self, total: int, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self._total = max(total, 1)
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._console = make_console(self._stream)
        self._enabled = enabled
        self._start = time.monotonic()
        self._last_phase = ""
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        if enabled and self._console.is_terminal:
            self._bar = RichProgress(
                TextColumn("[bold]{task.fields[phase]:<12}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self._console,
                transient=False,
            )
            self._task = self._bar.add_task(
                "bench", total=self._total, phase="", detail="", rate=""
            )
            self._bar.start()

    @property
    def total(self) -> int:
        """Number of steps."""
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self._total = max(value, 1)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=self._total)

    def _rate_and_eta(self) -> tuple[float, float]:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self._total - self.done) / rate if rate > 0 else math.inf
        return rate, left

    def step(self, phase: str, detail: str) -> None:
        """Count one step and show it.

        Args:
            phase: Scenario name.
            detail: Round and contender.
        """
        self.done += 1
        if not self._enabled:
            return
        rate, left = self._rate_and_eta()
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=self.done,
                phase=phase,
                detail=detail,
                rate=f"{rate * 60:.1f} steps/min",
            )
            return
        if phase != self._last_phase or self.done == self._total:
            pct = 100.0 * self.done / self._total
            elapsed = time.monotonic() - self._start
            eta = "-" if math.isinf(left) else f"{left:.0f}s"
            self._stream.write(
                f"[{pct:5.1f}%] {self.done}/{self._total} {elapsed:6.1f}s "
                f"{rate * 60:.1f} steps/min ETA {eta}  {phase:<12} {detail}\n"
            )
            self._stream.flush()
        self._last_phase = phase

    def note(self, text: str) -> None:
        """Print a note on its own line.

        Args:
            text: The note.
        """
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
            return
        self._stream.write(text + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """End the display."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# -- the run -------------------------------------------------------------------------------


@dataclass
class _Run:
    settings: Settings
    results: Results
    progress: Progress
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)

    def fail(self, contender: str, scenario: str, error: str) -> None:
        self.results.errors.append({"contender": contender, "scenario": scenario, "error": error})
        self.progress.note(f"error: {contender} {scenario}: {error}")

    def call(self, name: str, scenario: str, command: Command) -> Reply | None:
        worker = self.workers.get(name)
        if worker is None:
            return None
        try:
            reply = worker.call(command, self.settings.reply_timeout)
        except BenchError as exc:
            self.fail(name, scenario, str(exc))
            self.workers.pop(name).kill()
            self.results.contenders[name]["available"] = False
            self.results.contenders[name]["note"] = str(exc)
            return None
        if not reply.ok:
            self.fail(name, scenario, reply.error or "failed")
            return None
        return reply

    def order(self, round_index: int) -> list[str]:
        names: list[str] = [c for c in CONTENDER_ORDER if c in self.workers]
        if not names:
            return []
        k = round_index % len(names)
        return names[k:] + names[:k]

    def cleanup(self) -> None:
        # one cleanup per account in use, by the first worker using it (floor first)
        done: set[str] = set()
        for name in ("floor", *CONTENDER_ORDER):
            account = self.accounts.get(name, DEFAULT_ACCOUNT)
            if name in self.workers and account not in done:
                done.add(account)
                self.call(name, "cleanup", Cleanup())


def _total_steps(s: Settings, names: Sequence[str], latency: Sequence[str]) -> int:
    steps = s.rounds * sum(runs(n, x) for n in names for x in latency)
    if "throughput" in s.scenarios:
        steps += s.throughput_rounds * len(s.levels) * sum(runs(n, "throughput") for n in names)
    if "stream" in s.scenarios:
        steps += s.stream_rounds * sum(runs(n, "stream") for n in names)
    return steps + sum(1 for x in ("order_event", "fanout", "memory") if x in s.scenarios)


def _run_scenarios(run: _Run, before_stream: Callable[[], None] | None = None) -> None:
    s, results = run.settings, run.results
    latency = [x for x in ALL_LATENCY_SCENARIOS if x in s.scenarios]
    first_batch: set[tuple[str, str]] = set()
    for r in range(s.rounds):
        n = min(s.batch, s.samples - r * s.batch)
        for scenario in latency:
            for name in run.order(r):
                if not runs(name, scenario):
                    continue
                warmup = s.warmup
                if (name, scenario) not in first_batch:
                    first_batch.add((name, scenario))
                    warmup = s.first_warmup
                reply = run.call(name, scenario, Latency(scenario, n, warmup))
                if reply is not None:
                    results.latency_of(scenario, name).record_many(reply.samples_us)
                run.progress.step(scenario, f"round {r + 1}/{s.rounds} {name}")
            if scenario == "order_place":
                run.cleanup()
    if "throughput" in s.scenarios:
        for r in range(s.throughput_rounds):
            for level in s.levels:
                for name in run.order(r + level):
                    if not runs(name, "throughput"):
                        continue
                    reply = run.call(name, "throughput", Throughput(level, s.throughput_window))
                    if reply is not None:
                        results.throughput_of(level, name).add(
                            reply.count, reply.wall_s, reply.cpu_s
                        )
                    run.progress.step("throughput", f"c={level} round {r + 1} {name}")
    counts = {"order_event": s.event_samples, "fanout": s.fanout_samples, "memory": 0}
    for extra in ("order_event", "fanout", "memory"):
        if extra not in s.scenarios:
            continue
        if "hbtrio" in run.workers:
            reply = run.call("hbtrio", extra, Extra(extra, counts[extra]))
            if reply is not None:
                entry: dict[str, object] = {"values": dict(reply.values)}
                if reply.samples_us:
                    from .stats import LatencyHistogram

                    entry["histogram"] = LatencyHistogram(reply.samples_us)
                results.extras[extra] = entry
            if extra == "order_event":
                run.cleanup()
        run.progress.step(extra, "hbtrio")
    if "stream" in s.scenarios and run.workers:
        if before_stream is not None:
            before_stream()
            for name in list(run.workers):  # re-open kept-alive connections, untimed
                if not runs(name, "stream"):
                    continue
                run.call(name, "stream", Latency("order_book", 0, 3))
        for r in range(s.stream_rounds):
            for name in run.order(r):
                if not runs(name, "stream"):
                    continue
                reply = run.call(name, "stream", Stream(s.stream_window))
                if reply is not None:
                    results.stream_of(name).add(reply.count, reply.wall_s, reply.cpu_s)
                run.progress.step("stream", f"round {r + 1}/{s.stream_rounds} {name}")


def _start_workers(run: _Run, targets: dict[str, Target], logdir: Path) -> None:
    from .contender_hbtrio import availability

    logdir.mkdir(parents=True, exist_ok=True)
    for name in CONTENDER_ORDER:
        entry: dict[str, object] = {"available": False, "note": "", "info": {}}
        run.results.contenders[name] = entry
        target = targets.get(name)
        if name not in run.settings.contenders or target is None:
            entry["note"] = "not selected"
            continue
        entry["account"] = target.account
        run.accounts[name] = target.account
        if name.startswith("hbtrio") and (missing := availability()) is not None:
            entry["note"] = missing
            run.progress.note(f"note: skipping hbtrio: {missing}")
            continue
        log = (logdir / f"{name}.log").open("wb")
        worker = WorkerProcess(name, log)
        log.close()  # the child holds its own descriptor
        run.workers[name] = worker
        reply = run.call(name, "setup", Setup(target))
        if reply is None:
            entry["note"] = f"setup failed (see {logdir / (name + '.log')})"
            if name in run.workers:
                run.workers.pop(name).quit()
            continue
        entry["available"] = True
        entry["info"] = dict(reply.info)


def run_bench(
    settings: Settings,
    *,
    url: str | None = None,
    api_key: str | None = None,
    ca_file: str | None = None,
    output: Path = Path("bench-results"),
    plot: bool = True,
    market: tuple[str, str] = ("binance", "BTC-USDT"),
    order_amount: str = "0.001",
    account: str = DEFAULT_ACCOUNT,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Results:
    """Run the suite and report.

    Args:
        settings: What to run.
        url: Server to benchmark; ``None`` starts the simulator.
        api_key: Credential pair for ``url`` (a started simulator gets a random one).
        ca_file: CA bundle to verify ``url`` with.
        output: Directory for the JSON file, the plot and the worker logs.
        plot: Write the PNG plot.
        market: ``(connector, trading_pair)`` benchmarked.
        order_amount: Base amount of every benchmark order.
        account: The account every contender uses on ``url``. A simulator the
            suite starts ignores it: it holds one account per contender
            (``SIM_ACCOUNTS``).
        show_progress: Show the progress display on stderr.
        echo: Receives every line of the report (table, RESULT and GOAL lines).

    Returns:
        Every figure.

    Raises:
        BenchError: The simulator did not start or no contender could run.
        ValueError: ``url`` or ``account`` is invalid.
    """
    started = time.monotonic()
    results = Results(
        mode=settings.mode,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine_description(),
        settings={**asdict(settings), "rounds": settings.rounds},
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    latency = [x for x in ALL_LATENCY_SCENARIOS if x in settings.scenarios]
    progress = Progress(_total_steps(settings, settings.contenders, latency), enabled=show_progress)
    run = _Run(settings, results, progress)
    sim: SimProcess | None = None
    with tempfile.TemporaryDirectory(prefix="hbtrio-bench-") as tmp:
        try:
            if url is None:
                key = api_key or f"bench:{secrets.token_urlsafe(12)}"
                sim = SimProcess(
                    Path(tmp), key, seed=settings.seed, book_rate=settings.sim_book_rate
                )
                progress.note("starting the simulator (TLS) ...")
                sim.start()
                url, ca_file = sim.url, sim.ca_file
            else:
                key = api_key or os.environ.get("HBTRIO_API_KEY", "")
                if not key:
                    raise BenchError("HBTRIO_API_KEY (or --api-key-file FILE) is needed with --url")
                check_account(account)
            host, port, tls = parse_target_url(url)
            results.target = {
                "url": url,
                "simulator": sim is not None,
                "connector": market[0],
                "trading_pair": market[1],
                "ca_file": ca_file,
            }
            base = Target(
                host=host,
                port=port,
                api_key=key,
                tls=tls,
                ca_file=ca_file,
                account=account,
                connector=market[0],
                trading_pair=market[1],
                order_amount=order_amount,
            )
            targets = contender_targets(base, CONTENDER_ORDER, own_accounts=sim is not None)
            results.target["accounts"] = {
                name: t.account for name, t in targets.items() if name in settings.contenders
            }
            _start_workers(run, targets, output / f"logs-{stamp}")
            if not run.workers:
                raise BenchError(
                    "no contender could start: "
                    + "; ".join(f"{n}: {c['note']}" for n, c in results.contenders.items())
                )
            progress.total = _total_steps(settings, list(run.workers), latency)
            before_stream: Callable[[], None] | None = None
            if sim is not None:
                port = parse_target_url(url)[1]

                def before_stream() -> None:
                    nonlocal sim
                    assert sim is not None
                    progress.note(
                        f"restarting the simulator at book rate {settings.stream_book_rate:g}/s"
                    )
                    sim.stop()
                    sim = SimProcess(
                        Path(tmp),
                        key,
                        seed=settings.seed,
                        book_rate=settings.stream_book_rate,
                        port=port,
                    )
                    sim.start()

            _run_scenarios(run, before_stream)
            run.cleanup()
        finally:
            for worker in run.workers.values():
                worker.quit()
            run.workers.clear()
            progress.finish()
            if sim is not None:
                sim.stop()
    results.duration_s = time.monotonic() - started
    _report(results, output, stamp, plot, echo, key)
    return results


def _report(
    results: Results, output: Path, stamp: str, plot: bool, echo: Callable[[str], None], key: str
) -> None:
    token = base64.b64encode(key.encode()).decode()
    for err in results.errors:  # errors come from workers, which redact; be sure anyway
        err["error"] = err["error"].replace(key, "<redacted>").replace(token, "<redacted>")
    echo(format_table(results))
    echo("")
    for goal in evaluate_goals(results):
        echo(goal.line())
    json_path = output / f"hbtrio-bench-{stamp}.json"
    write_json(results, json_path)
    echo(f"figures: {json_path}")
    if plot:
        png = output / f"hbtrio-bench-{stamp}.png"
        why = write_plot(results, png)
        echo(f"plot: {png}" if why is None else f"plot: {why}")
    echo(f"run took {results.duration_s:.1f} s")
    for line in result_lines(results):
        echo(line)
