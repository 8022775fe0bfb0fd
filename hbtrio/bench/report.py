"""Results of a bench run: RESULT lines, goals, the table, the JSON file, the plot.

Everything here is pure (no I/O except ``write_json`` and ``write_plot``)
so it can be tested without a server.
"""

from __future__ import annotations

import math
import os
import platform
import ssl
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import msgspec

from .._cli_ops.render import plain_table
from .protocol import BRIDGE_CONTENDERS, CONTENDERS
from .stats import LatencyHistogram

__all__ = [
    "CONTENDER_ORDER",
    "JSON_SCHEMA",
    "SCHEMA_ID",
    "Goal",
    "Results",
    "Throughput",
    "evaluate_goals",
    "format_table",
    "machine_description",
    "result_lines",
    "to_json",
    "write_json",
    "write_plot",
]

#: Column order of contenders in RESULT lines and tables.
CONTENDER_ORDER: Final = CONTENDERS
#: Contenders every RESULT line names (``NA`` when missing); the bridges join where they ran.
_CORE: Final = tuple(c for c in CONTENDERS if c not in BRIDGE_CONTENDERS)
#: Identifier of the JSON file format.
SCHEMA_ID: Final = "hbtrio-bench/1"
_LATENCY_SCENARIOS: Final = ("order_place", "order_book", "ticker")
#: Goal of the order_event scenario: p99 below this many microseconds.
ORDER_EVENT_P99_GOAL_US: Final = 250_000.0


@dataclass
class Throughput:
    """Accumulated throughput figures of one contender at one concurrency.

    Attributes:
        requests: Requests completed.
        wall_s: Wall-clock seconds.
        cpu_s: Client process CPU seconds.
    """

    requests: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def add(self, requests: int, wall_s: float, cpu_s: float) -> None:
        """Add one measured window.

        Args:
            requests: Requests (or messages) completed in the window.
            wall_s: Its wall-clock length.
            cpu_s: CPU seconds the client used in it.
        """
        self.requests += requests
        self.wall_s += wall_s
        self.cpu_s += cpu_s

    @property
    def per_s(self) -> float:
        """Requests per second (``nan`` before any window)."""
        return self.requests / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def cpu_us(self) -> float:
        """Client CPU microseconds per request (``nan`` before any request)."""
        return self.cpu_s / self.requests * 1e6 if self.requests else math.nan


@dataclass
class Results:
    """Every figure of one run.

    Attributes:
        mode: ``quick``, ``full`` or ``custom``.
        started_at: ISO-8601 UTC start time.
        duration_s: Wall-clock length of the run.
        machine: ``machine_description``.
        target: Where the server was (no credentials).
        settings: The run's settings.
        contenders: Per contender: ``available``, ``note``, ``info`` (versions).
        latency: ``scenario -> contender -> histogram``.
        throughput: ``concurrency -> contender -> figures``.
        stream: ``contender -> figures`` (``requests`` counts snapshots).
        extras: hbtrio-only scenarios: ``scenario -> {"histogram"?, "values"}``.
        errors: ``{"contender", "scenario", "error"}`` of every failed step.
    """

    mode: str = "custom"
    started_at: str = ""
    duration_s: float = 0.0
    machine: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    contenders: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, dict[str, LatencyHistogram]] = field(default_factory=dict)
    throughput: dict[int, dict[str, Throughput]] = field(default_factory=dict)
    stream: dict[str, Throughput] = field(default_factory=dict)
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    def latency_of(self, scenario: str, contender: str) -> LatencyHistogram:
        """The histogram of a scenario and contender, created on first use.

        Args:
            scenario: Scenario name.
            contender: Contender name.

        Returns:
            The histogram.
        """
        return self.latency.setdefault(scenario, {}).setdefault(contender, LatencyHistogram())

    def throughput_of(self, concurrency: int, contender: str) -> Throughput:
        """The throughput figures of a level and contender, created on first use.

        Args:
            concurrency: Concurrency level.
            contender: Contender name.

        Returns:
            The figures.
        """
        return self.throughput.setdefault(concurrency, {}).setdefault(contender, Throughput())

    def stream_of(self, contender: str) -> Throughput:
        """The stream figures of a contender, created on first use.

        Args:
            contender: Contender name.

        Returns:
            The figures.
        """
        return self.stream.setdefault(contender, Throughput())


