"""The scheduler through the real server and the strict WeCom emulator, on SQLite and PostgreSQL.

催办 (第七条 3, 第八条 2): the reminder ladder runs as sweeps (`world.runtime.jobs.sweep(at)`); what each person
received is read from the emulator's delivery records. 统计 and 抽查 (第十一条): the weekly summary (markdown,
XLSX and PNG through the media upload) and the monthly spot check. Nothing sleeps: the FakeClock moves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.app import Runtime, build_runtime
from bot.settings import Settings
from domain.items import ItemKind
from domain.roles import SYSTEM_OFFICE
from handlers.org import PersonSpec, import_org
from handlers.service import NewItem
from scheduler.jobs import Jobs
from scheduler.reports import monthly_spot_check, weekly_summary
from scheduler.sweep import SweepResult
from storage.models import JobRunRow, OutboxRow, ReminderRow, SpotCheckRow

from conftest import ORG, FakeClock, local
from wecom_world import WeComWorld, wecom_settings, world  # noqa: F401  (fixture)

DIGEST = "【督办提醒"
SPOT = "【台账抽查】"
REPORT_AT = dt.time(9, 0)
PRINCIPALS = {"教务处": "chen", "科研院": "zhao", "学生处": "qian"}


# ---- helpers ------------------------------------------------------------------------------------------------


async def create(
    w: WeComWorld,
    deadline: str,
    *,
    title: str = "推进一流本科课程建设",
    unit: str = "教务处",
    handler: str | None = "张老师",
    kind: str = "special",
    **extra: Any,
) -> str:
    body: dict[str, Any] = {"kind": kind, "title": title, "lead_unit": unit, "deadline": deadline, **extra}
    if handler:
        body["handler"] = handler
    if kind == "incoming":
        body.setdefault("source_title", "教育部关于一流课程建设的通知")
    status, data = await w.api("POST", "/api/v1/items", json=body)
    assert status == 201, data
    return str(data["code"])


async def sign(w: WeComWorld, user: str, code: str) -> None:
    assert "已签收" in (await w.say(user, f"签收 {code}") or "")


async def settled(w: WeComWorld) -> None:
    """Deliver everything queued so far and forget it: the next news() shows only what follows."""
    await w.drain()
    w.news()


async def sweep(w: WeComWorld, when: dt.datetime, jobs: Jobs | None = None) -> SweepResult:
    """Move the clock to `when`, run one sweep as of then, and deliver what it queued."""
    w.clock.set(when)
    result = await (jobs or w.runtime.jobs).sweep(when)
    await w.drain()
    return result


def digests(got: dict[str, list[str]]) -> dict[str, list[str]]:
    return {u: [t for t in texts if DIGEST in t] for u, texts in got.items() if any(DIGEST in t for t in texts)}


async def reminder_keys(w: WeComWorld) -> list[str]:
    async with w.runtime.svc.uow.reader() as uow:
        return sorted(k for (k,) in (await uow.session.execute(select(ReminderRow.key))).all())


async def outbox_rows(w: WeComWorld) -> int:
    async with w.runtime.svc.uow.reader() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(OutboxRow))).scalar_one())


async def second_runtime(w: WeComWorld, db_url: str) -> Runtime:
    """Another process (a restart, or a second replica) on the same database and the same WeCom.

    A process starting while the clock is in 2026 tells the office once that the holiday package does
    not cover 2027 yet; that note is delivered and forgotten here, so call this with nothing else pending."""
    rt = await build_runtime(wecom_settings(db_url, w.emu.base_url), w.clock)
    await rt.sender.drain()
    got = w.news()
    assert set(got) <= {"zhou"} and all("节假日日历尚未包含 2027 年" in t for t in got.get("zhou", [])), got
    return rt


def fresh_jobs(w: WeComWorld) -> Jobs:
    rt = w.runtime
    return Jobs(rt.db, rt.svc, rt.settings.ladder, report_at=rt.settings.report_at,
                spot_check_units=rt.settings.spot_check_units, sweep_seconds=600, poke=rt.sender.poke)


# =====================================================================================================
# 1. Each rung reaches the right people


async def test_each_deadline_rung_reaches_its_audience(world: WeComWorld) -> None:
    """Deadline Fri 3-13 for 张老师 of 教务处 (陈处长 principal, 李校长 in charge): due soon Tue 3-10 and due
    today Fri 3-13 → handler; overdue Mon 3-16 → handler and principal; escalated Wed 3-18 → leader and office."""
    w = world
    code = await create(w, "2026-03-13")
    await settled(w)

    assert (await sweep(w, local(2026, 3, 9, 9, 0))).messages == 0
    w.expect_news({})

    r = await sweep(w, local(2026, 3, 10, 9, 0))
    assert (r.fresh, r.messages) == (1, 1)
    got = w.expect_news({"zhang": ["即将到期"]})
    assert code in got["zhang"][0] and "🟡" in got["zhang"][0] and "张老师您好" in got["zhang"][0]

    r = await sweep(w, local(2026, 3, 13, 9, 0))
    w.expect_news({"zhang": ["今日到期"]})

    r = await sweep(w, local(2026, 3, 16, 9, 0))
    assert r.messages == 2
    got = w.expect_news({"zhang": ["已逾期，学校办公室催办"], "chen": ["已逾期，学校办公室催办"]})
    assert all("🔴" in t[0] and code in t[0] for t in got.values())
    assert "陈处长您好" in got["chen"][0]

    await sweep(w, local(2026, 3, 17, 9, 0))
    w.expect_news({})

    r = await sweep(w, local(2026, 3, 18, 9, 0))
    got = w.expect_news({"li": ["逾期已超过3个工作日，督办升级报告"], "zhou": ["逾期已超过3个工作日"]})
    assert all("🔴" in t[0] and code in t[0] for t in got.values())

    assert await reminder_keys(w) == sorted([
        "1:due_soon:3:2026-03-10", "1:due_today:0:2026-03-13", "1:overdue:1:2026-03-16", "1:escalate:3:2026-03-18",
    ])
    # the automatic reminders show in the item's timeline, by the system, when they were sent
    reminded = [e for e in (await w.item(code))["timeline"] if e["kind"] == "reminded"]
    assert [(e["payload"]["rule"], e["actor"], e["at"][:10]) for e in reminded] == [
        ("due_soon", "系统", "2026-03-10"), ("due_today", "系统", "2026-03-13"),
        ("overdue", "系统", "2026-03-16"), ("escalate", "系统", "2026-03-18"),
    ]


async def test_escalation_goes_to_the_named_leader_rather_than_every_leader_in_charge(world: WeComWorld) -> None:
    w = world
    named = await create(w, "2026-03-13", leader="王副校长", title="学科评估材料报送")
    unnamed = await create(w, "2026-03-13", unit="学生处", handler="吴老师", title="学生资助政策落实")
    await settled(w)
    await sweep(w, local(2026, 3, 18, 9, 0))
    got = w.expect_news({"wang": ["督办升级报告"], "zhou": ["督办升级报告"]})
    assert named in got["wang"][0] and unnamed in got["wang"][0]  # 王副校长 is in charge of 学生处 too
    assert named in got["zhou"][0] and unnamed in got["zhou"][0]
    assert "2 项" in got["zhou"][0]


async def test_slow_and_periodic_reach_the_handler_only(world: WeComWorld) -> None:
    """Slow: signed Mon 3-02, no published progress for 10 working days → Mon 3-16 (吴老师, 刘老师).
    Periodic: the first working day from the 25th (Wed 3-25), unless progress was reported this month."""
    w = world
    slow = await create(w, "2026-06-30", unit="学生处", handler="吴老师", title="学生资助政策落实")
    periodic = await create(w, "2026-12-31", kind="periodic", handler="刘老师", title="年度工作要点第3项")
    reported = await create(w, "2026-12-31", kind="periodic", handler="刘老师", title="年度工作要点第4项")
    await w.drain()
    for code in (periodic, reported):
        assert "已同意" in (await w.say("li", f"同意 {code}") or "")  # the leader approves the task-ledger draft
        await w.drain()
    await sign(w, "wu", slow)
    await sign(w, "liu", periodic)
    await sign(w, "liu", reported)
    await settled(w)

    r = await sweep(w, local(2026, 3, 13, 9, 0))
    assert r.messages == 0
    r = await sweep(w, local(2026, 3, 16, 9, 0))
    got = w.expect_news({"wu": ["进展缓慢"], "liu": ["进展缓慢"]})
    assert slow in got["wu"][0] and "🟡" in got["wu"][0]
    assert periodic in got["liu"][0] and reported in got["liu"][0]

    w.clock.set(local(2026, 3, 20, 10, 0))
    assert "进展已提交" in (await w.say("liu", f"进展 {reported} 已完成第一阶段") or "")
    await settled(w)

    await sweep(w, local(2026, 3, 24, 9, 0))
    w.expect_news({})
    r = await sweep(w, local(2026, 3, 25, 9, 0))
    got = w.expect_news({"liu": ["定期督办事项请报送本期办理进度"]})
    assert periodic in got["liu"][0] and reported not in got["liu"][0] and "🟢" in got["liu"][0]
    await sweep(w, local(2026, 3, 26, 9, 0))
    w.expect_news({})


async def test_an_item_without_a_handler_reminds_the_unit_principal_once(world: WeComWorld) -> None:
    w = world
    code = await create(w, "2026-03-13", unit="学生处", handler=None, title="宿舍安全检查")
    await settled(w)
    await sweep(w, local(2026, 3, 10, 9, 0))
    got = w.expect_news({"qian": ["即将到期"]})
    assert code in got["qian"][0]
    # overdue: as the stand-in handler and as the principal, still one message
    r = await sweep(w, local(2026, 3, 16, 9, 0))
    assert r.messages == 1
    w.expect_news({"qian": ["已逾期"]})


# =====================================================================================================
# 2. One digest per person per sweep


async def test_one_digest_per_person_listing_all_their_items(world: WeComWorld) -> None:
    w = world
    overdue = await create(w, "2026-03-06", title="本科教学审核评估整改")
    today = await create(w, "2026-03-10", title="课程思政示范课申报")
    soon = await create(w, "2026-03-13", title="教材建设规划编制")
    other = await create(w, "2026-03-12", handler="刘老师", title="实验室安全排查")
    await settled(w)
    sends = len(w.emu.sent)

    r = await sweep(w, local(2026, 3, 10, 9, 0))
    assert (r.rungs, r.fresh) == (4, 4)
    got = w.expect_news({"zhang": ["3 项"], "chen": ["1 项"], "liu": ["1 项"]})
    assert r.messages == len(got) == len(r.recipients) == 3
    text = got["zhang"][0]
    for code in (overdue, today, soon):
        assert code in text
    assert "🔴" in text and "🟡" in text
    # the most urgent first
    assert text.index(overdue) < text.index(today) < text.index(soon)
    assert overdue in got["chen"][0] and today not in got["chen"][0]
    assert other in got["liu"][0] and "即将到期" in got["liu"][0]
    assert len(w.emu.sent) == sends + 3 and not w.emu.dropped  # three accepted message/send calls


async def test_a_digest_of_many_items_stays_within_the_wecom_text_limit(world: WeComWorld) -> None:
    w = world
    codes = [await create(w, "2026-03-13", title=f"第{i}项：关于进一步加强和改进本科教学工作的若干落实措施") for i in range(40)]
    await w.drain()
    w.clock.advance(minutes=2)  # the sender paces 40 sign cards to one person over two minutes
    await settled(w)
    assert len(w.emu.cards_for("zhang")) == 40 and not w.emu.dropped
    r = await sweep(w, local(2026, 3, 10, 9, 0))
    assert (r.fresh, r.messages) == (40, 1)
    got = w.expect_news({"zhang": ["40 项"]})
    text = got["zhang"][0]
    assert len(text.encode()) <= 2048
    shown = [c for c in codes if c in text]
    assert 0 < len(shown) < 40
    assert f"……另有 {40 - len(shown)} 项未列出" in text
    assert text.endswith("回复“待办”查看全部，“查看 编号”看详情。")


# =====================================================================================================
# 3. Never twice


async def test_never_twice_same_day_next_day_and_after_a_restart(world: WeComWorld, db_url: str) -> None:
    w = world
    code = await create(w, "2026-03-16")
    await settled(w)

    r = await sweep(w, local(2026, 3, 11, 9, 0))
    assert r.messages == 1
    w.expect_news({"zhang": ["即将到期"]})

    for when in (local(2026, 3, 11, 9, 10), local(2026, 3, 11, 16, 0), local(2026, 3, 12, 9, 0)):
        r = await sweep(w, when)
        assert (r.rungs, r.fresh, r.messages) == (1, 0, 0), when
    r = await sweep(w, local(2026, 3, 12, 9, 30), jobs=fresh_jobs(w))
    assert (r.fresh, r.messages) == (0, 0)

    rt2 = await second_runtime(w, db_url)
    sends = len(w.emu.sent)
    try:
        assert rt2.jobs is not None
        w.clock.set(local(2026, 3, 13, 9, 0))
        r = await rt2.jobs.sweep()
        assert r.rungs == 0 or (r.fresh, r.messages) == (0, 0)
        assert await rt2.sender.drain() == 0
        w.expect_news({})
        assert len(w.emu.sent) == sends

        # the next week: a new rung (due today on Mon 3-16), sent by the restarted process
        w.clock.set(local(2026, 3, 16, 9, 0))
        r = await rt2.jobs.sweep()
        assert r.messages == 1
        assert await rt2.sender.drain() == 1
        got = w.expect_news({"zhang": ["今日到期"]})
        assert code in got["zhang"][0]
        r = await sweep(w, local(2026, 3, 16, 9, 10))
        assert r.messages == 0
        w.expect_news({})
    finally:
        await rt2.close()


async def test_two_replicas_sweeping_at_once_send_each_digest_once(world: WeComWorld, db_url: str) -> None:
    w = world
    for i, deadline in enumerate(("2026-03-06", "2026-03-10", "2026-03-13")):
        await create(w, deadline, title=f"并发催办事项{i}")
    await create(w, "2026-03-06", unit="学生处", handler="吴老师", title="学生资助政策落实")
    await settled(w)
    rt2 = await second_runtime(w, db_url)
    try:
        assert rt2.jobs is not None and w.runtime.jobs is not None
        w.clock.set(local(2026, 3, 10, 9, 0))
        results = await asyncio.gather(*(rt.jobs.sweep() for rt in (w.runtime, rt2, w.runtime, rt2)))  # type: ignore[union-attr]
        assert sum(r.messages for r in results) == 4  # zhang, chen, wu, qian
        await asyncio.gather(w.runtime.sender.drain(), rt2.sender.drain())
        await w.drain()
        got = w.expect_news({"zhang": [DIGEST], "chen": [DIGEST], "wu": [DIGEST], "qian": [DIGEST]})
        assert "3 项" in got["zhang"][0]
        assert len(await reminder_keys(w)) == 4
    finally:
        await rt2.close()


# =====================================================================================================
# 4. Held: quiet hours, weekends, holidays; the 调休 Saturday; catch-up


async def test_quiet_hours_hold_and_the_next_morning_catches_up(world: WeComWorld) -> None:
    """Overdue on Mon 3-16, but the process only swept that night and before 08:00 the next morning:
    the rung is not lost, it goes out at 08:05 on Tuesday."""
    w = world
    code = await create(w, "2026-03-13")
    await settled(w)
    before = await outbox_rows(w)
    for when in (local(2026, 3, 16, 22, 0), local(2026, 3, 16, 23, 0), local(2026, 3, 17, 0, 30),
                 local(2026, 3, 17, 7, 30), local(2026, 3, 17, 7, 59)):
        r = await sweep(w, when)
        assert r.held == "quiet hours", when
        assert r.messages == 0
    assert await outbox_rows(w) == before and await reminder_keys(w) == []
    w.expect_news({})

    r = await sweep(w, local(2026, 3, 17, 8, 5))
    assert r.held == "" and r.messages == 2
    got = w.expect_news({"zhang": ["已逾期"], "chen": ["已逾期"]})
    assert code in got["zhang"][0] and "3月17日" in got["zhang"][0]
    assert await reminder_keys(w) == ["1:overdue:1:2026-03-16"]


async def test_weekends_hold_and_a_stopped_process_catches_up_on_monday(world: WeComWorld) -> None:
    w = world
    await create(w, "2026-03-12")  # overdue Fri 3-13; the process was down that day
    await settled(w)
    for when in (local(2026, 3, 14, 10, 0), local(2026, 3, 15, 10, 0)):
        r = await sweep(w, when)
        assert r.held == "non-working day"
    w.expect_news({})
    assert await reminder_keys(w) == []
    r = await sweep(w, local(2026, 3, 16, 8, 5))
    assert r.messages == 2
    w.expect_news({"zhang": ["已逾期"], "chen": ["已逾期"]})
    assert await reminder_keys(w) == ["1:overdue:1:2026-03-13"]


async def test_national_day_holds_and_the_makeup_saturday_sends(world: WeComWorld) -> None:
    """Deadline Wed 9-30: due today 9-30; 10-01..07 off (held); overdue Thu 10-08; escalated on the
    调休 Saturday 10-10 (a working day: the sweep runs); Sunday 10-11 is held again."""
    w = world
    code = await create(w, "2026-09-30")
    late = await create(w, "2026-10-09", handler="刘老师", title="迎新工作总结")
    await settled(w)

    await sweep(w, local(2026, 9, 30, 9, 0))
    w.expect_news({"zhang": ["今日到期"], "liu": ["即将到期"]})  # liu: 3 working days before 10-09 is 9-29
    for day in range(1, 8):
        r = await sweep(w, local(2026, 10, day, 10, 0))
        assert r.held == "non-working day", day
    w.expect_news({})

    await sweep(w, local(2026, 10, 8, 9, 0))
    got = w.expect_news({"zhang": ["已逾期"], "chen": ["已逾期"]})
    assert code in got["chen"][0]
    await sweep(w, local(2026, 10, 9, 9, 0))
    w.expect_news({"liu": ["今日到期"]})

    r = await sweep(w, local(2026, 10, 10, 9, 0))
    assert r.held == ""
    got = w.expect_news({"li": ["督办升级报告"], "zhou": ["督办升级报告"], "liu": ["已逾期"], "chen": ["已逾期"]})
    assert code in got["li"][0] and late in got["liu"][0] and late in got["chen"][0] and code not in got["chen"][0]

    r = await sweep(w, local(2026, 10, 11, 9, 0))
    assert r.held == "non-working day"
    w.expect_news({})


async def test_spring_festival_holds_and_the_working_saturdays_send(world: WeComWorld) -> None:
    w = world
    w.clock.set(local(2026, 2, 2, 9, 0))
    code = await create(w, "2026-02-13")
    await settled(w)
    r = await sweep(w, local(2026, 2, 14, 9, 0))  # a working Saturday: overdue goes out
    assert r.messages == 2
    w.expect_news({"zhang": ["已逾期"], "chen": ["已逾期"]})
    for day in range(15, 24):
        assert (await sweep(w, local(2026, 2, day, 9, 0))).held == "non-working day"
    await sweep(w, local(2026, 2, 24, 9, 0))
    w.expect_news({})
    await sweep(w, local(2026, 2, 25, 9, 0))
    got = w.expect_news({"li": ["督办升级报告"], "zhou": ["督办升级报告"]})
    assert code in got["li"][0]


# =====================================================================================================
# 5. Wording varies from day to day


async def test_two_digests_to_the_same_person_on_different_days_differ(world: WeComWorld) -> None:
    w = world
    await create(w, "2026-12-31", unit="学生处", handler="吴老师", title="学生资助政策落实")
    code = (await w.api("GET", "/api/v1/items"))[1]["items"][0]["code"]
    await sign(w, "wu", code)
    await settled(w)
    await sweep(w, local(2026, 3, 16, 9, 0))  # slow, level 1
    await sweep(w, local(2026, 3, 30, 9, 0))  # slow, level 2
    texts = [t for t in w.texts("wu") if DIGEST in t]
    assert len(texts) == 2
    assert texts[0] != texts[1]
    assert all(code in t and "进展缓慢" in t for t in texts)
    assert not w.emu.duplicates


# =====================================================================================================
# 6. Manual 催办 by the office goes out at once, whatever the hour


async def test_manual_urge_by_chat_and_api_goes_out_at_once_on_a_sunday_night(world: WeComWorld) -> None:
    w = world
    code = await create(w, "2026-03-31")
    await settled(w)

    w.clock.set(local(2026, 3, 15, 23, 30))  # Sunday, quiet hours
    reply = await w.say("zhou", f"催办 {code} 请于周一上午前报送进展")
    assert reply is not None and f"已催办 {code}" in reply
    await w.drain()
    got = w.expect_news({"zhang": ["【催办】"], "chen": ["【催办】"]})
    assert "请于周一上午前报送进展" in got["zhang"][0]

    w.clock.set(local(2026, 3, 15, 23, 45))
    status, data = await w.api("POST", f"/api/v1/items/{code}/urge", json={"note": "今晚务必回复"})
    assert status == 200, data
    assert data["urge_count"] == 2
    await w.drain()
    got = w.expect_news({"zhang": ["今晚务必回复"], "chen": ["今晚务必回复"]})

    item = await w.item(code)
    urged = [e for e in item["timeline"] if e["kind"] == "urged"]
    assert len(urged) == 2
    # a handler may not urge
    assert "只有学校办公室" in (await w.say("zhang", f"催办 {code}") or "")
    await w.drain()
    w.expect_news({})


# =====================================================================================================
# 7. Statistics


def parse_stats(text: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line in text.splitlines()[1:]:
        unit, *numbers = line.split("｜")
        out[unit] = [int(n) for n in numbers]
    return out


def api_rows(data: dict[str, Any]) -> dict[str, list[int]]:
    keys = ["total", "in_progress", "closed_on_time", "closed_late", "overdue_now", "urged", "returned"]
    return {u["unit"]: [u[k] for k in keys] for u in data["units"]}


async def close_incoming(w: WeComWorld, code: str, handler: str = "zhang", principal: str = "chen") -> None:
    assert "办结已提交" in (await w.say(handler, f"办结 {code} 已按要求完成") or "")
    assert "已同意" in (await w.say(principal, f"同意 {code}") or "")
    assert "已同意" in (await w.say("li", f"同意 {code}") or "")
    await w.drain()


async def test_statistics_match_between_api_and_cli(world: WeComWorld, db_url: str, tmp_path: Path) -> None:
    w = world
    on_time = await create(w, "2026-03-13", kind="incoming", title="按期办结事项")
    late = await create(w, "2026-03-04", kind="incoming", title="逾期办结事项")
    overdue = await create(w, "2026-03-04", handler="刘老师", title="逾期未办结事项")
    urged = await create(w, "2026-03-31", handler="刘老师", title="被催办事项")
    returned = await create(w, "2026-03-31", unit="学生处", handler="吴老师", title="被退回事项")
    cancelled = await create(w, "2026-03-31", unit="学生处", handler="吴老师", title="被撤销事项")
    await create(w, "2026-03-20", unit="科研院", handler=None, title="待指派事项")
    due_soon = await create(w, "2026-03-11", unit="科研院", handler="孙老师", title="只收到到期提醒的事项")
    for user, code in (("zhang", on_time), ("zhang", late), ("liu", overdue), ("liu", urged), ("wu", returned)):
        await sign(w, user, code)

    w.clock.set(local(2026, 3, 5, 10, 0))
    await close_incoming(w, on_time)
    w.clock.set(local(2026, 3, 6, 10, 0))
    await close_incoming(w, late)
    assert "办结已提交" in (await w.say("wu", f"办结 {returned} 已完成") or "")
    assert "已退回" in (await w.say("qian", f"退回 {returned} 材料不全") or "")
    assert "已撤销" in (await w.say("zhou", f"撤销 {cancelled} 工作调整") or "")
    status, _ = await w.api("POST", f"/api/v1/items/{urged}/urge", json={"note": "请加快"})
    assert status == 200
    r = await sweep(w, local(2026, 3, 6, 11, 0))  # the automatic 催办 of the overdue item
    assert r.fresh == 2
    assert await reminder_keys(w) == [f"{int(overdue[-4:])}:overdue:1:2026-03-05", f"{int(due_soon[-4:])}:due_soon:3:2026-03-06"]
    assert (await w.item(overdue))["urge_count"] == 0  # an automatic reminder is not a manual 催办 …

    w.clock.set(local(2026, 3, 9, 9, 0))
    status, data = await w.api("GET", "/api/v1/stats")
    assert status == 200
    assert api_rows(data) == {  # … but the statistics count it as urged
        # total, in_progress, closed_on_time, closed_late, overdue_now, urged, returned
        "教务处": [4, 2, 1, 1, 1, 2, 0],
        "学生处": [1, 1, 0, 0, 0, 0, 1],
        "科研院": [2, 2, 0, 0, 0, 0, 0],  # a due-soon reminder is not a 催办
    }
    assert [u["unit"] for u in data["units"]][0] == "教务处"  # most overdue first
    chat = await w.say("zhou", "统计")
    assert chat is not None and parse_stats(chat) == api_rows(data)

    # `duban stats` runs on the real clock: compare with the API at that same moment
    w.clock.set(dt.datetime.now(dt.UTC))
    cli = run_cli(["stats"], db_url, tmp_path)
    assert cli.returncode == 0, cli.stderr
    status, data = await w.api("GET", "/api/v1/stats")
    assert parse_stats(cli.stdout.strip()) == api_rows(data)
    assert set(api_rows(data)) == {"教务处", "学生处", "科研院"}


# =====================================================================================================
# 8. Weekly summary


def media_of(w: WeComWorld, user: str) -> dict[str, dict[str, Any]]:
    """msgtype → the emulator's media record, for the file and image messages the member received."""
    out: dict[str, dict[str, Any]] = {}
    for rec in w.emu.delivered[user]:
        if rec["msgtype"] in ("file", "image"):
            out[rec["msgtype"]] = w.emu.media[rec["payload"]["media_id"]]
    return out


