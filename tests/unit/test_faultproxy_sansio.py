"""Sans-IO tests of the fault proxy's rule engine, HTTP splitter and WebSocket frames."""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.faultproxy import (
    CorruptMode,
    Fault,
    FaultKind,
    FaultPlan,
    HttpParser,
    Mark,
    Trigger,
    WsFrame,
    _Decider,
)

# -- sans-IO parts ---------------------------------------------------------------------


def test_decider_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        d = _Decider(FaultPlan(Fault(FaultKind.RESET, Trigger.CONNECT, probability=0.3)), seed)
        return [d.decide(Trigger.CONNECT) is not None for _ in range(1000)]

    a, b, c = run(1), run(1), run(2)
    assert a == b
    assert a != c
    assert 200 < sum(a) < 400


def test_decider_first_firing_rule_wins_and_disabled_fires_nothing() -> None:
    r1 = Fault(FaultKind.RESET, Trigger.REQUEST_SENT, path="/trading/orders", limit=1)
    r2 = Fault(FaultKind.DROP, Trigger.REQUEST_SENT)
    d = _Decider(FaultPlan(r1, r2), 0)
    assert d.decide(Trigger.REQUEST_SENT, method="POST", path="/trading/orders") is r1
    assert d.decide(Trigger.REQUEST_SENT, method="POST", path="/trading/orders") is r2
    assert d.decide(Trigger.REQUEST_SENT, method="GET", path="/") is r2
    assert d.decide(Trigger.CONNECT) is None
    d.enabled = False
    assert d.decide(Trigger.REQUEST_SENT, method="GET", path="/") is None


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault(FaultKind.RESET, Trigger.CONNECT, probability=2)
    with pytest.raises(ValueError):
        Fault(FaultKind.RESET, Trigger.CONNECT, every=0)


def _frame(payload: bytes, mask: bytes | None, opcode: int = 1) -> bytes:
    head = bytearray([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head.append(bit | n)
    elif n < 65536:
        head.append(bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(bit | 127)
        head += n.to_bytes(8, "big")
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


def test_ws_frame_corrupt_masked_keeps_mask() -> None:
    raw = _frame(b'{"a":1}', b"\x01\x02\x03\x04")
    parser = HttpParser("request", deque())
    parser.switch_to_ws()
    (frame,) = parser.feed(raw)
    assert isinstance(frame, WsFrame)
    assert frame.plain_payload() == b'{"a":1}'
    frame.corrupt(CorruptMode.GARBLE)
    assert frame.plain_payload() == b"####:1}"
    frame.corrupt(CorruptMode.BAD_OPCODE)
    assert frame.opcode == 3 and not frame.is_data


requests_st = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST", "DELETE"]),
        st.sampled_from(["/", "/trading/orders", "/accounts/"]),
        st.binary(max_size=300),
        st.booleans(),  # chunked
    ),
    min_size=1,
    max_size=5,
)


def _encode_request(method: str, path: str, body: bytes, chunked: bool) -> bytes:
    head = f"{method} {path}?q=1 HTTP/1.1\r\nHost: x\r\n"
    if chunked:
        chunks = b"".join(
            f"{len(body[i : i + 100]):x}\r\n".encode() + body[i : i + 100] + b"\r\n"
            for i in range(0, len(body), 100)
        )
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@given(reqs=requests_st, cuts=st.lists(st.integers(0, 5000), max_size=8))
@settings(max_examples=60)
def test_request_parser_splits_any_way(
    reqs: list[tuple[str, str, bytes, bool]], cuts: list[int]
) -> None:
    stream = b"".join(_encode_request(*r) for r in reqs)
    pending: deque[tuple[str, str]] = deque()
    parser = HttpParser("request", pending)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    items = []
    for a, b in itertools.pairwise(points):
        items += parser.feed(stream[a:b])
    data = b"".join(i for i in items if isinstance(i, bytes))
    assert data == stream
    marks = [(m.what, m.method, m.path) for m in items if isinstance(m, Mark)]
    expected = [x for m, p, _, _ in reqs for x in (("start", m, p), ("end", m, p))]
    assert marks == expected
    assert list(pending) == [(m, p) for m, p, _, _ in reqs]


@given(cuts=st.lists(st.integers(0, 5000), max_size=8))
@settings(max_examples=40)
def test_response_parser_head_chunked_upgrade_then_frames(cuts: list[int]) -> None:
    pending = deque([("HEAD", "/a"), ("GET", "/b"), ("DELETE", "/c"), ("GET", "/ws")])
    stream = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"  # HEAD: no body
        + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        + b"HTTP/1.1 204 No Content\r\n\r\n"
        + b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        + _frame(b"x" * 200, None)
        + _frame(b"y" * 70000, None, opcode=2)
    )
    parser = HttpParser("response", pending)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    items = []
    for a, b in itertools.pairwise(points):
        items += parser.feed(stream[a:b])
    rebuilt = b"".join(
        i.to_bytes() if isinstance(i, WsFrame) else i for i in items if not isinstance(i, Mark)
    )
    assert rebuilt == stream
    ends = [(m.method, m.status) for m in items if isinstance(m, Mark) and m.what == "end"]
    assert ends == [("HEAD", 200), ("GET", 200), ("DELETE", 204), ("GET", 101)]
    frames = [i for i in items if isinstance(i, WsFrame)]
    assert [(f.opcode, len(f.payload)) for f in frames] == [(1, 200), (2, 70000)]
