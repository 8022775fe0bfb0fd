"""Small parts of the bench suite: protocol, HTTP parsing, redaction, options."""

from __future__ import annotations

import argparse
import base64
import io
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from hbtrio.bench import cli, protocol, runner
from hbtrio.bench.contender_hbtrio import availability
from hbtrio.bench.floor import HttpError, _Parser, parse_response_head
from hbtrio.bench.runner import (
    SIM_ACCOUNTS,
    BenchError,
    Settings,
    SimProcess,
    contender_targets,
    parse_target_url,
    settings_for,
)
from hbtrio.bench.worker import redact


def test_protocol_round_trip_keeps_secret_out_of_repr() -> None:
    target = protocol.Target(host="127.0.0.1", port=8443, api_key="user:s3cret-pass")
    line = protocol.encode(protocol.Setup(target))
    assert line.endswith(b"\n")
    back = protocol.decode_command(line)
    assert isinstance(back, protocol.Setup)
    assert back.target.api_key == "user:s3cret-pass"
    assert "s3cret" not in repr(back) and "s3cret" not in str(back.target)
    reply = protocol.decode_reply(protocol.encode(protocol.Reply(samples_us=[1.5], count=1)))
    assert reply.samples_us == [1.5] and reply.ok
    with pytest.raises(msgspec.ValidationError):
        protocol.decode_command(b'{"type":"nope"}')


def test_response_head_parsing() -> None:
    head = b"HTTP/1.1 201 Created\r\ncontent-length: 12\r\nConnection: keep-alive"
    assert parse_response_head(head) == (201, 12, False, False)
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nconnection: close"
    assert parse_response_head(head) == (200, None, True, True)
    with pytest.raises(HttpError):
        parse_response_head(b"garbage")


def test_parser_content_length_split_and_pipelined() -> None:
    p = _Parser()
    p.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel")
    assert p.next_response() is None
    p.feed(b"loHTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}")
    assert p.next_response() == (200, b"hello")
    assert p.next_response() == (404, b"{}")
    assert p.next_response() is None


def test_parser_chunked() -> None:
    p = _Parser()
    p.feed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert p.next_response() is None
    p.feed(b"2\r\nde\r\n0\r\n\r\n")
    assert p.next_response() == (200, b"abcde")
    assert not p.buf


def test_redact_removes_pair_password_and_base64() -> None:
    secret = "admin:hunter22"
    token = base64.b64encode(secret.encode()).decode()
    text = f"failed for admin:hunter22 with ?token={token} and password hunter22"
    cleaned = redact(text, secret)
    assert "hunter22" not in cleaned and token not in cleaned
    assert cleaned.count("<redacted>") == 3
    assert redact("x", None) == "x"


def test_parse_target_url() -> None:
    assert parse_target_url("https://127.0.0.1:8443") == ("127.0.0.1", 8443, True)
    assert parse_target_url("http://localhost") == ("localhost", 80, False)
    with pytest.raises(ValueError):
        parse_target_url("ftp://x")
    with pytest.raises(ValueError):
        parse_target_url("https://u:p@host:1")


def test_modes_meet_sample_minimums() -> None:
    quick, full = settings_for("quick"), settings_for("full")
    assert quick.samples >= 2000 and full.samples >= 20_000
    assert quick.rounds * quick.batch >= quick.samples
    assert full.mode == "full" and quick.mode == "quick"
    custom = settings_for("quick", samples=10, batch=None)
    assert custom.samples == 10 and custom.mode == "custom" and custom.batch == Settings.batch
    with pytest.raises(ValueError):
        settings_for("slow")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_options() -> None:
    args = _parse("--quick", "--contenders", "peer,floor", "--scenarios", "order_book")
    assert args.quick and args.contenders == ("peer", "floor")
    assert args.scenarios == ("order_book",)
    with pytest.raises(SystemExit):
        _parse("--contenders", "nobody")
    with pytest.raises(SystemExit):
        _parse("--quick", "--full")


def test_cli_rejects_credentials_without_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text("a:b\n")
    key.chmod(0o600)
    assert cli.run(_parse("--api-key-file", str(key))) == 2
    assert "--url" in capsys.readouterr().err
    assert cli.run(_parse("--account", "mine")) == 2
    assert "--url" in capsys.readouterr().err
    assert cli.run(_parse("--samples", "0")) == 2


def test_cli_refuses_a_credential_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hbtrio.cli import main

    code = main(["bench", "--url", "https://127.0.0.1:1", "--api-key", "user:s3cret-pass"])
    err = capsys.readouterr().err
    assert code == 2 and "HBTRIO_API_KEY" in err and "--api-key-file" in err
    assert "s3cret" not in err


def test_bench_is_registered_in_the_hbtrio_command() -> None:
    from hbtrio.cli import _COMMANDS

    assert _COMMANDS["bench"][0] == "hbtrio.bench.cli"


def test_availability_is_a_note_or_none() -> None:
    note = availability()
    import hbtrio

    if hasattr(hbtrio, "open_client"):
        assert note is None
    else:
        assert note is not None and "open_client" in note


