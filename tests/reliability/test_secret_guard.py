"""The suite's secret guard (``tests/conftest.py``) catches what it promises to.

A small test session runs in a subprocess with a copy of the suite's conftest:
each inner test leaks a credential one way (a DEBUG record in teardown, a
base64 form, a wrong-password variant, a random key handed to a subprocess, an
exception caught by ``pytest.raises``, an hbtrio exception's ``repr``, an
exception reaching pytest, an unregistered ``Basic`` value, a URL with
user-info) and must be reported; a clean one must pass; and no credential may
show anywhere in the session's output (reports are redacted).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

INNER = r"""
import base64
import logging
import os
import subprocess
import sys

import pytest

import hbtrio
from hbtrio.sim.state import SimSettings

log = logging.getLogger("hbtrio.guard")
RANDOM = os.environ["GUARD_RANDOM"]  # fresh per session; each password adds a prefix


def config(key):
    return hbtrio.ClientConfig(host="127.0.0.1", port=1, api_key=key)


def test_clean():
    cfg = config("alice:clean-" + RANDOM)
    log.debug("connecting to %s as %s", cfg.base_url, cfg.username)
    with pytest.raises(hbtrio.ConfigError):
        config("alice:")
    repr(hbtrio.RequestError("failed", status=500))


@pytest.fixture
def leak_in_teardown():
    key = "admin:wrong-pass"
    config(key)
    yield
    log.debug("sent %s", base64.b64encode(key.encode()).decode())


def test_teardown_record(leak_in_teardown):
    pass


def test_wrong_secret_in_a_record():
    config("admin:wrong-secret")
    log.debug("credentials admin:wrong-secret")


def test_random_key_given_to_a_subprocess():
    key = "bench:bench-" + RANDOM
    env = dict(os.environ, HBTRIO_SIM_API_KEY=key)
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    log.warning("token %s", base64.urlsafe_b64encode(key.encode()).decode().rstrip("="))


def test_simulator_key_password():
    SimSettings(api_key="simuser:sim-" + RANDOM)
    log.info("password is sim-%s", RANDOM)


def test_caught_by_pytest_raises():
    key = "carol:carol-" + RANDOM
    config(key)
    with pytest.raises(RuntimeError):
        raise RuntimeError("outer") from ValueError(f"cause {key}")


def test_hbtrio_error_repr():
    key = "dave:dave-" + RANDOM
    config(key)
    repr(hbtrio.RequestError(f"failed for {key}"))
    str(hbtrio.MalformedResponse("bad", excerpt=key))


def test_exception_reaches_pytest():
    key = "erin:erin-" + RANDOM
    config(key)
    raise ValueError(f"boom {key}")


def test_failed_assertion_is_redacted():
    key = "frank:frank-" + RANDOM
    config(key)
    assert key == "something else"


def test_unregistered_basic_value():
    token = base64.b64encode(b"mallory:mal-" + RANDOM.encode()).decode()
    log.debug("headers: authorization=Basic %s", token)


def test_url_with_user_info():
    log.debug("GET https://mallory:url-%s@127.0.0.1:8000/accounts/", RANDOM)
"""

LEAKY = {
    "test_teardown_record": "base64 form of the credential of user 'admin'",
    "test_wrong_secret_in_a_record": "the credential of user 'admin'",
    "test_random_key_given_to_a_subprocess": "base64 form of the credential of user 'bench'",
    "test_simulator_key_password": "the password of the credential of user 'simuser'",
    "test_caught_by_pytest_raises": "caught by pytest.raises",
    "test_hbtrio_error_repr": "in repr() of RequestError",
    "test_unregistered_basic_value": "a Basic authorization value",
    "test_url_with_user_info": "a URL with user-info",
}


def test_the_guard_reports_every_leak_and_redacts_reports(tmp_path: Path) -> None:
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "integration").mkdir()
    (tmp_path / "integration" / "test_guard.py").write_text(INNER)
    random = os.urandom(9).hex()
    env = dict(os.environ, GUARD_RANDOM=random, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "--color=no", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    outcomes: dict[str, set[str]] = {}
    for outcome, name in re.findall(r"^(PASSED|FAILED|ERROR) \S+::(\w+)", out, re.MULTILINE):
        outcomes.setdefault(outcome, set()).add(name)
    summary = out[-3000:]
    # Each leak fails its test's teardown, naming what leaked where (not the secret).
    assert outcomes.get("ERROR", set()) == set(LEAKY), summary
    for name, what in LEAKY.items():
        block = out[out.index(f"ERROR at teardown of {name}") :]
        assert what in block[: block.index("\n_")], (name, summary)
    assert "in str() of MalformedResponse" in out  # the second leak of that test
    assert "(during teardown)" in out and "(during call)" in out
    # An exception carrying a key fails the test and says so; a failed assertion
    # fails as usual; both reports are redacted.
    assert outcomes.get("FAILED") == {
        "test_exception_reaches_pytest",
        "test_failed_assertion_is_redacted",
    }, summary
    assert "a credential leaked: the credential of user 'erin'" in out
    assert "in the ValueError that reached pytest" in out
    assert "test_clean" in outcomes.get("PASSED", set()), summary
    # No credential shows anywhere: not the random password, not a base64 form.
    assert random not in out, "a secret reached the session's output"
    assert "d3Jvbmctc2VjcmV0" not in out and "YWRtaW46d3Jvbmct" not in out
    assert "***" in out  # the redaction did happen (captured logs, reports)