# -- figures -----------------------------------------------------------------------------


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


def _fmt(value: float | None) -> str:
    v = _num(value)
    return "NA" if v is None else f"{v:.1f}"


def _pct(results: Results, scenario: str, contender: str, p: float) -> float | None:
    hist = results.latency.get(scenario, {}).get(contender)
    if hist is None or not hist.count:
        return None
    return hist.percentile(p)


def _extra_pct(results: Results, scenario: str, p: float) -> float | None:
    hist = results.extras.get(scenario, {}).get("histogram")
    if not isinstance(hist, LatencyHistogram) or not hist.count:
        return None
    return hist.percentile(p)


def _extra_value(results: Results, scenario: str, name: str) -> float | None:
    values = results.extras.get(scenario, {}).get("values", {})
    value = values.get(name) if isinstance(values, Mapping) else None
    return _num(float(value)) if isinstance(value, int | float) else None


def result_lines(results: Results) -> list[str]:
    """The machine-readable ``RESULT`` lines, one per scenario and concurrency level.

    Missing figures (a contender skipped or failed) are written ``NA``.

    Args:
        results: The run.

    Returns:
        The lines, without newlines.
    """
    lines: list[str] = []
    for scenario in _LATENCY_SCENARIOS:
        if scenario not in results.latency:
            continue
        parts = [f"RESULT scenario={scenario}"]
        # The bridge contenders (issue #16) appear only where they have figures.
        ran = results.latency[scenario]
        for c in (c for c in CONTENDER_ORDER if c not in BRIDGE_CONTENDERS or c in ran):
            parts.append(f"{c}_p50_us={_fmt(_pct(results, scenario, c, 50))}")
            parts.append(f"{c}_p99_us={_fmt(_pct(results, scenario, c, 99))}")
        lines.append(" ".join(parts))
    for level in sorted(results.throughput):
        row = results.throughput[level]
        parts = [f"RESULT scenario=throughput concurrency={level}"]
        parts += [f"{c}_per_s={_fmt(row[c].per_s if c in row else None)}" for c in _CORE]
        parts += [f"{c}_cpu_us={_fmt(row[c].cpu_us if c in row else None)}" for c in _CORE]
        lines.append(" ".join(parts))
    if results.stream:
        parts = ["RESULT scenario=stream"]
        parts += [
            f"{c}_per_s={_fmt(results.stream[c].per_s if c in results.stream else None)}"
            for c in _CORE
        ]
        lines.append(" ".join(parts))
    if "order_event" in results.extras:
        lines.append(
            "RESULT scenario=order_event"
            f" hbtrio_p50_us={_fmt(_extra_pct(results, 'order_event', 50))}"
            f" hbtrio_p99_us={_fmt(_extra_pct(results, 'order_event', 99))}"
        )
    if "fanout" in results.extras:
        lines.append(
            "RESULT scenario=fanout"
            f" hbtrio_p50_us={_fmt(_extra_value(results, 'fanout', 'added_p50_us'))}"
            f" hbtrio_p99_us={_fmt(_extra_value(results, 'fanout', 'added_p99_us'))}"
        )
    if "memory" in results.extras:
        lines.append(
            "RESULT scenario=memory"
            f" hbtrio_rss_mb={_fmt(_extra_value(results, 'memory', 'rss_mb'))}"
            f" hbtrio_delta_mb={_fmt(_extra_value(results, 'memory', 'delta_mb'))}"
        )
    return lines


@dataclass(frozen=True)
class Goal:
    """One goal of issue #6, reported (never asserted).

    Attributes:
        name: Short name.
        met: ``True``/``False``, or ``None`` when a figure is missing.
        detail: The figures compared.
    """

    name: str
    met: bool | None
    detail: str

    def line(self) -> str:
        """One printable line: ``GOAL name: met|NOT met|n/a (detail)``.

        Returns:
            The line.
        """
        verdict = {True: "met", False: "NOT met", None: "n/a"}[self.met]
        return f"GOAL {self.name}: {verdict} ({self.detail})"