BASE = protocol.Target(host="127.0.0.1", port=8443, api_key="u:p")


def test_contender_targets_own_accounts_on_a_started_simulator() -> None:
    targets = contender_targets(BASE, protocol.CONTENDERS, own_accounts=True)
    accounts = {name: t.account for name, t in targets.items()}
    assert accounts == {
        "hbtrio": "bench_hbtrio",
        "peer": "bench_peer",
        "floor": "bench_floor",
        "hbtrio-aio": "bench_hbtrio-aio",
        "hbtrio-sync": "bench_hbtrio-sync",
    }
    assert len(set(accounts.values())) == len(protocol.CONTENDERS)
    for t in targets.values():  # same server, credential and market
        assert (t.host, t.port, t.api_key, t.connector, t.trading_pair) == (
            BASE.host,
            BASE.port,
            BASE.api_key,
            BASE.connector,
            BASE.trading_pair,
        )
    shared = contender_targets(BASE, protocol.CONTENDERS, own_accounts=False)
    assert {t.account for t in shared.values()} == {"master_account"}


def test_simulator_is_started_with_every_contender_account() -> None:
    sim = SimProcess(Path("/nonexistent"), "u:p")
    args = sim._args
    assert args[args.index("--accounts") + 1] == ",".join(SIM_ACCOUNTS.values())


def _targets_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **kwargs: Any
) -> tuple[dict[str, protocol.Target], dict[str, Any]]:
    """Run ``run_bench`` up to the workers' start and return the targets given to them."""
    seen: dict[str, protocol.Target] = {}
    target_info: dict[str, Any] = {}

    class FakeSim:
        def __init__(self, workdir: Path, api_key: str, **kw: Any) -> None:
            self.url, self.ca_file = "https://127.0.0.1:1234", None

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

    def fake_start(run: Any, targets: dict[str, protocol.Target], logdir: Path) -> None:
        seen.update(targets)
        target_info.update(run.results.target)

    monkeypatch.setattr(runner, "SimProcess", FakeSim)
    monkeypatch.setattr(runner, "_start_workers", fake_start)
    with pytest.raises(BenchError, match="no contender"):
        runner.run_bench(
            settings_for("quick"), output=tmp_path, plot=False, show_progress=False, **kwargs
        )
    return seen, target_info


def test_run_bench_own_accounts_with_its_simulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    targets, info = _targets_used(monkeypatch, tmp_path)
    assert {n: t.account for n, t in targets.items()} == SIM_ACCOUNTS
    assert info["accounts"] == SIM_ACCOUNTS
    assert len({t.api_key for t in targets.values()}) == 1


def test_run_bench_shared_account_with_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    targets, info = _targets_used(
        monkeypatch, tmp_path, url="https://example.invalid:8000", api_key="u:p"
    )
    assert {t.account for t in targets.values()} == {"master_account"}
    targets, info = _targets_used(
        monkeypatch, tmp_path, url="https://example.invalid:8000", api_key="u:p", account="acct"
    )
    assert {t.account for t in targets.values()} == {"acct"}
    assert set(info["accounts"].values()) == {"acct"}
    with pytest.raises(ValueError):
        runner.run_bench(
            settings_for("quick"),
            url="https://example.invalid:8000",
            api_key="u:p",
            account="bad name",
            output=tmp_path,
            plot=False,
            show_progress=False,
        )


class _FakeWorker:
    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name = name
        self._calls = calls

    def call(self, command: protocol.Command, timeout: float) -> protocol.Reply:
        self._calls.append((self.name, type(command).__name__))
        return protocol.Reply()


def _run_with(accounts: dict[str, str]) -> tuple[runner._Run, list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []
    run = runner._Run(settings_for("quick"), runner.Results(), runner.Progress(1, enabled=False))
    run.workers = {n: cast(Any, _FakeWorker(n, calls)) for n in accounts}
    run.accounts = dict(accounts)
    return run, calls


def test_cleanup_once_per_account() -> None:
    run, calls = _run_with(SIM_ACCOUNTS)
    run.cleanup()
    assert sorted(calls) == sorted((name, "Cleanup") for name in protocol.CONTENDERS)
    run, calls = _run_with({n: "master_account" for n in protocol.CONTENDERS})
    run.cleanup()
    assert calls == [("floor", "Cleanup")]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    plain = io.StringIO()
    progress = runner.Progress(4, stream=plain)
    for phase in ("order_place", "order_place", "order_book", "order_book"):
        progress.step(phase, "round 1/1 hbtrio")
    progress.note("a note")
    progress.finish()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1] == "a note"
    assert lines[0].startswith("[ 25.0%] 1/4 ") and "steps/min ETA " in lines[0]
    assert "\x1b" not in plain.getvalue()

    terminal = _Terminal()
    progress = runner.Progress(3, stream=terminal)
    progress.step("order_place", "round 1/3 peer")
    progress.note("starting")
    progress.step("order_place", "round 2/3 peer")
    progress.finish()
    shown = terminal.getvalue()
    assert "\x1b[" in shown and "starting" in shown
    assert "2/3" in shown and "ETA" in shown and "steps/min" in shown
