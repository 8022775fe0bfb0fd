"""Suite-wide secret hygiene for the integration, reliability and benchmark tests.

Every test under an ``integration``, ``reliability`` or ``bench`` directory runs
with DEBUG logging on (the soak keeps the configured level: it measures the
client's memory and latency) and fails, in its teardown, if a credential reached:

* a log record emitted from the start of its setup to the end of its teardown
  (the message with its arguments, and the texts of an attached exception), from
  any logger that propagates to the root logger, in any thread;
* ``str()``/``repr()`` of an hbtrio exception rendered while it ran, or of an
  exception a ``pytest.raises`` block caught (with its chain, group members,
  arguments, attributes and notes);
* the text of an exception that reached pytest (a failed assertion aside; such a
  test fails anyway, and its report says why).

The report of a failing audited test is redacted in any case, so that a
credential never reaches a terminal or a CI log.

No credential is listed here: each is registered as the tests choose it, from
every ``hbtrio.ClientConfig(api_key=...)``, every simulator's
``SimSettings(api_key=...)`` (``hbtrio.sim.serve``, in-process or in a thread)
and every ``*KEY*``/``*SECRET*``/``*PASSW*``/``*TOKEN*`` environment variable a
test sets for itself or a subprocess (``hbtrio sim``, the daemon, the CLI, the
benchmark's random ``bench:...`` key), and is kept for the rest of the session.
Each is looked for as itself, as its password part (8+ characters) and in its
base64 forms (standard and URL-safe, padded or not). Any ``Basic <base64 of
user:password>`` value and any URL carrying user-info counts as a leak too,
registered or not.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import logging
import os
import re
import subprocess
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis's generation-speed health check and per-example deadline are timing
# assertions: on a loaded 2-core CI machine the first text draw of a process (which
# builds Hypothesis's Unicode table) alone can take seconds. Properties stay
# asserted; how fast examples are generated is not a property of hbtrio.
settings.register_profile("hbtrio", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hbtrio"))

_AUDITED_DIRS = frozenset({"integration", "reliability", "bench"})
_MIN_KEY = 5  # shorter pairs ("u:p") only appear in unit tests, and match too much
_MIN_PASSWORD = 8
_MIN_BASE64 = 8
_SECRET_ENV = re.compile(r"KEY|SECRET|PASSW|TOKEN", re.IGNORECASE)
_BASIC = re.compile(r"Basic\s+([A-Za-z0-9+/_-]{4,}={0,2})")
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://[^\s/@:\[\]]+:[^\s/@]+@")


def _decodes_to_pair(token: str) -> bool:
    """Whether ``token`` is the base64 of a ``user:password`` pair."""
    padded = token + "=" * (-len(token) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            text = decode(padded).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        user, sep, password = text.partition(":")
        if sep and user and password and text.isprintable():
            return True
    return False


class Credentials:
    """The credentials the session's audited tests used, and the texts that betray them.

    Descriptions name the user, never a secret.
    """

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self._forms: dict[str, str] = {}

    def add(self, key: object) -> None:
        """Register a credential pair (anything else is ignored).

        Args:
            key: A ``user:password`` string (surrounding whitespace ignored).
        """
        if not isinstance(key, str):
            return
        for pair in {key, key.strip()}:
            user, sep, password = pair.partition(":")
            if not sep or not user or not password or pair in self.keys:
                continue
            self.keys.add(pair)
            whose = f"credential of user {user!r}"
            forms: dict[str, str] = {}
            if len(pair) >= _MIN_KEY:
                forms[pair] = f"the {whose}"
            if len(password) >= _MIN_PASSWORD:
                forms[password] = f"the password of the {whose}"
            raw = pair.encode("utf-8")
            for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
                text = encoded.decode("ascii").rstrip("=")
                if len(text) >= _MIN_BASE64:
                    forms[text] = f"the base64 form of the {whose}"
            for form, what in forms.items():
                self._forms.setdefault(form, what)

    def find(self, text: str) -> str | None:
        """Describe the first credential form found in ``text``, if any.

        Args:
            text: Anything rendered to text.

        Returns:
            What was found (without the secret), or ``None``.
        """
        for form, what in self._forms.items():
            if form in text:
                return what
        for match in _BASIC.finditer(text):
            if _decodes_to_pair(match.group(1)):
                return "a Basic authorization value"
        if _USERINFO.search(text):
            return "a URL with user-info"
        return None

    def redact(self, text: str) -> str:
        """``text`` with every credential form replaced by ``***``.

        Args:
            text: Anything rendered to text.

        Returns:
            The redacted text.
        """
        for form in sorted(self._forms, key=len, reverse=True):
            text = text.replace(form, "***")
        text = _BASIC.sub(
            lambda m: "Basic ***" if _decodes_to_pair(m.group(1)) else m.group(0), text
        )
        return _USERINFO.sub(lambda m: f"{m.group(1)}://***@", text)


CREDENTIALS = Credentials()
"""Every credential registered so far in this session."""


def _render(fn: Callable[[Any], str], value: object) -> str:
    try:
        return fn(value)
    except Exception as exc:  # a broken __str__ must not hide the others
        return f"<unrenderable: {type(exc).__name__}>"


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Texts an exception shows: ``str``/``repr`` of it, its arguments, attributes and
    notes, for it and every exception chained to it or grouped in it.

    (Not the traceback: its source lines quote the tests, whose literals may be
    credentials on purpose.)

    Args:
        exc: The exception.

    Yields:
        The texts.
    """
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield _render(str, current)
        yield _render(repr, current)
        for value in (*current.args, *getattr(current, "__dict__", {}).values()):
            if not isinstance(value, BaseException):
                yield _render(repr, value)
        yield from (note for note in getattr(current, "__notes__", ()) if isinstance(note, str))
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


