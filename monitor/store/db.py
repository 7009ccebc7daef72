"""The two database drivers behind one small transaction interface.

SQL is written once with ``?`` placeholders; the PostgreSQL driver rewrites them to ``%s``.
Every public store operation is one ``transaction()``: committed as a whole or not at all.
This module is the only importer of sqlite3 and psycopg; their errors become StoreError here.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from monitor.errors import StoreError
from monitor.store import schema

Row = dict[str, Any]


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class Tx:
    """One open transaction."""

    def __init__(self, cursor: Any, *, pg: bool) -> None:
        self._cur = cursor
        self._pg = pg

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(self._sql(sql), tuple(params))
        return int(self._cur.rowcount or 0)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """``sql`` once per row; the rows it changed, summed (both drivers add them up)."""
        if not rows:
            return 0
        self._cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        return int(self._cur.rowcount or 0)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cur.execute(self._sql(sql), tuple(params))
        return [dict(r) for r in self._cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None


class Database:
    dialect: str = ""
    url: str = ""

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:  # pragma: no cover - abstract
        """One transaction; ``write=False`` promises only reads (SQLite then lets it run beside
        a writer instead of queueing for the write lock)."""
        raise NotImplementedError
        yield

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def migrate(self) -> int:
        """Bring the schema up to date; return the version now in force."""
        from monitor.errors import MigrationError

        with self.transaction() as tx:
            self._lock_for_migration(tx)
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            row = tx.one("SELECT MAX(version) AS v FROM schema_migrations")
            current = int(row["v"]) if row and row["v"] is not None else 0
            if current > schema.LATEST:
                raise MigrationError(
                    f"the database schema is version {current}, newer than this program "
                    f"understands ({schema.LATEST}); upgrade news-monitor",
                    url=redact(self.url),
                )
            for m in schema.MIGRATIONS:
                if m.version <= current:
                    continue
                for stmt in schema.statements(m, self.dialect):
                    tx.execute(stmt)
                tx.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) "
                    "VALUES (?, ?, CURRENT_TIMESTAMP)",
                    (m.version, m.description),
                )
                current = m.version
        return current

    def _lock_for_migration(self, tx: Tx) -> None:
        """Serialise replicas that start at the same time (PostgreSQL only)."""


class SqliteDatabase(Database):
    """The embedded default. WAL mode; one connection per thread; writers take the lock up front."""

    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        path = url.removeprefix("sqlite:///")
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=10000")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open database: {exc}", url=self.url) from exc
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        conn = self._conn()
        try:
            # IMMEDIATE takes the write lock at BEGIN, so two writers never deadlock on upgrade.
            # A reader needs no lock in WAL mode: it reads the last committed state, and waiting
            # for the write lock (SQLite's busy handler sleeps up to 100 ms a try) only delays it.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot begin a transaction: {exc}", url=self.url) from exc
        try:
            yield Tx(conn.cursor(), pg=False)
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"statement failed: {exc}", url=self.url) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise StoreError(f"commit failed: {exc}", url=self.url) from exc

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class PostgresDatabase(Database):
    """PostgreSQL through a psycopg connection pool; several replicas may share one database."""

    dialect = "postgresql"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": False},
            open=False,
            timeout=10.0,
            name="news-monitor",
        )
        try:
            self._pool.open(wait=True, timeout=10.0)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise StoreError("cannot connect to PostgreSQL", url=redact(url)) from exc

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield Tx(cur, pg=True)
        except psycopg.Error as exc:
            raise StoreError(f"{type(exc).__name__}: {exc}".strip(), url=redact(self.url)) from exc
        except psycopg_pool.PoolTimeout as exc:
            raise StoreError("no database connection available", url=redact(self.url)) from exc

    def _lock_for_migration(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(741852963)")

    def close(self) -> None:
        self._pool.close()


def open_database(url: str) -> Database:
    if url.startswith("sqlite:///"):
        return SqliteDatabase(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    raise StoreError(
        "unsupported storage URL: use sqlite:///path.db or postgresql://...", url=redact(url)
    )
