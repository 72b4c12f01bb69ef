"""Repositories and the unit of work on both databases (every test runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Runtime
from domain.errors import ConcurrentUpdate
from domain.items import (
    BranchStatus,
    ExtensionStatus,
    Item,
    ItemEvent,
    ItemKind,
    ProgressStatus,
    Status,
)
from domain.roles import Person
from domain.views import Prompt
from storage.models import CalendarOverrideRow, CodeCounterRow, EventRow, OutboxRow
from storage.repositories import EventRepository

from conftest import TZ, FakeClock, local


@pytest.fixture
async def people(runtime: Runtime, org: dict[str, int]) -> dict[str, Person]:
    async with runtime.svc.uow.reader() as uow:
        return {p.name: p for p in await uow.people.all()}


@pytest.fixture
async def units(runtime: Runtime, org: dict[str, int]) -> dict[str, int]:
    async with runtime.svc.uow.reader() as uow:
        return {u.name: u.id for u in await uow.units.all()}


def new_item(people: dict[str, Person], units: dict[str, int], now: dt.datetime, code: str = "2026-0001") -> Item:
    return Item.create(
        code=code,
        kind=ItemKind.SPECIAL,
        title="落实校长办公会议定事项：实验室安全整改",
        lead_unit_id=units["教务处"],
        deadline=dt.date(2026, 4, 30),
        actor=people["周督办"],
        now=now,
        content="整改清单见附件。\n" + "内容" * 1500,
        source_title="校长办公会纪要",
        source_number="校办纪〔2026〕5号",
        co_unit_ids=[units["科研院"]],
        leader_id=people["李校长"].id,
        handler=people["张老师"],
        category="安全",
    )


async def load(runtime: Runtime, code: str) -> Item:
    async with runtime.svc.uow.reader() as uow:
        item = await uow.items.get(code)
    assert item is not None
    return item


async def add(runtime: Runtime, item: Item, channel: str = "test") -> list[ItemEvent]:
    async with runtime.svc.uow(channel) as uow:
        events = await uow.save(item)
        await uow.commit()
    return events


async def change(runtime: Runtime, code: str, fn: Any, channel: str = "test") -> Item:
    async with runtime.svc.uow(channel) as uow:
        item = await uow.items.get(code)
        assert item is not None
        fn(item)
        await uow.save(item)
        await uow.commit()
    return item


async def count(runtime: Runtime, model: Any) -> int:
    async with runtime.svc.uow.reader() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(model))).scalar_one())


# ---- items ---------------------------------------------------------------------------------------------


async def test_item_round_trips_with_branches_progress_and_extensions(
    runtime: Runtime, people: dict[str, Person], units: dict[str, int], clock: FakeClock
) -> None:
    p = people
    item = new_item(p, units, clock())
    events = await add(runtime, item)
    assert [e.kind for e in events] == ["created", "designated"]
    assert item.new_events == []  # handed over once, so notices are derived once
    assert item.id is not None and item.version == 0
    assert all(b.id is not None for b in item.branches)

    loaded = await load(runtime, "2026-0001")
    assert loaded == item
    assert loaded.created_at.utcoffset() == dt.timedelta(0)  # stored and returned as UTC, same instant
    assert loaded.created_at == local(2026, 3, 2, 9, 0)
    assert [(b.unit_id, b.is_lead, b.handler_id, b.status) for b in loaded.branches] == [
        (units["教务处"], True, p["张老师"].id, BranchStatus.DESIGNATED),
        (units["科研院"], False, None, BranchStatus.ASSIGNED),
    ]
    assert loaded.content.endswith("内容" * 1500) and loaded.source_number == "校办纪〔2026〕5号"

    # one transaction touching every kind of child row
    def work(it: Item) -> None:
        clock.advance(hours=1)
        now = clock()
        it.sign(p["张老师"], now)
        it.designate(p["赵院长"], p["孙老师"], now)
        it.sign(p["孙老师"], now)
        it.report_progress(p["张老师"], "已完成排查。", now)
        it.report_progress(p["孙老师"], "科研院配合排查完成。", now)
        it.review_progress(p["陈处长"], True, now)
        it.request_extension(p["张老师"], dt.date(2026, 5, 29), "等待设备到货", now)

    changed = await change(runtime, "2026-0001", work)
    assert changed.version == 1
    loaded = await load(runtime, "2026-0001")
    assert loaded == changed
    assert loaded.status is Status.IN_PROGRESS
    assert [b.status for b in loaded.branches] == [BranchStatus.SIGNED, BranchStatus.SIGNED]
    assert loaded.branches[1].handler_id == p["孙老师"].id
    assert [(x.text, x.status) for x in loaded.progress] == [
        ("已完成排查。", ProgressStatus.PUBLISHED),
        ("科研院配合排查完成。", ProgressStatus.PENDING),
    ]
    assert loaded.progress[0].reviewer_id == p["陈处长"].id and loaded.last_published_at == clock()
    (ext,) = loaded.extensions
    assert (ext.old_deadline, ext.new_deadline, ext.status) == (
        dt.date(2026, 4, 30), dt.date(2026, 5, 29), ExtensionStatus.PENDING_PRINCIPAL
    )

    # updates of existing child rows are written too
    def review(it: Item) -> None:
        clock.advance(hours=1)
        it.review_progress(p["赵院长"], False, clock(), reason="请附照片")
        it.review_extension(p["陈处长"], True, clock())
        it.review_extension(p["周督办"], True, clock())

    changed = await change(runtime, "2026-0001", review)
    loaded = await load(runtime, "2026-0001")
    assert loaded == changed
    assert loaded.version == 2
    assert loaded.progress[1].status is ProgressStatus.RETURNED and loaded.progress[1].return_reason == "请附照片"
    assert loaded.extensions[0].status is ExtensionStatus.APPROVED and loaded.deadline == dt.date(2026, 5, 29)


async def test_get_unknown_code_is_none(runtime: Runtime) -> None:
    async with runtime.svc.uow.reader() as uow:
        assert await uow.items.get("2026-0404") is None


async def test_stale_version_raises_and_writes_nothing(
    runtime: Runtime, people: dict[str, Person], units: dict[str, int], clock: FakeClock
) -> None:
    p = people
    await add(runtime, new_item(p, units, clock()))
    stale = await load(runtime, "2026-0001")  # version 0
    await change(runtime, "2026-0001", lambda it: it.urge(p["周督办"], "第一次", clock()))  # now version 1
    events_before = await count(runtime, EventRow)
    fresh = await load(runtime, "2026-0001")

    clock.advance(minutes=5)
    stale.sign(p["张老师"], clock())
    stale.report_progress(p["张老师"], "过期版本上的进展", clock())
    stale.cancel(p["周督办"], "过期版本上的撤销", clock())
    async with runtime.svc.uow("test") as uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.save(stale)
        await uow.commit()  # even committing afterwards writes nothing: the refusal came before any write

    assert stale.version == 0
    after = await load(runtime, "2026-0001")
    assert after == fresh
    assert after.status is Status.DESIGNATED and after.urge_count == 1 and after.progress == []
    assert after.cancel_reason is None and after.branches[0].status is BranchStatus.DESIGNATED
    assert await count(runtime, EventRow) == events_before

    # two writers holding the same version: the first wins, the second is refused
    a, b = await load(runtime, "2026-0001"), await load(runtime, "2026-0001")
    a.urge(p["周督办"], "甲", clock())
    b.urge(p["周督办"], "乙", clock())
    await add(runtime, a)
    with pytest.raises(ConcurrentUpdate):
        await add(runtime, b)
    final = await load(runtime, "2026-0001")
    assert final.urge_count == 2 and final.version == 2
    async with runtime.svc.uow.reader() as uow:
        notes = [e.payload.get("note") for e in await uow.events.timeline(final.id or 0) if e.kind == "urged"]
    assert notes == ["第一次", "甲"]


# ---- events ----------------------------------------------------------------------------------------------


async def test_event_table_is_append_only_in_practice(
    runtime: Runtime, people: dict[str, Person], units: dict[str, int], clock: FakeClock
) -> None:
    p = people
    assert not [m for m in dir(EventRepository) if m.startswith(("update", "delete", "remove", "edit"))]
    item = new_item(p, units, clock())
    await add(runtime, item, channel="api")
    other = new_item(p, units, clock(), code="2026-0002")
    await add(runtime, other, channel="cli")

    steps = [
        ("wecom", lambda it: it.sign(p["张老师"], clock())),
        ("dingtalk", lambda it: it.report_progress(p["张老师"], "第一次进展", clock())),
        ("wecom", lambda it: it.review_progress(p["陈处长"], True, clock())),
        ("scheduler", lambda it: it.urge(p["周督办"], "自动催办", clock(), automatic=True)),
        ("api", lambda it: it.cancel(p["周督办"], "另行安排", clock())),
    ]
    async with runtime.svc.uow.reader() as uow:
        seen = await uow.events.timeline(item.id or 0)
    for channel, fn in steps:
        clock.advance(minutes=10)
        await change(runtime, "2026-0001", fn, channel=channel)
        async with runtime.svc.uow("audit") as uow:
            await uow.events.record(None, [ItemEvent("notice", p["周督办"].id, clock(), {"text": "与事项无关"})], "api")
            await uow.commit()
        async with runtime.svc.uow.reader() as uow:
            now_seen = await uow.events.timeline(item.id or 0)
        assert now_seen[: len(seen)] == seen  # what was written stays exactly as it was
        assert len(now_seen) == len(seen) + 1
        seen = now_seen

    assert [(e.kind, e.channel) for e in seen] == [
        ("created", "api"),
        ("designated", "api"),
        ("signed", "wecom"),
        ("progress_reported", "dingtalk"),
        ("progress_published", "wecom"),
        ("urged", "scheduler"),
        ("cancelled", "api"),
    ]
    assert [e.at for e in seen] == sorted(e.at for e in seen)
    assert seen[2].actor_id == p["张老师"].id and seen[5].actor_id is None  # the automatic urge has no person
    assert seen[1].payload == {"unit_id": units["教务处"], "handler_id": p["张老师"].id, "previous_handler_id": None}
    assert seen[6].payload == {"reason": "另行安排", "previous": "in_progress"}
    async with runtime.svc.uow.reader() as uow:
        assert [e.kind for e in await uow.events.timeline(other.id or 0)] == ["created", "designated"]
        assert await uow.events.count("notice") == len(steps)
        assert await uow.events.count() == len(seen) + 2 + len(steps)


# ---- outbox ----------------------------------------------------------------------------------------------


async def test_outbox_dedup_key_inserts_once(runtime: Runtime, people: dict[str, Person], clock: FakeClock) -> None:
    zhang = people["张老师"].id
    async with runtime.svc.uow("test") as uow:
        assert await uow.outbox.add([("n:1:zhang", zhang, {"text": "第一条"}), ("n:2:zhang", zhang, {"text": "第二条"})], clock()) == 2
        await uow.commit()
    async with runtime.svc.uow("test") as uow:
        added = await uow.outbox.add(
            [("n:1:zhang", zhang, {"text": "重复的第一条"}), ("n:3:zhang", zhang, {"text": "第三条"})], clock()
        )
        assert added == 1
        assert await uow.outbox.add([("n:4:zhang", zhang, {"text": "同批"}), ("n:4:zhang", zhang, {"text": "同批"})], clock()) == 1
        assert await uow.outbox.add([], clock()) == 0
        await uow.commit()

    async def racer(i: int) -> None:
        async with runtime.svc.uow("test") as uow:
            await uow.outbox.add([("n:race", zhang, {"text": f"并发{i}"})], clock())
            await uow.commit()

    await asyncio.gather(*(racer(i) for i in range(5)))

    async with runtime.svc.uow.reader() as uow:
        rows = (await uow.session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars().all()
    assert [(r.dedup_key, r.payload["text"]) for r in rows][:4] == [
        ("n:1:zhang", "第一条"),  # the first payload stays; the repeat was skipped, not merged
        ("n:2:zhang", "第二条"),
        ("n:3:zhang", "第三条"),
        ("n:4:zhang", "同批"),
    ]
    assert [r.dedup_key for r in rows].count("n:race") == 1
    assert len(rows) == 5
    assert all(r.status == "pending" and r.attempts == 0 and r.recipient_id == zhang for r in rows)
    assert rows[0].available_at == clock()


# ---- code counter ------------------------------------------------------------------------------------------


async def test_next_code_seq_is_distinct_under_concurrency(runtime: Runtime) -> None:
    async def take(year: int) -> int:
        async with runtime.svc.uow("test") as uow:
            n = await uow.items.next_code_seq(year)
            await asyncio.sleep(0)  # let the others run while this transaction is open
            await uow.commit()
            return n

    got = await asyncio.gather(*(take(2026) for _ in range(20)))
    assert sorted(got) == list(range(1, 21))
    assert await take(2027) == 1  # per year
    # a number taken in a transaction that rolls back is given out again
    async with runtime.svc.uow("test") as uow:
        assert await uow.items.next_code_seq(2026) == 21
    assert await take(2026) == 21
    async with runtime.svc.uow.reader() as uow:
        rows = (await uow.session.execute(select(CodeCounterRow.year, CodeCounterRow.last))).all()
    assert sorted(tuple(r) for r in rows) == [(2026, 21), (2027, 1)]


# ---- calendar overrides, prompts -------------------------------------------------------------------------


async def test_calendar_overrides_upsert(runtime: Runtime) -> None:
    sat, holiday = dt.date(2026, 10, 10), dt.date(2026, 10, 1)
    async with runtime.svc.uow("test") as uow:
        assert await uow.calendar.overrides() == {}
        await uow.calendar.set(sat, True, "国庆调休上班")
        await uow.calendar.set(holiday, False)
        await uow.commit()
    async with runtime.svc.uow("test") as uow:
        await uow.calendar.set(sat, False, "改为休息")
        await uow.commit()
    async with runtime.svc.uow.reader() as uow:
        assert await uow.calendar.overrides() == {sat: False, holiday: False}
        rows = (await uow.session.execute(select(CalendarOverrideRow).order_by(CalendarOverrideRow.day))).scalars().all()
    assert [(r.day, r.working, r.note) for r in rows] == [(holiday, False, ""), (sat, False, "改为休息")]


async def test_prompts_put_and_take(runtime: Runtime, people: dict[str, Person], clock: FakeClock) -> None:
    chen, li = people["陈处长"].id, people["李校长"].id
    first = Prompt(chen, "2026-0001", "closure", "card-1", clock() + dt.timedelta(minutes=10))
    second = Prompt(chen, "2026-0002", None, None, clock() + dt.timedelta(minutes=20))
    other = Prompt(li, "2026-0003", "draft", "card-9", clock() + dt.timedelta(minutes=10))
    async with runtime.svc.uow("test") as uow:
        await uow.prompts.put(first)
        await uow.prompts.put(other)
        await uow.commit()
    async with runtime.svc.uow("test") as uow:
        await uow.prompts.put(second)  # one open question per person: the newer replaces the older
        await uow.commit()
    async with runtime.svc.uow("test") as uow:
        assert await uow.prompts.take(chen) == second  # rolled back below: still there afterwards
    async with runtime.svc.uow("test") as uow:
        taken = await uow.prompts.take(chen)
        assert taken == second
        assert taken is not None and taken.expires_at.utcoffset() == dt.timedelta(0)
        assert taken.expires_at.astimezone(TZ) == local(2026, 3, 2, 9, 20)
        assert await uow.prompts.take(chen) is None
        await uow.commit()
    async with runtime.svc.uow("test") as uow:
        assert await uow.prompts.take(chen) is None
        assert await uow.prompts.take(li) == other
        await uow.commit()