def _goal(
    name: str,
    figures: Iterable[float | None],
    test: Any,
    detail: Any,
    labels: Iterable[str] = (),
) -> Goal:
    values = [_num(v) for v in figures]
    if any(v is None for v in values):
        names = list(labels)
        missing = [n for n, v in zip(names, values, strict=False) if v is None]
        what = (
            "no figure for " + ", ".join(missing)
            if missing and len(names) == len(values)
            else f"{sum(v is None for v in values)} of its {len(values)} figures are missing"
        )
        return Goal(
            name,
            None,
            f"not computed: {what} (the scenario was not run, or a contender was "
            "unavailable or failed: see the notes and errors above)",
        )
    return Goal(name, bool(test(*values)), detail(*values))


def evaluate_goals(results: Results) -> list[Goal]:
    """Compare the figures with the goals of issue #6.

    Args:
        results: The run.

    Returns:
        One ``Goal`` per goal, in a fixed order.
    """
    goals: list[Goal] = []
    for scenario in ("order_place", "order_book"):
        h50, p50, f50 = (_pct(results, scenario, c, 50) for c in ("hbtrio", "peer", "floor"))
        goals.append(
            _goal(
                f"{scenario}_p50_overhead",
                (h50, p50, f50),
                lambda h, p, f: h - f <= 0.5 * (p - f),
                lambda h, p, f: f"hbtrio-floor {h - f:.1f} us <= 0.5 x (peer-floor {p - f:.1f} us)",
                [f"{c} {scenario} p50" for c in ("hbtrio", "peer", "floor")],
            )
        )
        h99, p99 = (_pct(results, scenario, c, 99) for c in ("hbtrio", "peer"))
        goals.append(
            _goal(
                f"{scenario}_p99",
                (h99, p99),
                lambda h, p: h <= p,
                lambda h, p: f"hbtrio p99 {h:.1f} us <= peer p99 {p:.1f} us",
                [f"{c} {scenario} p99" for c in ("hbtrio", "peer")],
            )
        )
    row = results.throughput.get(32, {})
    h_tp, p_tp = row.get("hbtrio"), row.get("peer")
    goals.append(
        _goal(
            "throughput_c32_cpu",
            (h_tp.cpu_us if h_tp else None, p_tp.cpu_us if p_tp else None),
            lambda h, p: h <= 0.6 * p,
            lambda h, p: f"hbtrio {h:.1f} us/request <= 0.6 x peer {p:.1f} us/request",
            ("hbtrio CPU at concurrency 32", "peer CPU at concurrency 32"),
        )
    )
    goals.append(
        _goal(
            "throughput_c32_rate",
            (h_tp.per_s if h_tp else None, p_tp.per_s if p_tp else None),
            lambda h, p: h >= p,
            lambda h, p: f"hbtrio {h:.1f}/s >= peer {p:.1f}/s",
            ("hbtrio rate at concurrency 32", "peer rate at concurrency 32"),
        )
    )
    h_s, f_s = results.stream.get("hbtrio"), results.stream.get("floor")
    goals.append(
        _goal(
            "stream_rate",
            (h_s.per_s if h_s else None, f_s.per_s if f_s else None),
            lambda h, f: h >= 0.7 * f,
            lambda h, f: f"hbtrio {h:.1f}/s >= 0.7 x floor {f:.1f}/s",
            ("hbtrio stream rate", "floor stream rate"),
        )
    )
    goals.append(
        _goal(
            "order_event_p99",
            (_extra_pct(results, "order_event", 99),),
            lambda h: h < ORDER_EVENT_P99_GOAL_US,
            lambda h: f"hbtrio p99 {h / 1000:.1f} ms < {ORDER_EVENT_P99_GOAL_US / 1000:.0f} ms",
            ("hbtrio order_event p99",),
        )
    )
    # Issue #16: the asyncio bridge's cost, beside the official (asyncio) client.
    a50, p50, f50 = (_pct(results, "order_place", c, 50) for c in ("hbtrio-aio", "peer", "floor"))
    goals.append(
        _goal(
            "aio_order_place_p50_overhead",
            (a50, p50, f50),
            lambda a, p, f: a - f <= 0.5 * (p - f),
            lambda a, p, f: f"hbtrio-aio-floor {a - f:.1f} us <= 0.5 x (peer-floor {p - f:.1f} us)",
            [f"{c} order_place p50" for c in ("hbtrio-aio", "peer", "floor")],
        )
    )
    a99, p99 = (_pct(results, "order_place", c, 99) for c in ("hbtrio-aio", "peer"))
    goals.append(
        _goal(
            "aio_order_place_p99",
            (a99, p99),
            lambda a, p: a <= p,
            lambda a, p: f"hbtrio-aio p99 {a:.1f} us <= peer p99 {p:.1f} us",
            [f"{c} order_place p99" for c in ("hbtrio-aio", "peer")],
        )
    )
    return goals


