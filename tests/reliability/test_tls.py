"""TLS: the client verifies the server (CA and hostname) and never falls back to plain HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trustme

import hbtrio
from tests.faultproxy import open_fault_proxy
from tests.reliability._support import config_for, open_client, start_sim, upstream_context

FAST = {"timeout": 2.0, "retries": 1, "reconnect_initial": 0.01, "reconnect_max": 0.05}


async def test_accepted_with_ca_file(nursery: trio.Nursery, cert_dir: Path) -> None:
    info = await start_sim(nursery, cert_dir)
    config = config_for(info.host, info.port, info.ca_path, **FAST)
    assert config.base_url.startswith("https://")
    async with open_client(config) as client:
        assert client.state is hbtrio.ConnectionState.CONNECTED
        assert "master_account" in await client.get_accounts()


async def test_refused_without_the_right_ca(
    nursery: trio.Nursery, cert_dir: Path, tmp_path: Path
) -> None:
    info = await start_sim(nursery, cert_dir)
    # The system trust store does not know the simulator's CA.
    with trio.fail_after(10), pytest.raises(hbtrio.ConnectionFailed) as info_exc:
        async with open_client(config_for(info.host, info.port, None, **FAST)):
            pass
    assert not isinstance(info_exc.value, hbtrio.AuthenticationFailed)
    assert "certificate" in str(info_exc.value).lower()
    # Nor does another CA.
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with trio.fail_after(10), pytest.raises(hbtrio.ConnectionFailed) as other_exc:
        async with open_client(config_for(info.host, info.port, str(other), **FAST)):
            pass
    assert "certificate" in str(other_exc.value).lower()


async def test_refused_on_hostname_mismatch(nursery: trio.Nursery, cert_dir: Path) -> None:
    info = await start_sim(nursery, cert_dir)
    ca = trustme.CA()
    # A certificate from a trusted CA, but for another name.
    async with open_fault_proxy(
        info.host,
        info.port,
        tls_terminate=True,
        upstream_ssl=upstream_context(info),
        cert_hostnames=("other.example",),
        ca=ca,
    ) as wrong:
        assert wrong.ca_path is not None
        config = config_for("127.0.0.1", wrong.port, wrong.ca_path, **FAST)
        with trio.fail_after(10), pytest.raises(hbtrio.ConnectionFailed) as exc:
            async with open_client(config):
                pass
        assert "certificate" in str(exc.value).lower()
        assert wrong.requests.total() == 0  # nothing got through the failed handshake
    # The same CA with the right name is accepted (control).
    async with open_fault_proxy(
        info.host, info.port, tls_terminate=True, upstream_ssl=upstream_context(info), ca=ca
    ) as right:
        assert right.ca_path is not None
        config = config_for("127.0.0.1", right.port, right.ca_path, **FAST)
        async with open_client(config) as client:
            assert await client.get_exchanges()
        assert right.requests.total() > 0


async def test_plain_http_only_when_tls_is_off(nursery: trio.Nursery) -> None:
    info = await start_sim(nursery, None, tls=False)
    assert info.ca_path is None
    # tls=True (the default) against a plain server: the client speaks TLS and fails.
    first_bytes: list[bytes] = []

    async def record(stream: trio.SocketStream) -> None:
        data = await stream.receive_some(5)
        first_bytes.append(bytes(data))

    listeners = await nursery.start(trio.serve_tcp, record, 0)
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(15), pytest.raises(hbtrio.ConnectionFailed):
        async with open_client(config_for("127.0.0.1", port, None, **FAST)):
            pass
    assert first_bytes, "the client never connected"
    assert all(b[:1] == b"\x16" for b in first_bytes), first_bytes  # TLS handshake records
    with trio.fail_after(15), pytest.raises(hbtrio.ConnectionFailed):
        async with open_client(config_for(info.host, info.port, None, **FAST)):
            pass
    # Only tls=False speaks plain HTTP.
    config = config_for(info.host, info.port, None, tls=False, **FAST)
    assert config.base_url.startswith("http://")
    assert config.ws_url.startswith("ws://")
    async with open_client(config) as client:
        assert await client.get_accounts()
