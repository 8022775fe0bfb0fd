"""The ``hbtrio`` dispatcher: lazy imports, help, missing extras, usage errors."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from hbtrio import cli

COMMANDS = ("sim", "demo", "daemon", "balances", "book", "orders", "place", "cancel")


def test_help_lists_every_command_without_importing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefixes = (
        "hbtrio.sim",
        "hbtrio.daemon",
        "hbtrio._cli_ops",
        "hbtrio.demo",
        "prometheus_client",
    )
    script = (
        "import sys\nfrom hbtrio.cli import main\nmain(['--help'])\n"
        f"print('LOADED', sorted(m for m in sys.modules if m.startswith({prefixes!r})))"
    )
    code = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert code.returncode == 0, code.stderr
    for name in COMMANDS:
        assert f"    {name}" in code.stdout
    assert "LOADED []" in code.stdout


def test_main_returns_argparse_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert cli.main([]) == 2
    assert "required" in capsys.readouterr().err
    assert cli.main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_extra_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_import(name: str) -> None:
        raise ModuleNotFoundError("No module named 'hypercorn.config'", name="hypercorn.config")

    monkeypatch.setattr(importlib, "import_module", fake_import)
    assert cli.main(["sim", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("hbtrio sim: this command needs an optional extra: install hbtrio[sim]")
    assert "Traceback" not in err


def test_other_import_errors_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_import(name: str) -> None:
        raise ModuleNotFoundError("No module named 'nonsense'", name="nonsense")

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["book", "binance", "BTC-USDT"])


def test_only_the_selected_command_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []
    real = importlib.import_module

    def spy(name: str) -> object:
        loaded.append(name)
        return real(name)

    monkeypatch.setattr(importlib, "import_module", spy)
    parser = cli.build_parser("book")
    args = parser.parse_args(["book", "binance", "BTC-USDT", "--depth", "3"])
    assert loaded == ["hbtrio._cli_ops.book"]
    assert (args.exchange, args.market, args.depth) == ("binance", "BTC-USDT", 3)
    assert cli._selected_command(["--", "book"]) is None
    assert cli._selected_command(["-h"]) is None


def test_every_registered_command_module_exists() -> None:
    for name in COMMANDS:
        assert name in cli._COMMANDS
        module = cli._load(name)
        assert callable(module.add_arguments) and callable(module.run)


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hbtrio", "daemon", "--config", str(tmp_path / "absent.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("hbtrio daemon: bad configuration: cannot read")
    assert len(result.stderr.strip().splitlines()) == 1