# -- table ---------------------------------------------------------------------------------


def format_table(results: Results) -> str:
    """Readable tables of every figure (plain text, numbers aligned on the point).

    Args:
        results: The run.

    Returns:
        The table (several lines).
    """
    out: list[str] = []
    rows: list[tuple[str, str, LatencyHistogram]] = []
    for scenario in _LATENCY_SCENARIOS:
        for c in CONTENDER_ORDER:
            hist = results.latency.get(scenario, {}).get(c)
            if hist is not None and hist.count:
                rows.append((scenario, c, hist))
    for scenario in ("order_event", "fanout"):
        hist = results.extras.get(scenario, {}).get("histogram")
        if isinstance(hist, LatencyHistogram) and hist.count:
            rows.append((scenario, "hbtrio", hist))
    if rows:
        cells = []
        for scenario, c, hist in rows:
            s = hist.summary()
            figures = (s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us, s.mean_us)
            cells.append([scenario, c, str(s.count), *(f"{v:.1f}" for v in figures)])
        heads = ("scenario", "contender", "count", "p50 us", "p90 us", "p99 us", "p99.9 us")
        out += ["Latency (microseconds)", plain_table((*heads, "max us", "mean us"), cells)]
    if results.throughput:
        out += ["", "Throughput (order_book depth 20)"]
        cells = [
            [str(level), c, str(tp.requests), f"{tp.per_s:.1f}", f"{tp.cpu_us:.1f}"]
            for level in sorted(results.throughput)
            for c in CONTENDER_ORDER
            if (tp := results.throughput[level].get(c)) is not None
        ]
        out.append(
            plain_table(("concurrency", "contender", "requests", "per s", "cpu us/req"), cells)
        )
    if results.stream:
        out += ["", "Stream (order-book snapshots, update_interval 0)"]
        cells = [
            [c, str(st.requests), f"{st.per_s:.1f}", f"{st.cpu_us:.1f}"]
            for c in CONTENDER_ORDER
            if (st := results.stream.get(c)) is not None
        ]
        out.append(plain_table(("contender", "snapshots", "per s", "cpu us/msg"), cells))
    for scenario in ("fanout", "memory", "order_event"):
        values = results.extras.get(scenario, {}).get("values")
        if values:
            shown = ", ".join(f"{k}={_fmt(float(v))}" for k, v in sorted(values.items()))
            out += ["", f"{scenario} (hbtrio): {shown}"]
    for name, entry in results.contenders.items():
        if not entry.get("available", False):
            out += ["", f"note: {name} skipped: {entry.get('note', '')}"]
    for err in results.errors:
        out.append(f"error: {err['contender']} {err['scenario']}: {err['error']}")
    return "\n".join(out)


# -- JSON ----------------------------------------------------------------------------------

