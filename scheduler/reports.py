"""The weekly summary (第十一条 统计汇总) for the office and the leaders: a short markdown message, an
XLSX workbook and a PNG chart, once per ISO week on the first working day at the report time."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from typing import Any

from bot.charts import stats_chart
from bot.messages import OutMessage
from bot.reports import stats_workbook
from domain.roles import SYSTEM_OFFICE, Role
from domain.stats import UnitStats
from handlers import spotcheck
from handlers.service import Supervision

log = logging.getLogger("duban.reports")


def file_payload(kind: str, filename: str, data: bytes) -> dict[str, Any]:
    """Attachments go through WeCom's media API whenever the person has a WeCom id (DingTalk gets none)."""
    return {"type": "file", "kind": kind, "filename": filename, "data_b64": base64.b64encode(data).decode(),
            "via": "wecom"}


def summary_markdown(rows: list[UnitStats], week: str, named: bool, checks: str) -> str:
    total = sum(r.total for r in rows)
    overdue = sum(r.overdue_now for r in rows)
    late = sum(r.closed_late for r in rows)
    lines = [f"**督办周报 {week}**", f"事项 {total} 项，当前逾期 <font color=\"warning\">{overdue}</font> 项，逾期办结 {late} 项。"]
    for i, r in enumerate(rows[:10], start=1):
        label = r.unit if named else f"{i}. {r.unit}"
        lines.append(f"> {label}：办理中 {r.in_progress}，逾期 {r.overdue_now}，按期办结 {r.closed_on_time}，催办 {r.urged}，退回 {r.returned}")
    if len(rows) > 10:
        lines.append(f"> 另有 {len(rows) - 10} 个单位，详见附件。")
    if checks:
        lines.append(checks)
    return "\n".join(lines)


async def weekly_summary(svc: Supervision, now: dt.datetime, report_at: dt.time, *, force: bool = False) -> bool:
    """Queue this week's summary once; True if this call queued it."""
    local = now.astimezone(svc.tz)
    if not force and (not svc.calendar.is_workday(local.date()) or local.time() < report_at):
        return False
    iso = local.isocalendar()
    week = f"{iso.year}-W{iso.week:02d}"
    async with svc.uow.reader() as reader:
        if await reader.jobs.has_run(f"weekly:{week}"):
            # the report tick asks every 15 minutes all week: do not draw a chart (about half a second
            # of blocked event loop) only to find the week already claimed
            return False
    rows = await svc.statistics()
    draw, people = await spotcheck.current(svc)
    checks = spotcheck.summary_text(draw, people) if draw.checks else ""
    png, named = stats_chart(rows, f"督办统计 {week}")
    xlsx = stats_workbook(rows, local)
    text = summary_markdown(rows, week, named, checks)
    async with svc.uow("scheduler") as uow:
        if not await uow.jobs.claim_run(f"weekly:{week}", now):
            return False
        recipients = {p.id for p in await uow.people.with_role(Role.OFFICE)}
        recipients |= {p.id for p in await uow.people.with_role(Role.LEADER)}
        out = []
        for pid in sorted(recipients):
            out.append((f"weekly:{week}:md:{pid}", pid, OutMessage(text=text, title="督办周报", markdown=True, notice=True).to_dict()))
            out.append((f"weekly:{week}:xlsx:{pid}", pid, file_payload("file", f"duban-stats-{week}.xlsx", xlsx)))
            out.append((f"weekly:{week}:png:{pid}", pid, file_payload("image", f"duban-stats-{week}.png", png)))
        await uow.outbox.add(out, now)
        await uow.commit()
    svc.committed()
    log.info("weekly summary queued", extra={"week": week, "recipients": len(recipients)})
    return True


async def monthly_spot_check(svc: Supervision, now: dt.datetime, report_at: dt.time, units: int) -> bool:
    """The monthly random draw, on the first working day of the month at the report time, once."""
    local = now.astimezone(svc.tz)
    if not svc.calendar.is_workday(local.date()) or local.time() < report_at:
        return False
    first_workday = svc.calendar.next_workday(local.date().replace(day=1))
    if local.date() < first_workday:
        return False
    d = await spotcheck.draw(svc, SYSTEM_OFFICE, units, "scheduler")
    return d.new