class _Audit:
    """What one audited test leaked, and the hooks that watch it."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.phase = "setup"
        self.leaks: list[str] = []
        self._handler = _LeakHandler(self)
        self._patch = pytest.MonkeyPatch()
        self._root_level = logging.root.level
        self._environ = dict(os.environ)

    def check(self, text: object, where: str) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str) or not text:
            return
        what = CREDENTIALS.find(text)
        if what is not None:
            note = f"{what} in {where} (during {self.phase})"
            if note not in self.leaks:
                self.leaks.append(note)

    def check_exception(self, exc: BaseException, where: str) -> None:
        for text in exception_texts(exc):
            self.check(text, where)

    def register_environment(self, env: Mapping[Any, Any] | None = None) -> None:
        """Register secret-named variables of ``env`` (default ``os.environ``) that
        this test set or changed."""
        for name, value in (os.environ if env is None else env).items():
            if (
                isinstance(name, str)
                and isinstance(value, str)
                and _SECRET_ENV.search(name)
                and self._environ.get(name) != value
            ):
                CREDENTIALS.add(value)

    def start(self) -> None:
        global _CURRENT
        _CURRENT = self
        if self.item.get_closest_marker("soak") is None:
            logging.root.setLevel(logging.DEBUG)
        logging.root.addHandler(self._handler)
        self._install_hooks()

    def stop(self) -> None:
        global _CURRENT
        self.register_environment()
        logging.root.removeHandler(self._handler)
        logging.root.setLevel(self._root_level)
        self._patch.undo()
        _CURRENT = None

    def _install_hooks(self) -> None:
        import hbtrio
        from hbtrio.sim.state import SimSettings

        patch = self._patch
        for keyed in (hbtrio.ClientConfig, SimSettings):
            patch.setattr(keyed, "__init__", _registering(keyed.__init__))
        patch.setattr(subprocess.Popen, "__init__", _popen_registering(subprocess.Popen.__init__))
        errors: list[type[BaseException]] = [hbtrio.HbtrioError]
        for error in errors:
            errors.extend(c for c in error.__subclasses__() if c not in errors)
            for name in ("__str__", "__repr__"):
                if name in error.__dict__:
                    patch.setattr(error, name, _audited_render(error.__dict__[name], name))
        patch.setattr(pytest, "raises", _audited_raises(pytest.raises))


_CURRENT: _Audit | None = None
_AUDIT = pytest.StashKey[_Audit]()


class _LeakHandler(logging.Handler):
    """Checks every record as it is emitted (and keeps none)."""

    def __init__(self, audit: _Audit) -> None:
        super().__init__(logging.NOTSET)
        self.audit = audit

    def emit(self, record: logging.LogRecord) -> None:
        where = f"a log record of {record.name!r} ({record.levelname})"
        try:
            self.audit.check(record.getMessage(), where)
        except Exception:  # a record whose arguments do not fit its format
            self.audit.check(f"{record.msg!r} {record.args!r}", where)
        if record.exc_info and record.exc_info[1] is not None:
            self.audit.check_exception(record.exc_info[1], where)
        elif record.exc_text:
            self.audit.check(record.exc_text, where)


def _registering(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a constructor taking ``api_key`` so that every key passed is registered."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            pass
        else:
            CREDENTIALS.add(bound.arguments.get("api_key"))
        init(*args, **kwargs)

    return wrapper


def _popen_registering(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``Popen.__init__``: register the secrets a test hands a subprocess."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        audit = _CURRENT
        if audit is not None:
            try:
                env = signature.bind(*args, **kwargs).arguments.get("env")
            except TypeError:
                env = None
            audit.register_environment(env)
        init(*args, **kwargs)

    return wrapper


def _audited_render(method: Callable[[Any], str], name: str) -> Callable[[Any], str]:
    """Wrap an exception's ``__str__``/``__repr__``: check every text it renders."""

    @functools.wraps(method)
    def render(self: Any) -> str:
        text = method(self)
        audit = _CURRENT
        if audit is not None:
            audit.check(text, f"{name.strip('_')}() of {type(self).__name__}")
        return text

    return render


