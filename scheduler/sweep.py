"""The reminder sweep: every open item against the ladder, one digest per person, exactly once.

Held in quiet hours and on non-working days (weekends, public holidays; 调休 Saturdays count as
working days), so automatic reminders wait for the next working morning. The keys of the rungs it
fires and the digests it queues commit in one transaction, so a crash before the commit sends
nothing and a crash after it sends everything once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
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
MOST_LINES = DIGEST_LIMIT // len("·（时限 01-01）\n".encode()) + 1  # more item lines than any digest can hold


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
    with _cyclic_gc_paused():
        return await _sweep(db, calendar, tz, now, ladder, queued_at=queued_at)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The sweep builds a few hundred thousand objects that all live until it ends. CPython (3.11) runs
    a full collection each time the tracked heap grows by a quarter: ~10 at 100,000 open items, each
    walking the whole heap, 2–3 s in all, more than the SQL. Reference counting frees everything the
    sweep builds, so the cycle collector waits until it is done (seconds) and then resumes as before."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


async def _sweep(
    db: Database,
    calendar: WorkCalendar,
    tz: ZoneInfo,
    now: dt.datetime,
    ladder: Ladder,
    *,
    queued_at: dt.datetime | None,
) -> SweepResult:
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
        cal = _Memo(calendar)  # a few hundred distinct days among 100,000 items: compute each once
        due: list[tuple[sweeps.OpenItem, Rung, str]] = []
        for it in items:
            facts = ItemFacts(
                it.id, it.code, it.title, it.kind, it.status, it.deadline, it.created_at.astimezone(tz).date(),
                _local(it.signed_at, tz), _local(it.last_published_at, tz), it.id in reported,
            )
            due.extend((it, r, r.key(it.id)) for r in due_rungs(facts, today, cal, ladder))  # type: ignore[arg-type]
        del items
        result.rungs = len(due)
        if not due:
            return result
        fresh = await sweeps.claim_keys(
            s,
            [
                {"key": key, "item_id": it.id, "rule": r.rule.value, "level": r.level, "day": r.day, "created_at": queued_at}
                for it, r, key in due
            ],
        )
        result.fresh = len(fresh)
        if not fresh:
            return result
        aud = await sweeps.audiences(s)
        digests: dict[int, list[tuple[Rule, sweeps.OpenItem, Rung]]] = defaultdict(list)
        first_key: dict[int, str] = {}  # the smallest rung key in each digest names it
        for it, r, key in due:
            if key not in fresh:
                continue
            for pid in _recipients(it, r.rule, aud):
                digests[pid].append((r.rule, it, r))
                if pid not in first_key or key < first_key[pid]:
                    first_key[pid] = key
        del due, fresh
        template = OutMessage(text="", title="督办提醒", notice=True).to_dict()  # dataclasses.asdict once, not per digest
        rows = [
            (
                f"digest:{today.isoformat()}:{pid}:{first_key[pid]}",
                pid,
                {**template, "text": render_digest(aud.names.get(pid, ""), entries, today), "fields": []},
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


class _Memo:
    """The calendar questions of one sweep, each answered once (the calendar does not change mid-sweep)."""

    def __init__(self, calendar: WorkCalendar) -> None:
        self._cal = calendar
        self._add: dict[tuple[dt.date, int], dt.date] = {}
        self._between: dict[tuple[dt.date, dt.date], int] = {}
        self._work: dict[dt.date, bool] = {}
        self._next: dict[dt.date, dt.date] = {}

    def add_workdays(self, day: dt.date, n: int) -> dt.date:
        try:
            return self._add[day, n]
        except KeyError:
            found = self._add[day, n] = self._cal.add_workdays(day, n)
            return found

    def workdays_between(self, start: dt.date, end: dt.date) -> int:
        try:
            return self._between[start, end]
        except KeyError:
            count = self._between[start, end] = self._cal.workdays_between(start, end)
            return count

    def is_workday(self, day: dt.date) -> bool:
        try:
            return self._work[day]
        except KeyError:
            working = self._work[day] = self._cal.is_workday(day)
            return working

    def next_workday(self, day: dt.date) -> dt.date:
        try:
            return self._next[day]
        except KeyError:
            found = self._next[day] = self._cal.next_workday(day)
            return found


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
        # only the first few lines can fit: take those without sorting the office's tens of thousands
        first = heapq.nsmallest(MOST_LINES, group, key=lambda g: (g[0].deadline, g[0].code))
        for i, (it, _) in enumerate(first):
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
