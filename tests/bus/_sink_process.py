"""An MQTT sink alone in a process, for the Last Will test: ``_sink_process.py URL SPOOL``."""

from __future__ import annotations

import sys

import trio

from hbtrio.bus import MqttSink, MqttSinkConfig


async def main(url: str, spool: str) -> None:
    sink = MqttSink(MqttSinkConfig(url=url, spool_dir=spool, name="crashy", heartbeat=0.2))
    await sink.run()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
