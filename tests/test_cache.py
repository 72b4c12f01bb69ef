"""The chat read cache never shows a person stale data: exact in one process, and on PostgreSQL a change
made by another replica reaches this one's cache through LISTEN/NOTIFY within moments."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot.app import build_runtime
from bot.messages import Incoming
from bot.settings import Settings
from conftest import FakeClock, _truncate_pg
from domain.items import ItemKind
from domain.roles import SYSTEM_OFFICE
from handlers.service import NewItem


async def todo(rt, user: str) -> str:  # type: ignore[no-untyped-def]
    return (await rt.chat.handle(Incoming("wecom", user, f"k-{user}-{asyncio.get_running_loop().time()}", text="待办"))).text


async def test_a_change_in_this_process_shows_at_once(runtime, org) -> None:  # type: ignore[no-untyped-def]
    assert "没有待办" in await todo(runtime, "zhang")
    await runtime.svc.create_item(SYSTEM_OFFICE, NewItem(kind=ItemKind.SPECIAL, title="课程建设", lead_unit="教务处",
                                                         deadline=dt.date(2026, 4, 30), handler="张老师"), "api")
    assert "课程建设" in await todo(runtime, "zhang")


@pytest.fixture
def clean_pg(pg_database: str) -> str:
    _truncate_pg(pg_database)
    return pg_database


async def test_another_replicas_change_reaches_this_replicas_cache(clean_pg: str, clock: FakeClock) -> None:
    settings = Settings(DUBAN_DATABASE_URL=clean_pg, DUBAN_SCHEDULER=False, _env_file=None)
    a = await build_runtime(settings, clock)
    b = await build_runtime(settings, clock)
    a.start_background()
    b.start_background()
    try:
        from conftest import ORG
        from handlers.org import PersonSpec, import_org

        await import_org(b.svc, SYSTEM_OFFICE, [PersonSpec(u, n, frozenset(r), w, d, c) for u, n, r, w, d, c in ORG], "test")
        await asyncio.sleep(0.3)  # replica a's bus is listening and has heard the import
        assert "没有待办" in await todo(a, "zhang")  # now cached in a
        await b.svc.create_item(SYSTEM_OFFICE, NewItem(kind=ItemKind.SPECIAL, title="实验室安全检查", lead_unit="教务处",
                                                       deadline=dt.date(2026, 4, 30), handler="张老师"), "api")
        for _ in range(40):
            if "实验室安全检查" in await todo(a, "zhang"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("replica a kept showing a stale 待办 after replica b's change")
    finally:
        await a.close()
        await b.close()
