"""A real MQTT broker for the bus tests: mosquitto where installed, else amqtt (PyPI).

Started as a subprocess on 127.0.0.1, on a port the OS chose, without persistence,
so that a SIGKILL and a restart lose every session, queue and retained message.
``HBTRIO_TEST_BROKER=amqtt`` forces the PyPI broker where mosquitto is installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hbtrio.sim.tls import CertPaths, ensure_certs


def broker_kind() -> str:
    """``mosquitto`` when installed (and not overridden), else ``amqtt``."""
    wanted = os.environ.get("HBTRIO_TEST_BROKER", "")
    if wanted:
        return wanted
    return "mosquitto" if shutil.which("mosquitto") else "amqtt"


def free_port() -> int:
    """A port the OS picked (the broker binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """One broker process; ``kill`` (SIGKILL) and ``start`` again on the same port.

    Args:
        workdir: Where its configuration and log go.
        tls: Serve TLS with a certificate from the simulator's trustme CA.
        users: User names and passwords the broker requires (default: anonymous).
    """

    def __init__(
        self, workdir: Path, *, tls: bool = False, users: dict[str, str] | None = None
    ) -> None:
        self.users = users
        self.workdir = workdir
        self.kind = broker_kind()
        self.port = free_port()
        self.certs: CertPaths | None = ensure_certs(workdir / "certs", "127.0.0.1") if tls else None
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """The broker's URL."""
        scheme = "mqtts" if self.certs else "mqtt"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            conf = self.workdir / "mosquitto.conf"
            lines = [
                f"listener {self.port} 127.0.0.1",
                f"allow_anonymous {'false' if self.users else 'true'}",
                f"user {pwd.getpwuid(os.getuid()).pw_name}",  # root: no drop to 'mosquitto'
                "persistence false",
                "max_queued_messages 100000",
                "max_inflight_messages 0",
            ]
            if self.certs:
                lines += [f"certfile {self.certs.cert}", f"keyfile {self.certs.key}"]
            if self.users:
                passwd = self.workdir / "mosquitto.passwd"
                passwd.touch()
                for user, password in self.users.items():
                    tool = shutil.which("mosquitto_passwd") or "mosquitto_passwd"
                    subprocess.run([tool, "-b", str(passwd), user, password], check=True)
                lines.append(f"password_file {passwd}")
            conf.write_text("\n".join(lines) + "\n")
            return [shutil.which("mosquitto") or "mosquitto", "-c", str(conf)]
        conf = self.workdir / "amqtt.yaml"
        tls = ""
        if self.certs:
            tls = f"    ssl: true\n    certfile: {self.certs.cert}\n    keyfile: {self.certs.key}\n"
        auth = "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
        if self.users:
            from pwdlib import PasswordHash  # amqtt's own dependency
            from pwdlib.hashers.argon2 import Argon2Hasher

            hasher = PasswordHash((Argon2Hasher(),))
            passwd = self.workdir / "amqtt.passwd"
            passwd.write_text("".join(f"{u}:{hasher.hash(p)}\n" for u, p in self.users.items()))
            auth = (
                "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                "    allow_anonymous: false\n"
                "  amqtt.plugins.authentication.FileAuthPlugin:\n"
                f"    password_file: {passwd}\n"
            )
        conf.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{self.port}\n{tls}"
            f"plugins:\n{auth}"
        )
        code = "import sys; from amqtt.scripts.broker_script import main; sys.exit(main())"
        return [sys.executable, "-c", code, "-c", str(conf)]

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait until it accepts connections.

        Raises:
            RuntimeError: It did not listen in time.
        """
        log = open(self.workdir / f"broker-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not listen on {self.port}")

    def kill(self) -> None:
        """SIGKILL it (no clean shutdown, nothing kept)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        """Stop it (SIGKILL is fine: nothing is persisted)."""
        self.kill()
