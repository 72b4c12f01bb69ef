"""Engines for SQLite (embedded default) and PostgreSQL (several replicas).

SQLite runs in WAL mode with a busy timeout, and write transactions start with `BEGIN IMMEDIATE` so a
read-then-write transaction takes the write lock up front instead of failing with "database is locked"
when two writers upgrade at once. Read-only work uses a second engine in autocommit, so readers never
queue behind writers and pay no transaction round trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_setup(engine: AsyncEngine, begin: str | None) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    if begin is None:
        return

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


@dataclass
class Database:
    """The write and read session factories for one database URL."""

    url: str
    engine: AsyncEngine
    read_engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def open_database(url: str, *, pool_size: int = 5) -> Database:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database in (None, "", ":memory:"):
            raise ValueError("SQLite needs a file path: an in-memory database would be one per connection")
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        _sqlite_setup(engine, "BEGIN IMMEDIATE")
        # Reads run in autocommit: no BEGIN, and nothing to roll back when the connection returns to
        # the pool. Each SELECT sees one committed state; a multi-statement read is for display only.
        read_engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_reset_on_return=None
        )
        _sqlite_setup(read_engine, None)
    else:
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
        read_engine = engine
    return Database(
        url=url,
        engine=engine,
        read_engine=read_engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        read_sessions=async_sessionmaker(read_engine, expire_on_commit=False),
    )