class _AuditedRaises:
    """``pytest.raises`` as a context manager, checking the exception it caught."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __enter__(self) -> Any:
        return self._inner.__enter__()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        suppressed = bool(self._inner.__exit__(exc_type, exc, tb))
        audit = _CURRENT
        if suppressed and exc is not None and audit is not None:
            audit.check_exception(exc, f"a {type(exc).__name__} caught by pytest.raises")
        return suppressed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _audited_raises(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def raises(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if isinstance(result, pytest.ExceptionInfo):  # the callable form
            audit = _CURRENT
            if audit is not None:
                audit.check_exception(result.value, f"a {result.typename} caught by pytest.raises")
            return result
        return _AuditedRaises(result)

    return raises


def _audited(item: pytest.Item) -> bool:
    return not _AUDITED_DIRS.isdisjoint(item.path.parts[:-1])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if _audited(item):
        audit = _Audit(item)
        item.stash[_AUDIT] = audit
        audit.start()
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    audit = item.stash.get(_AUDIT, None)
    if audit is None:
        return (yield)
    audit.phase = "call"
    try:
        return (yield)
    finally:
        audit.register_environment()  # before monkeypatch undoes it


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    audit = item.stash.get(_AUDIT, None)
    if audit is None:
        return (yield)
    audit.phase = "teardown"
    try:
        result = yield
    except BaseException as exc:
        audit.stop()
        if audit.leaks:
            exc.add_note(_leak_message(audit))
        raise
    audit.stop()
    if audit.leaks:
        pytest.fail(_leak_message(audit), pytrace=False)
    return result


def _leak_message(audit: _Audit) -> str:
    lines = "\n".join(f"  - {leak}" for leak in audit.leaks[:20])
    return f"a credential leaked ({len(audit.leaks)} place(s)):\n{lines}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if _AUDIT not in item.stash:
        return report
    if call.excinfo is not None:
        exc = call.excinfo.value
        if isinstance(exc, Exception) and not isinstance(exc, AssertionError):
            found = next(
                (what for text in exception_texts(exc) if (what := CREDENTIALS.find(text))),
                None,
            )
            if found is not None:
                note = (
                    f"a credential leaked: {found} in the {type(exc).__name__} that reached pytest"
                )
                if report.outcome != "failed":  # e.g. an expected failure: still a leak
                    report.outcome = "failed"
                    if hasattr(report, "wasxfail"):
                        del report.wasxfail
                    report.longrepr = note
                else:
                    report.longrepr = f"{note}\n\n{report.longrepr}"
    # Captured output shows for failures (and for passes with -rP/-rA): redact it all.
    report.sections = [(title, CREDENTIALS.redact(text)) for title, text in report.sections]
    if report.failed and report.longrepr is not None:
        text = str(report.longrepr)
        if (redacted := CREDENTIALS.redact(text)) != text:
            report.longrepr = redacted
    return report
