"""The reminder sweep: every open item against the ladder, one digest per person, exactly once.

Held in quiet hours and on non-working days (weekends, public holidays; 调休 Saturdays count as
working days), so automatic reminders wait for the next working morning. The keys of the rungs it
fires and the digests it queues commit in one transaction, so a crash before the commit sends
nothing and a crash after it sends everything once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bot.messages import OutMessage
from domain.calendar import WorkCalendar
from domain.reminders import AUDIENCE, HEADINGS, Audience, ItemFacts, Ladder, Rule, Rung, due_rungs
from domain.timing import GREEN, RED, YELLOW
from storage import sweeps
from storage.db import Database

log = logging.getLogger("duban.sweep")

MARKS = {
    Rule.ESCALATE: RED,
    Rule.OVERDUE: RED,
    Rule.DUE_TODAY: YELLOW,
    Rule.DUE_SOON: YELLOW,
    Rule.SLOW: YELLOW,
    Rule.PERIODIC: GREEN,
}
ORDER = [Rule.ESCALATE, Rule.OVERDUE, Rule.DUE_TODAY, Rule.DUE_SOON, Rule.SLOW, Rule.PERIODIC]
DIGEST_LIMIT = 1900  # bytes, under WeCom's 2048 for text


@dataclass
class SweepResult:
    held: str = ""  # why nothing was sent, if it was held
    items: int = 0
    rungs: int = 0
    fresh: int = 0
    messages: int = 0
    recipients: set[int] = field(default_factory=set)
    seconds: float = 0.0


def _local(value: dt.datetime | None, tz: ZoneInfo) -> dt.date | None:
    return value.astimezone(tz).date() if value is not None else None


async def sweep(
    db: Database,
    calendar: WorkCalendar,
    tz: ZoneInfo,
    now: dt.datetime,
    ladder: Ladder = Ladder(),
    *,
    queued_at: dt.datetime | None = None,
) -> SweepResult:
    """`now` is the time the sweep judges by (`duban remind --at`); `queued_at` is the real time the
    digests enter the outbox, so they go out at once whatever `now` says."""
    started = time.perf_counter()
    queued_at = queued_at or now
    local = now.astimezone(tz)
    result = SweepResult()
    if not calendar.is_workday(local.date()):
        result.held = "non-working day"
        return result
    if ladder.quiet(local.time()):
        result.held = "quiet hours"
        return result
    today = local.date()
    async with db.sessions() as s, s.begin():
        if not await sweeps.lock_sweep(s):
            result.held = "another replica is sweeping"
            return result
        items = await sweeps.open_items(s)
        period_start = dt.datetime(today.year, today.month, 1, tzinfo=tz)
        reported = await sweeps.reported_since(s, period_start)
        result.items = len(items)
        due: list[tuple[sweeps.OpenItem, Rung]] = []
        for it in items:
            facts = ItemFacts(
                it.id, it.code, it.title, it.kind, it.status, it.deadline, it.created_at.astimezone(tz).date(),
                _local(it.signed_at, tz), _local(it.last_published_at, tz), it.id in reported,
            )
            due.extend((it, r) for r in due_rungs(facts, today, calendar, ladder))
        result.rungs = len(due)
        if not due:
            return result
        fresh = await sweeps.claim_keys(
            s,
            [
                {"key": r.key(it.id), "item_id": it.id, "rule": r.rule.value, "level": r.level, "day": r.day, "created_at": queued_at}
                for it, r in due
            ],
        )
        result.fresh = len(fresh)
        if not fresh:
            return result
        aud = await sweeps.audiences(s)
        digests: dict[int, list[tuple[Rule, sweeps.OpenItem, Rung]]] = defaultdict(list)
        for it, r in due:
            if r.key(it.id) not in fresh:
                continue
            for pid in _recipients(it, r.rule, aud):
                digests[pid].append((r.rule, it, r))
        rows = [
            (
                f"digest:{today.isoformat()}:{pid}:{min(rg.key(it.id) for _, it, rg in entries)}",
                pid,
                OutMessage(text=render_digest(aud.names.get(pid, ""), entries, today), title="督办提醒", notice=True).to_dict(),
            )
            for pid, entries in digests.items()
        ]
        if rows:
            await sweeps.queue_outbox(s, rows, queued_at)
        result.messages = len(rows)
        result.recipients = set(digests)
    result.seconds = time.perf_counter() - started
    log.info("sweep done", extra={"items": result.items, "fresh": result.fresh, "messages": result.messages,
                                  "seconds": round(result.seconds, 3)})
    return result


def _recipients(it: sweeps.OpenItem, rule: Rule, aud: sweeps.Audiences) -> set[int]:
    out: set[int] = set()
    for who in AUDIENCE[rule]:
        if who is Audience.HANDLER:
            # no 专人 yet: the reminder goes to the unit's principal, who should designate one
            out.update([it.handler_id] if it.handler_id else aud.principals.get(it.lead_unit_id, []))
        elif who is Audience.PRINCIPAL:
            out.update(aud.principals.get(it.lead_unit_id, []))
        elif who is Audience.LEADER:
            out.update([it.leader_id] if it.leader_id else aud.leaders.get(it.lead_unit_id, []))
        else:
            out.update(aud.office)
    return out


def render_digest(name: str, entries: list[tuple[Rule, sweeps.OpenItem, Rung]], today: dt.date) -> str:
    """One message for all of a person's due items; the date and the rungs make each day's wording differ,
    so a platform that drops identical repeats still delivers it."""
    lines = [f"【督办提醒 {today.month}月{today.day}日】{name}您好，以下 {len(entries)} 项督办事项需要您关注："]
    by_rule: dict[Rule, list[tuple[sweeps.OpenItem, Rung]]] = defaultdict(list)
    for rule, it, rung in entries:
        by_rule[rule].append((it, rung))
    footer = "回复“待办”查看全部，“查看 编号”看详情。"
    size = len("\n".join(lines).encode()) + len(footer.encode()) + 60
    shown = 0
    for rule in ORDER:
        group = by_rule.get(rule)
        if not group:
            continue
        heading = f"{MARKS[rule]} {HEADINGS[rule].format(n=group[0][1].level)}："
        for i, (it, _) in enumerate(sorted(group, key=lambda g: (g[0].deadline, g[0].code))):
            title = it.title if len(it.title) <= 20 else it.title[:19] + "…"
            line = f"· {it.code} {title}（时限 {it.deadline:%m-%d}）"
            add = len(line.encode()) + 1 + (len(heading.encode()) + 1 if i == 0 else 0)
            if size + add > DIGEST_LIMIT:
                break
            if i == 0:
                lines.append(heading)
            lines.append(line)
            size += add
            shown += 1
    if shown < len(entries):
        lines.append(f"……另有 {len(entries) - shown} 项未列出。")
    lines.append(footer)
    return "\n".join(lines)
