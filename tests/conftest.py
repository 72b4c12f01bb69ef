"""Shared fixtures: real databases (a temp SQLite file and the local PostgreSQL), a settable clock, an org.

Every test that takes `db_url` (directly or through `runtime`) runs twice: on SQLite and on PostgreSQL.
PostgreSQL comes from DUBAN_TEST_PG_URL or the local server at 127.0.0.1:5432 (database `test`); the
suite creates a scratch database of its own there and drops it at the end. If PostgreSQL cannot be
reached the PostgreSQL half fails loudly rather than skipping, so a green run means both were tested.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.app import Runtime, build_runtime
from bot.settings import Settings
from domain.roles import SYSTEM_OFFICE, Role
from handlers.org import PersonSpec, import_org
from storage.migrate import upgrade_sync
from storage.models import Base

TZ = ZoneInfo("Asia/Shanghai")
PG_URL = os.environ.get("DUBAN_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
API_TOKEN = "test-token-0123456789"


class FakeClock:
    """Time stands still until a test moves it; nothing in the suite sleeps to wait for a deadline."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, when: dt.datetime) -> None:
        self.now = when

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


def local(y: int, m: int, d: int, h: int = 9, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=TZ)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(local(2026, 3, 2, 9, 0))  # a Monday


# ---- databases -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


def _pg_admin_dsn(url: str, database: str | None = None) -> str:
    u = make_url(url)
    u = u.set(drivername="postgresql", database=database or u.database)
    return u.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"duban_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def leftovers() -> None:
        """Scratch databases of runs that died (their pid is gone) would pile up: drop them."""
        conn = await asyncpg.connect(_pg_admin_dsn(PG_URL), timeout=10)
        try:
            for (db,) in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'duban_test_%'"):
                pid = db.split("_")[2]
                if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await conn.close()

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(_pg_admin_dsn(PG_URL), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(leftovers())
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc}); start it or set DUBAN_TEST_PG_URL")
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    upgrade_sync(url)
    yield url
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _truncate_pg(url: str) -> None:
    """Empty every table and restart the id sequences: DELETE is ~100x faster than TRUNCATE on tiny tables."""
    deletes = ";".join(f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables))

    async def run() -> None:
        conn = await asyncpg.connect(_pg_admin_dsn(url), timeout=10)
        try:
            seqs = await conn.fetch("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            restarts = ";".join(f'ALTER SEQUENCE "{r[0]}" RESTART' for r in seqs)
            await conn.execute(deletes + (";" + restarts if restarts else ""))
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "duban.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    _truncate_pg(url)
    return url


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(DUBAN_DATABASE_URL=db_url, DUBAN_API_TOKEN=API_TOKEN, _env_file=None)


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = await build_runtime(settings, clock)
    yield rt
    await rt.close()


# ---- a small organisation --------------------------------------------------------------------------------

ORG = [
    # unit, name, roles, wecom id, dingtalk id, units in charge
    ("学校办公室", "周督办", {Role.OFFICE}, "zhou", None, ()),
    ("校领导", "李校长", {Role.LEADER}, "li", None, ("教务处", "科研院")),
    ("校领导", "王副校长", {Role.LEADER}, "wang", None, ("学生处",)),
    ("教务处", "陈处长", {Role.PRINCIPAL}, "chen", None, ()),
    ("教务处", "张老师", {Role.HANDLER}, "zhang", None, ()),
    ("教务处", "刘老师", {Role.HANDLER}, "liu", None, ()),
    ("科研院", "赵院长", {Role.PRINCIPAL}, "zhao", None, ()),
    ("科研院", "孙老师", {Role.HANDLER}, "sun", "sun_dd", ()),
    ("学生处", "钱处长", {Role.PRINCIPAL}, "qian", None, ()),
    ("学生处", "吴老师", {Role.HANDLER}, "wu", None, ()),
]


@pytest.fixture
async def org(runtime: Runtime) -> dict[str, int]:
    """Name → person id for the people above."""
    specs = [
        PersonSpec(unit=u, name=n, roles=frozenset(r), wecom_id=w, dingtalk_id=d, units_in_charge=c)
        for u, n, r, w, d, c in ORG
    ]
    await import_org(runtime.svc, SYSTEM_OFFICE, specs, "test")
    async with runtime.svc.uow.reader() as uow:
        return {p.name: p.id for p in await uow.people.all()}