async def test_weekly_summary_once_per_iso_week_to_office_and_leaders(world: WeComWorld, db_url: str) -> None:
    w = world
    svc = w.runtime.svc
    await create(w, "2026-03-04", title="逾期未办结事项")
    await create(w, "2026-03-31", unit="学生处", handler="吴老师", title="学生资助政策落实")
    await settled(w)
    rt2 = await second_runtime(w, db_url)

    async def weekly(when: dt.datetime, s: Any = svc) -> bool:
        w.clock.set(when)
        return await weekly_summary(s, when, REPORT_AT)

    assert not await weekly(local(2026, 3, 7, 10, 0))  # Saturday
    assert not await weekly(local(2026, 3, 9, 8, 59))  # before the report time
    assert await weekly(local(2026, 3, 9, 9, 0))
    assert not await weekly(local(2026, 3, 9, 9, 15))
    assert not await weekly(local(2026, 3, 13, 16, 0))
    try:
        assert not await weekly(local(2026, 3, 10, 9, 0), rt2.svc)
    finally:
        await rt2.close()
    await w.drain()
    got = w.news()
    assert sorted(got) == ["li", "wang", "zhou"], got  # office and leaders only

    for user in ("zhou", "li", "wang"):
        kinds = [r["msgtype"] for r in w.emu.delivered[user] if r["msgtype"] != "text"]  # zhou: the calendar note
        assert sorted(kinds) == ["file", "image", "markdown"], (user, kinds)
        md = [t for t in w.texts(user) if "督办周报" in t]
        assert len(md) == 1
        assert "2026-W11" in md[0]
        assert re.search(r"当前逾期 .*1.* 项", md[0]), md[0]
        assert "逾期 1" in md[0]
        files = media_of(w, user)
        assert files["image"]["type"] == "image" and files["image"]["data"].startswith(b"\x89PNG\r\n\x1a\n")
        assert files["file"]["type"] == "file" and files["file"]["filename"] == "duban-stats-2026-W11.xlsx"
        ws = load_workbook(io.BytesIO(files["file"]["data"])).active
        rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
        assert rows[0][:3] == ["单位", "督办总数", "办理中"]
        by_unit = {r[0]: r[1:] for r in rows[1:]}
        assert by_unit["教务处"] == [1, 1, 0, 0, 1, 0, 0]
        assert by_unit["学生处"] == [1, 1, 0, 0, 0, 0, 0]
        assert by_unit["合计"] == [2, 2, 0, 0, 1, 0, 0]
    assert len(w.emu.media) == 2  # one upload each, sent to the three at once

    # the next ISO week: again, once, even with two processes asking at the same moment
    rt3 = await second_runtime(w, db_url)
    try:
        w.clock.set(local(2026, 3, 16, 9, 30))
        results = await asyncio.gather(*(weekly_summary(x, w.clock.now, REPORT_AT) for x in (svc, rt3.svc, svc, rt3.svc)))
        assert sorted(results) == [False, False, False, True]
    finally:
        await rt3.close()
    assert not await weekly(local(2026, 3, 16, 9, 45))
    await w.drain()
    got = w.news()
    assert sorted(got) == ["li", "wang", "zhou"] and all(len(v) == 3 for v in got.values())
    assert any("2026-W12" in t for t in got["zhou"])


