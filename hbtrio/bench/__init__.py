"""hbtrio's bundled latency suite (``hbtrio bench``).

The suite compares three contenders on the same server, each in its own process,
interleaved in rounds: hbtrio itself, the official ``hummingbot-api-client`` (the
"peer") and a hand-written "floor" client that shows what the machine and the
server allow. See ``docs/benchmarks.md`` for the method.

Modules:
    stats: HDR-style latency histograms (3 significant digits).
    protocol: the JSON-lines protocol between the runner and its worker processes.
    floor, peer, contender_hbtrio: the contenders.
    worker: the entry point of a contender process.
    report: RESULT lines, goals, the table, the JSON file and the plot.
    runner: the orchestrator. cli: the ``hbtrio bench`` command.
"""