_NUM = {"type": ["number", "null"]}
_LATENCY_ENTRY = {
    "type": "object",
    "required": ["summary", "histogram"],
    "properties": {
        "summary": {
            "type": "object",
            "required": [
                "count",
                "mean_us",
                "min_us",
                "p50_us",
                "p90_us",
                "p99_us",
                "p999_us",
                "max_us",
            ],
            "properties": {"count": {"type": "integer", "minimum": 0}},
            "additionalProperties": _NUM,
        },
        "histogram": {
            "type": "object",
            "required": ["count", "sub_buckets", "counts"],
        },
    },
}
_RATE_ENTRY = {
    "type": "object",
    "required": ["count", "wall_s", "cpu_s", "per_s", "cpu_us"],
    "properties": {
        "count": {"type": "integer", "minimum": 0},
        "wall_s": {"type": "number"},
        "cpu_s": {"type": "number"},
        "per_s": _NUM,
        "cpu_us": _NUM,
    },
}
#: JSON Schema (draft 2020-12) of the file ``write_json`` writes.
JSON_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "hbtrio bench results",
    "type": "object",
    "required": [
        "schema",
        "mode",
        "started_at",
        "duration_s",
        "machine",
        "target",
        "settings",
        "contenders",
        "latency",
        "throughput",
        "stream",
        "hbtrio_only",
        "goals",
        "errors",
        "result_lines",
    ],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "mode": {"enum": ["quick", "full", "custom"]},
        "started_at": {"type": "string"},
        "duration_s": {"type": "number"},
        "machine": {
            "type": "object",
            "required": [
                "cpu_model",
                "logical_cpus",
                "usable_cpus",
                "python",
                "platform",
                "versions",
            ],
        },
        "target": {"type": "object", "required": ["url", "simulator"]},
        "settings": {"type": "object"},
        "contenders": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["available", "note", "info"],
                "properties": {"available": {"type": "boolean"}},
            },
        },
        "latency": {
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": _LATENCY_ENTRY},
        },
        "throughput": {
            "type": "object",
            "propertyNames": {"pattern": "^[0-9]+$"},
            "additionalProperties": {"type": "object", "additionalProperties": _RATE_ENTRY},
        },
        "stream": {"type": "object", "additionalProperties": _RATE_ENTRY},
        "hbtrio_only": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["values"],
                "properties": {
                    "values": {"type": "object", "additionalProperties": _NUM},
                    "summary": _LATENCY_ENTRY["properties"]["summary"],  # type: ignore[index]
                },
            },
        },
        "goals": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "met", "detail"],
                "properties": {"met": {"type": ["boolean", "null"]}},
            },
        },
        "errors": {"type": "array"},
        "result_lines": {"type": "array", "items": {"type": "string", "pattern": "^RESULT "}},
    },
}


def _summary_dict(hist: LatencyHistogram) -> dict[str, Any]:
    raw = msgspec.structs.asdict(hist.summary())
    return {k: (_num(v) if isinstance(v, float) else v) for k, v in raw.items()}


def _rate_dict(tp: Throughput) -> dict[str, Any]:
    return {
        "count": tp.requests,
        "wall_s": tp.wall_s,
        "cpu_s": tp.cpu_s,
        "per_s": _num(tp.per_s),
        "cpu_us": _num(tp.cpu_us),
    }


def to_json(results: Results) -> dict[str, Any]:
    """Every figure of a run as a JSON-ready dict (valid against ``JSON_SCHEMA``).

    Args:
        results: The run.

    Returns:
        The dict.
    """
    hbtrio_only: dict[str, Any] = {}
    for scenario, extra in results.extras.items():
        entry: dict[str, Any] = {
            "values": {k: _num(float(v)) for k, v in extra.get("values", {}).items()}
        }
        hist = extra.get("histogram")
        if isinstance(hist, LatencyHistogram) and hist.count:
            entry["summary"] = _summary_dict(hist)
            entry["histogram"] = hist.to_dict()
        hbtrio_only[scenario] = entry
    return {
        "schema": SCHEMA_ID,
        "mode": results.mode,
        "started_at": results.started_at,
        "duration_s": results.duration_s,
        "machine": results.machine,
        "target": results.target,
        "settings": results.settings,
        "contenders": results.contenders,
        "latency": {
            scenario: {
                c: {"summary": _summary_dict(h), "histogram": h.to_dict()}
                for c, h in per.items()
                if h.count
            }
            for scenario, per in results.latency.items()
        },
        "throughput": {
            str(level): {c: _rate_dict(tp) for c, tp in per.items()}
            for level, per in sorted(results.throughput.items())
        },
        "stream": {c: _rate_dict(tp) for c, tp in results.stream.items()},
        "hbtrio_only": hbtrio_only,
        "goals": [
            {"name": g.name, "met": g.met, "detail": g.detail} for g in evaluate_goals(results)
        ],
        "errors": results.errors,
        "result_lines": result_lines(results),
    }


