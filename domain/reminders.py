"""The 催办 ladder (第七条 3, 第八条 2), in working days, configured in one place.

Each rung has a nominal day computed from the item (e.g. the first working day after the deadline).
A sweep on or after that day fires the rung once: its key (item, rule, level, nominal day) is written
before anything is sent, so a re-run, a restart or a second replica never repeats it, and a sweep
that was held (quiet hours, a holiday, a stopped process) catches up instead of skipping. Only the
highest deadline rung that applies fires; lower ones it supersedes are not sent late.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from domain.calendar import WorkCalendar
from domain.items import ItemKind, Status


class Rule(str, enum.Enum):
    DUE_SOON = "due_soon"  # N working days before the deadline → handler
    DUE_TODAY = "due_today"  # on the deadline day → handler
    OVERDUE = "overdue"  # first working day overdue: 催办 → handler and principal
    ESCALATE = "escalate"  # N working days overdue → the leader in charge and the office
    SLOW = "slow"  # no published progress for N working days → handler
    PERIODIC = "periodic"  # periodic items: report this period's progress → handler


class Audience(str, enum.Enum):
    HANDLER = "handler"
    PRINCIPAL = "principal"
    LEADER = "leader"
    OFFICE = "office"


@dataclass(frozen=True)
class Ladder:
    """Every number of the ladder. `quiet_start`/`quiet_end` hold automatic reminders overnight."""

    due_soon_days: int = 3
    escalate_days: int = 3
    slow_days: int = 10
    periodic_day: int = 25  # the periodic report reminder goes on the first working day from this day of the month
    quiet_start: dt.time = dt.time(22, 0)
    quiet_end: dt.time = dt.time(8, 0)

    def quiet(self, now: dt.time) -> bool:
        if self.quiet_start > self.quiet_end:
            return now >= self.quiet_start or now < self.quiet_end
        return self.quiet_start <= now < self.quiet_end


AUDIENCE = {
    Rule.DUE_SOON: (Audience.HANDLER,),
    Rule.DUE_TODAY: (Audience.HANDLER,),
    Rule.OVERDUE: (Audience.HANDLER, Audience.PRINCIPAL),
    Rule.ESCALATE: (Audience.LEADER, Audience.OFFICE),
    Rule.SLOW: (Audience.HANDLER,),
    Rule.PERIODIC: (Audience.HANDLER,),
}

HEADINGS = {
    Rule.DUE_SOON: "即将到期，请合理安排办理",
    Rule.DUE_TODAY: "今日到期，请按时办结",
    Rule.OVERDUE: "已逾期，学校办公室催办，请抓紧办理",
    Rule.ESCALATE: "逾期已超过{n}个工作日，督办升级报告",
    Rule.SLOW: "进展缓慢，请及时报送阶段性进展",
    Rule.PERIODIC: "定期督办事项请报送本期办理进度",
}


@dataclass(frozen=True)
class ItemFacts:
    """What the ladder needs of an open item (one row of the sweep's single query)."""

    id: int
    code: str
    title: str
    kind: ItemKind
    status: Status
    deadline: dt.date
    created: dt.date
    signed: dt.date | None
    last_published: dt.date | None
    reported_this_period: bool = False


@dataclass(frozen=True)
class Rung:
    rule: Rule
    level: int
    day: dt.date  # the nominal day

    def key(self, item_id: int) -> str:
        return f"{item_id}:{self.rule.value}:{self.level}:{self.day.isoformat()}"


def _last_workday_on_or_before(cal: WorkCalendar, day: dt.date) -> dt.date:
    return day if cal.is_workday(day) else cal.add_workdays(day, -1)


def due_rungs(item: ItemFacts, today: dt.date, cal: WorkCalendar, ladder: Ladder = Ladder()) -> list[Rung]:
    """The rungs that are due for this item today (at most one deadline rung, plus slow and periodic)."""
    if not item.status.is_open:
        return []
    out: list[Rung] = []
    escalate = cal.add_workdays(item.deadline, ladder.escalate_days)
    overdue = cal.add_workdays(item.deadline, 1)
    due_today = _last_workday_on_or_before(cal, item.deadline)
    due_soon = cal.add_workdays(item.deadline, -ladder.due_soon_days)
    if today >= escalate:
        out.append(Rung(Rule.ESCALATE, ladder.escalate_days, escalate))
    elif today >= overdue:
        out.append(Rung(Rule.OVERDUE, 1, overdue))
    elif today >= due_today:
        out.append(Rung(Rule.DUE_TODAY, 0, due_today))
    elif today >= due_soon:
        out.append(Rung(Rule.DUE_SOON, ladder.due_soon_days, due_soon))
    if item.status is Status.IN_PROGRESS:
        since = item.last_published or item.signed or item.created
        periods = cal.workdays_between(since, today) // ladder.slow_days
        if periods >= 1:
            out.append(Rung(Rule.SLOW, periods, cal.add_workdays(since, periods * ladder.slow_days)))
        if item.kind is ItemKind.PERIODIC and not item.reported_this_period:
            first = cal.next_workday(today.replace(day=min(ladder.periodic_day, 28)))
            if today >= first:
                out.append(Rung(Rule.PERIODIC, today.year * 100 + today.month, first))
    return out