async def test_a_claimed_week_is_not_prepared_again(world: WeComWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report tick asks every 15 minutes all week: once the week is claimed it must not render the
    chart again (half a second of blocked event loop each time) only to throw it away."""
    from scheduler import reports

    w = world
    w.clock.set(local(2026, 3, 9, 9, 0))
    assert await weekly_summary(w.runtime.svc, w.clock.now, REPORT_AT)

    def no_chart(*args: Any, **kw: Any) -> Any:
        raise AssertionError("the chart was drawn for a week already sent")

    monkeypatch.setattr(reports, "stats_chart", no_chart)
    for minutes in (15, 30, 45, 24 * 60):
        w.clock.set(local(2026, 3, 9, 9, 0) + dt.timedelta(minutes=minutes))
        assert not await weekly_summary(w.runtime.svc, w.clock.now, REPORT_AT)


async def test_weekly_summary_waits_for_the_first_working_day_of_a_holiday_week(world: WeComWorld) -> None:
    """ISO week 41 of 2026 starts with four days of National Day: the summary goes out Thu 10-08."""
    w = world
    svc = w.runtime.svc
    for day in (5, 6, 7):
        w.clock.set(local(2026, 10, day, 10, 0))
        assert not await weekly_summary(svc, w.clock.now, REPORT_AT)
    w.clock.set(local(2026, 10, 8, 9, 0))
    assert await weekly_summary(svc, w.clock.now, REPORT_AT)
    w.clock.set(local(2026, 10, 10, 9, 0))  # the 调休 Saturday, same week
    assert not await weekly_summary(svc, w.clock.now, REPORT_AT)
    async with svc.uow.reader() as uow:
        keys = [k for (k,) in (await uow.session.execute(select(JobRunRow.key))).all()]
    assert keys == ["weekly:2026-W41"]


async def test_the_reports_tick_sends_the_weekly_summary_and_the_monthly_draw(world: WeComWorld) -> None:
    """The 15-minute tick: the weekly summary to office and leaders, and — the first time it runs on or
    after the month's first working day (3-02; the process was not running then) — the monthly draw
    (DUBAN_SPOTCHECK_UNITS, 3 by default: every unit with a principal here). Both once."""
    w = world
    await settled(w)
    assert w.runtime.jobs is not None
    w.clock.set(local(2026, 3, 9, 8, 50))
    await w.runtime.jobs.reports()
    await w.drain()
    w.expect_news({})
    w.clock.set(local(2026, 3, 9, 9, 10))
    await w.runtime.jobs.reports()
    w.clock.set(local(2026, 3, 9, 9, 25))
    await w.runtime.jobs.reports()
    await w.drain()
    got = w.news()
    assert sorted(got) == ["chen", "li", "qian", "wang", "zhao", "zhou"], got
    for user in ("zhou", "li", "wang"):
        assert sorted(r["msgtype"] for r in w.emu.delivered[user]) == ["file", "image", "markdown"]
    for user in PRINCIPALS.values():
        assert len(got[user]) == 1 and SPOT in got[user][0] and "3 月" in got[user][0]


# =====================================================================================================
# 9. Spot checks (抽查)


@pytest.fixture
def two_units(monkeypatch: pytest.MonkeyPatch) -> int:
    """DUBAN_SPOTCHECK_UNITS for the world built after this fixture (request it before `world`)."""
    monkeypatch.setenv("DUBAN_SPOTCHECK_UNITS", "2")
    return 2


def drawn_units(summary: str) -> list[str]:
    return re.findall(r"^· (\S+?)｜", summary, re.MULTILINE)


async def test_spot_check_draw_confirm_and_summary(two_units: int, world: WeComWorld) -> None:
    w = world
    assert w.runtime.settings.spot_check_units == 2
    status, data = await w.api("POST", "/api/v1/ledger", json={
        "unit": "教务处", "doc_title": "关于做好2026年春季学期开学工作的通知", "doc_number": "教高厅〔2026〕1号",
        "responsible": "张老师", "deadline": "2026-03-20", "summary": "已部署，正在落实",
    })
    assert status in (200, 201), data
    await settled(w)

    w.clock.set(local(2026, 3, 10, 10, 0))
    refusals = await w.refusals()
    reply = await w.say("zhang", "抽查")
    assert reply is not None and "只有学校办公室督办人员可以抽查台账" in reply
    assert await w.refusals() == refusals + 1

    reply = await w.say("zhou", "抽查")
    assert reply is not None and reply.startswith("已随机抽取并通知以下单位")
    assert "2026-03 台账抽查：共 2 个单位，已确认 0 个" in reply
    units = drawn_units(reply)
    assert len(units) == 2 and set(units) <= set(PRINCIPALS)
    await w.drain()
    got = w.expect_news({PRINCIPALS[u]: [SPOT] for u in units})
    if "教务处" in units:
        assert "现有 1 条" in got["chen"][0]

    again = await w.say("zhou", "抽查")
    assert again is not None and not again.startswith("已随机抽取")
    assert drawn_units(again) == units
    await w.drain()
    w.expect_news({})

    drawn, undrawn = PRINCIPALS[units[0]], next(p for u, p in PRINCIPALS.items() if u not in units)
    reply = await w.say(drawn, "确认台账 已核对，台账为最新")
    assert reply is not None and "已收到贵单位 2026-03 台账确认" in reply
    async with w.runtime.svc.uow.reader() as uow:
        assert await uow.events.count("spot_check_answered") == 1
        answered = [c for c in await uow.jobs.checks_for("2026-03") if c.answered_at]
    assert len(answered) == 1 and answered[0].answer == "已核对，台账为最新"
    reply = await w.say(undrawn, "确认台账")
    assert reply is not None and "本月未抽查贵单位的台账，无需确认" in reply
    reply = await w.say("wu", "确认台账")
    assert reply is not None and "只有单位主要负责人可以确认台账" in reply
    assert await w.refusals() == refusals + 3

    summary = await w.say("zhou", "抽查")
    assert summary is not None and "已确认 1 个" in summary
    line = next(ln for ln in summary.splitlines() if ln.startswith(f"· {units[0]}｜"))
    assert "已确认" in line and "已核对，台账为最新" in line
    assert "待确认" in next(ln for ln in summary.splitlines() if ln.startswith(f"· {units[1]}｜"))

    # the weekly summary carries the spot check
    w.clock.set(local(2026, 3, 16, 9, 0))
    assert await weekly_summary(w.runtime.svc, w.clock.now, REPORT_AT)
    await w.drain()
    md = next(t for t in w.texts("zhou") if "督办周报" in t)
    assert "2026-03 台账抽查：共 2 个单位，已确认 1 个" in md
    assert "已核对，台账为最新" in md

    # a new month, a new draw
    w.clock.set(local(2026, 4, 1, 10, 0))
    reply = await w.say("zhou", "抽查")
    assert reply is not None and reply.startswith("已随机抽取") and "2026-04" in reply


async def test_monthly_spot_check_on_the_first_working_day_after_the_report_time_once(
    two_units: int, world: WeComWorld, db_url: str
) -> None:
    w = world
    svc = w.runtime.svc
    await settled(w)
    rt2 = await second_runtime(w, db_url)

    async def monthly(when: dt.datetime, s: Any = svc) -> bool:
        w.clock.set(when)
        return await monthly_spot_check(s, when, REPORT_AT, 2)

    # May 2026: 5-01..05 off, the first working day is Wed 5-06
    assert not await monthly(local(2026, 5, 1, 10, 0))
    assert not await monthly(local(2026, 5, 4, 10, 0))
    assert not await monthly(local(2026, 5, 6, 8, 45))
    assert await monthly(local(2026, 5, 6, 9, 0))
    assert not await monthly(local(2026, 5, 6, 9, 15))
    assert not await monthly(local(2026, 5, 7, 9, 0))
    try:
        assert not await monthly(local(2026, 5, 8, 9, 0), rt2.svc)
    finally:
        await rt2.close()
    await w.drain()
    got = w.news()
    assert len(got) == 2 and set(got) <= set(PRINCIPALS.values())
    assert all(len(v) == 1 and SPOT in v[0] and "5 月" in v[0] for v in got.values())
    async with svc.uow.reader() as uow:
        months = [m for (m,) in (await uow.session.execute(select(SpotCheckRow.month))).all()]
    assert months == ["2026-05", "2026-05"]

    # the office's own draw earlier in the month means no automatic one
    w.clock.set(local(2026, 6, 1, 8, 30))
    assert (await w.say("zhou", "抽查") or "").startswith("已随机抽取")
    await settled(w)
    assert not await monthly(local(2026, 6, 1, 9, 0))
    await w.drain()
    w.expect_news({})


async def test_two_replicas_drawing_at_once_draw_once(two_units: int, world: WeComWorld, db_url: str) -> None:
    w = world
    await settled(w)
    rt2 = await second_runtime(w, db_url)
    try:
        w.clock.set(local(2026, 4, 1, 9, 0))
        results = await asyncio.gather(
            monthly_spot_check(w.runtime.svc, w.clock.now, REPORT_AT, 2),
            monthly_spot_check(rt2.svc, w.clock.now, REPORT_AT, 2),
            return_exceptions=True,
        )
        assert sorted(results) == [False, True], results  # type: ignore[type-var]
    finally:
        await rt2.close()
    await w.drain()
    got = w.news()
    assert len(got) == 2 and all(len(v) == 1 for v in got.values())


# =====================================================================================================
# 10. `duban remind --at` as a subprocess


def run_cli(args: list[str], db_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECOM_", "DINGTALK_", "DUBAN_"))}
    env["DUBAN_DATABASE_URL"] = db_url
    duban = Path(sys.executable).parent / "duban"
    return subprocess.run([str(duban), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def remind_db(sqlite_template: Path, tmp_path: Path) -> str:
    """An embedded database with the org and three items, written by a process that has since exited."""
    path = tmp_path / "remind.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(prepare_remind_db(url))
    return url


async def prepare_remind_db(url: str) -> None:
    rt = await build_runtime(Settings(DUBAN_DATABASE_URL=url, _env_file=None), FakeClock(local(2026, 3, 2, 9, 0)))
    try:
        specs = [PersonSpec(unit=u, name=n, roles=frozenset(r), wecom_id=wid, dingtalk_id=did, units_in_charge=c)
                 for u, n, r, wid, did, c in ORG]
        await import_org(rt.svc, SYSTEM_OFFICE, specs, "test")
        for title, unit, handler, deadline in (
            ("本科教学审核评估整改", "教务处", "张老师", dt.date(2026, 3, 6)),  # overdue on Mon 3-09
            ("课程思政示范课申报", "教务处", "刘老师", dt.date(2026, 3, 9)),  # due today
            ("学生资助政策落实", "学生处", "吴老师", dt.date(2026, 3, 12)),  # due soon (3 working days before)
        ):
            await rt.svc.create_item(SYSTEM_OFFICE, NewItem(ItemKind.SPECIAL, title, unit, deadline, handler=handler), "test")
        await rt.sender.drain()  # the creation notices: dead letters, no channel is on
    finally:
        await rt.close()


async def read_remind_db(url: str) -> tuple[list[str], dict[str, int]]:
    rt = await build_runtime(Settings(DUBAN_DATABASE_URL=url, _env_file=None), FakeClock(local(2026, 3, 9, 9, 0)))
    try:
        async with rt.svc.uow.reader() as uow:
            keys = sorted(k for (k,) in (await uow.session.execute(select(ReminderRow.key))).all())
            digests = (await uow.session.execute(
                select(OutboxRow.status, func.count()).where(OutboxRow.dedup_key.like("digest:%")).group_by(OutboxRow.status)
            )).all()
        return keys, {st: n for st, n in digests}
    finally:
        await rt.close()


def test_duban_remind_at_runs_one_sweep_and_never_repeats(remind_db: str, tmp_path: Path) -> None:
    first = run_cli(["remind", "--at", "2026-03-09T09:00+08:00"], remind_db, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "检查 3 项，新触发提醒 3 条，生成 4 条汇总消息" in first.stdout, first.stdout
    keys, digests = asyncio.run(read_remind_db(remind_db))
    assert keys == ["1:overdue:1:2026-03-09", "2:due_today:0:2026-03-09", "3:due_soon:3:2026-03-09"]
    assert digests == {"dead": 4}  # zhang, chen, liu, wu: no channel is configured

    second = run_cli(["remind", "--at", "2026-03-09T09:00+08:00"], remind_db, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "新触发提醒 0 条，生成 0 条汇总消息" in second.stdout, second.stdout
    third = run_cli(["remind", "--at", "2026-03-09T16:00"], remind_db, tmp_path)  # no offset: Asia/Shanghai
    assert "新触发提醒 0 条，生成 0 条汇总消息" in third.stdout, third.stdout
    assert asyncio.run(read_remind_db(remind_db)) == (keys, digests)

    # the next day brings a new rung: yesterday's due-today item is overdue (刘老师 and 陈处长)
    fourth = run_cli(["remind", "--at", "2026-03-10T10:00"], remind_db, tmp_path)
    assert "检查 3 项，新触发提醒 1 条，生成 2 条汇总消息" in fourth.stdout, fourth.stdout
    keys2, digests2 = asyncio.run(read_remind_db(remind_db))
    assert keys2 == sorted(keys + ["2:overdue:1:2026-03-10"]) and digests2 == {"dead": 6}


@pytest.mark.parametrize(
    ("at", "says"),
    [("2026-03-08T10:00+08:00", "今天不是工作日"), ("2026-03-09T23:00+08:00", "处于免打扰时段"),
     ("2026-03-09T23:30+00:00", "处于免打扰时段"), ("2026-10-03T10:00+08:00", "今天不是工作日")],
    ids=["Sunday", "late evening", "23:30 UTC is 07:30 in Shanghai", "National Day"],
)
def test_duban_remind_at_a_held_time_sends_nothing(remind_db: str, tmp_path: Path, at: str, says: str) -> None:
    out = run_cli(["remind", "--at", at], remind_db, tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"本次未发送：{says}" in out.stdout
    assert asyncio.run(read_remind_db(remind_db)) == ([], {})


@pytest.mark.parametrize("at", ["yesterday", "2026-13-01T09:00", "2026-03-09 25:00"])
def test_duban_remind_with_an_invalid_time_says_so_in_chinese(remind_db: str, tmp_path: Path, at: str) -> None:
    out = run_cli(["remind", "--at", at], remind_db, tmp_path)
    assert out.returncode != 0
    assert f"时间“{at}”格式不对" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert asyncio.run(read_remind_db(remind_db)) == ([], {})