def write_json(results: Results, path: Path) -> None:
    """Write ``to_json`` to a file (pretty-printed).

    Args:
        results: The run.
        path: Destination; parent directories are created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(to_json(results)), indent=2) + b"\n")


# -- plot ----------------------------------------------------------------------------------


def write_plot(results: Results, path: Path) -> str | None:
    """Plot the latency distributions per contender (HDR-style percentile curves).

    matplotlib is imported lazily (it is in the ``bench`` extra).

    Args:
        results: The run.
        path: PNG destination; parent directories are created.

    Returns:
        ``None`` when written, else why not (e.g. matplotlib missing).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'hbtrio[bench]'): plot skipped"
    panels: list[tuple[str, dict[str, LatencyHistogram]]] = []
    for scenario in _LATENCY_SCENARIOS:
        per = {c: h for c, h in results.latency.get(scenario, {}).items() if h.count}
        if per:
            panels.append((scenario, per))
    for scenario in ("order_event", "fanout"):
        hist = results.extras.get(scenario, {}).get("histogram")
        if isinstance(hist, LatencyHistogram) and hist.count:
            panels.append((f"{scenario} (hbtrio only)", {"hbtrio": hist}))
    if not panels:
        return "no latency figures to plot"
    colours = {"hbtrio": "tab:blue", "peer": "tab:orange", "floor": "tab:green"}
    colours.update({"hbtrio-aio": "tab:purple", "hbtrio-sync": "tab:brown"})
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    ticks = [0.0, 0.9, 0.99, 0.999, 0.9999]
    for ax, (title, per) in zip(axes[:, 0], panels, strict=True):
        for c in CONTENDER_ORDER:
            hist = per.get(c)
            if hist is None:
                continue
            xs, ys, seen = [], [], 0
            for value, n in hist.buckets():
                seen += n
                q = min(seen / hist.count, 1 - 1e-5)
                xs.append(-math.log10(1 - q))
                ys.append(max(value, 1e-3))
            ax.step(xs, ys, where="post", label=c, color=colours.get(c))
        ax.set_title(title)
        ax.set_yscale("log")
        ax.set_ylabel("latency (us)")
        ax.set_xticks([-math.log10(1 - q) for q in ticks])
        ax.set_xticklabels([f"{q * 100:g}%" for q in ticks])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left")
    axes[-1, 0].set_xlabel("percentile")
    fig.suptitle(f"hbtrio bench ({results.mode}) - {results.machine.get('cpu_model', '')}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


# -- machine -------------------------------------------------------------------------------

_VERSIONED: Final = (
    "hbtrio",
    "trio",
    "trio-websocket",
    "msgspec",
    "h11",
    "hypercorn",
    "aiohttp",
    "hummingbot-api-client",
    "psutil",
    "matplotlib",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_description() -> dict[str, Any]:
    """Describe the machine and software the run used.

    Returns:
        CPU model, logical and usable CPUs, memory, OS, Python, OpenSSL and
        package versions.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count() or 0
    memory: int | None = None
    physical: int | None = None
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]

        memory = int(psutil.virtual_memory().total)
        physical = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is in the bench extra
        pass
    versions: dict[str, str] = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count() or 0,
        "physical_cpus": physical,
        "usable_cpus": usable,
        "memory_bytes": memory,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": " ".join(platform.python_build()),
        "executable": sys.executable,
        "openssl": ssl.OPENSSL_VERSION,
        "versions": versions,
    }
