"""Developer and CI sessions: tests, lint, typecheck, docs, bench and soak."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = os.environ.get("HBTRIO_NOX_PYTHON") or None  # default: the interpreter running nox


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite with line coverage of ``hbtrio/`` (fails under 90%)."""
    session.install("-e", ".[test]")
    session.run("coverage", "erase")
    session.run(
        "pytest",
        "--cov=hbtrio",
        "--cov-report=term",
        "--cov-fail-under=90",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[all]", "mypy>=1.10")
    session.run("mypy", "--strict", "hbtrio")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site in strict mode (warnings are errors)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the bundled latency suite (pass ``-- --quick`` for the short run)."""
    session.install("-e", ".[bench]")
    session.run("hbtrio", "bench", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Run the fault-injection soak for 10 minutes."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "-k", "soak", "-p", "no:cacheprovider", env={"HBTRIO_SOAK_SECONDS": "600"}
    )
