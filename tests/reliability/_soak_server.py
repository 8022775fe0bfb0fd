"""The server side of the soak, run in its own process: simulator + fault proxy.

Keeping the simulator and the proxy out of the client's process lets the soak
measure the client's own memory (RSS) and latency without the server's share.

Run as ``python -m tests.reliability._soak_server --seed N --cert-dir DIR``. It
prints one JSON line ``{"port", "ca_path", "sim_port"}`` (the proxy's port and CA
the client must use), then answers JSON commands, one per stdin line, with one
JSON line each on stdout:

* ``{"cmd": "faults_on"}``: start injecting faults (the soak plan);
* ``{"cmd": "faults_off"}``: stop injecting (stalls and slow reads end too);
* ``{"cmd": "stats"}``: ``{"counts", "total", "order_log", "statuses"}``: the
  faults injected by kind/name, every order the simulator accepted
  (``[order_id, request]``), and each such order's current status;
* ``{"cmd": "open"}``: ``{"open": n}``, the accepted orders not yet terminal;
* ``{"cmd": "quit"}``: stop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from typing import Any, TextIO

import trio

from hbtrio.sim import serve
from tests.faultproxy import CorruptMode, Fault, FaultKind, FaultPlan, Trigger, open_fault_proxy
from tests.reliability._support import SECRET_KEY, upstream_context

ORDERS = "/trading/orders"


def soak_plan() -> FaultPlan:
    """The soak's faults: frequent resets around order placement, plus everything else."""
    return FaultPlan(
        # The answer to a placement is lost after the server created the order.
        Fault(
            FaultKind.RESET,
            Trigger.REQUEST_SENT,
            method="POST",
            path=ORDERS,
            wait_response=True,
            probability=0.16,
            name="reset_mid_order",
        ),
        # Reset right after the placement was forwarded (the server may or may not act).
        Fault(
            FaultKind.RESET,
            Trigger.REQUEST_SENT,
            method="POST",
            path=ORDERS,
            probability=0.06,
            name="reset_mid_order",
        ),
        # Reset halfway through sending a placement (never reaches the server whole).
        Fault(
            FaultKind.RESET,
            Trigger.REQUEST_PARTIAL,
            method="POST",
            path=ORDERS,
            probability=0.04,
            name="reset_mid_request",
        ),
        # Cancels lose their answers too.
        Fault(
            FaultKind.RESET,
            Trigger.REQUEST_SENT,
            method="POST",
            path=r"/trading/[^/]+/[^/]+/orders/[^/]+/cancel",
            wait_response=True,
            probability=0.1,
            name="reset_mid_cancel",
        ),
        # Any answer cut halfway, any connection dropped or stalled after a request.
        Fault(
            FaultKind.RESET, Trigger.RESPONSE_PARTIAL, probability=0.015, name="reset_mid_response"
        ),
        Fault(FaultKind.DROP, Trigger.REQUEST_SENT, probability=0.01, name="drop_after_request"),
        Fault(
            FaultKind.STALL,
            Trigger.REQUEST_SENT,
            probability=0.004,
            duration=2.5,
            name="stall_after_request",
        ),
        Fault(
            FaultKind.SLOW,
            Trigger.CONNECT,
            probability=0.1,
            chunk=512,
            delay=0.002,
            duration=5.0,
            name="slow_read",
        ),
        # WebSocket: corrupted pushes, killed and stalled connections.
        Fault(
            FaultKind.CORRUPT,
            Trigger.WS_FRAME_DOWN,
            probability=0.01,
            corrupt=CorruptMode.GARBLE,
            name="ws_garble",
        ),
        Fault(
            FaultKind.CORRUPT,
            Trigger.WS_FRAME_DOWN,
            probability=0.002,
            corrupt=CorruptMode.BAD_UTF8,
            name="ws_bad_utf8",
        ),
        Fault(FaultKind.RESET, Trigger.TIMER, interval=4.0, target="ws", name="ws_reset"),
        Fault(
            FaultKind.STALL,
            Trigger.TIMER,
            interval=9.0,
            target="ws",
            duration=6.0,
            name="ws_stall",
        ),
    )


def _reply(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value) + "\n")
    out.flush()


async def main(seed: int, cert_dir: str | None) -> None:
    """Run the simulator and the proxy; serve commands until ``quit`` or EOF."""
    out = os.fdopen(os.dup(1), "w")
    sys.stdout = sys.stderr  # nothing else may write to the command channel
    async with trio.open_nursery() as nursery:
        info = await nursery.start(
            partial(
                serve,
                api_key=SECRET_KEY,
                cert_dir=cert_dir,
                seed=seed,
                min_update_interval=0.05,
                book_change_rate=20.0,
            )
        )
        async with open_fault_proxy(
            info.host,
            info.port,
            tls_terminate=True,
            upstream_ssl=upstream_context(info),
            seed=seed,
            plan=soak_plan(),
        ) as proxy:
            proxy.stop_faults()
            _reply(out, {"port": proxy.port, "ca_path": proxy.ca_path, "sim_port": info.port})
            while True:
                line = await trio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    break
                cmd = json.loads(line).get("cmd")
                if cmd == "faults_on":
                    proxy.set_plan(soak_plan())
                    _reply(out, {"ok": True})
                elif cmd == "faults_off":
                    proxy.stop_faults()
                    _reply(out, {"ok": True})
                elif cmd == "open":
                    engine = info.state.engine
                    open_orders = sum(
                        1
                        for e in info.state.order_log
                        if e.order_id in engine.orders
                        and engine.orders[e.order_id].status
                        not in ("FILLED", "CANCELLED", "FAILED")
                    )
                    _reply(out, {"open": open_orders})
                elif cmd == "stats":
                    engine = info.state.engine
                    log = [[e.order_id, e.request] for e in info.state.order_log]
                    statuses = {
                        oid: (engine.orders[oid].status if oid in engine.orders else None)
                        for oid, _ in log
                    }
                    _reply(
                        out,
                        {
                            "counts": dict(proxy.counts),
                            "total": proxy.total,
                            "order_log": log,
                            "statuses": statuses,
                        },
                    )
                elif cmd == "quit":
                    _reply(out, {"ok": True})
                    break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cert-dir", default=None)
    args = parser.parse_args()
    trio.run(main, args.seed, args.cert_dir)
