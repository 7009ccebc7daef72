"""Fixtures shared by the whole suite: real stores on SQLite and PostgreSQL.

PostgreSQL tests use a fresh schema per test on the server at 127.0.0.1:5432 (database ``test``,
trust auth). Where none answers they skip with the reason, unless MONITOR_TEST_PG_REQUIRED=1
(set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from monitor.store import Store, open_store

PG_URL = os.environ.get("MONITOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED = Path(os.environ.get("MONITOR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test a stale build: a compiled module older than its source would be imported
    instead of the edited source."""
    from monitor import build

    stale = build.stale()
    if stale:
        pytest.exit(
            f"compiled module(s) older than their source: {', '.join(stale)}; "
            "re-install with `make .venv/.test` (or `pip install --no-build-isolation -e .`)",
            returncode=3,
        )


def _pg_unavailable() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL at {PG_URL}: {str(exc).strip().splitlines()[0]}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    reason = _pg_unavailable()
    if reason:
        if os.environ.get("MONITOR_TEST_PG_REQUIRED") == "1":
            pytest.fail(f"MONITOR_TEST_PG_REQUIRED=1 but {reason}")
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema dropped afterwards."""
    import psycopg

    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in pg_server else "?"
    yield f"{pg_server}{sep}options={quote(f'-csearch_path={name}')}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared material not found at {SHARED} (set MONITOR_SHARED)")
    return SHARED
