"""Overdue, due-soon and slow are read from the deadline, the calendar and the clock — never stored."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from domain.calendar import WorkCalendar
from domain.items import Item, Status

DUE_SOON_WORKDAYS = 3
SLOW_AFTER_WORKDAYS = 10

GREEN, YELLOW, RED = "🟢", "🟡", "🔴"


@dataclass(frozen=True)
class Timing:
    overdue: bool
    due_soon: bool
    slow: bool
    workdays_left: int  # negative: working days overdue

    @property
    def mark(self) -> str:
        if self.overdue:
            return RED
        if self.due_soon or self.slow:
            return YELLOW
        return GREEN

    def describe(self) -> str:
        if self.overdue:
            return f"已逾期 {-self.workdays_left} 个工作日" if self.workdays_left < 0 else "已逾期"
        if self.workdays_left == 0:
            return "今日到期"
        text = f"剩 {self.workdays_left} 个工作日"
        return text + "，进展缓慢" if self.slow else text


def assess(
    item: Item,
    now: dt.datetime,
    calendar: WorkCalendar,
    *,
    due_soon_within: int = DUE_SOON_WORKDAYS,
    slow_after: int = SLOW_AFTER_WORKDAYS,
) -> Timing:
    """`now` must be in the office's time zone: deadlines are dates in Asia/Shanghai."""
    today = now.date()
    left = calendar.workdays_between(today, item.deadline)
    if not item.status.is_open:
        return Timing(False, False, False, left)
    overdue = today > item.deadline
    due_soon = not overdue and left <= due_soon_within
    since = item.last_published_at or item.lead_branch.signed_at or item.created_at
    slow = item.status is Status.IN_PROGRESS and calendar.workdays_between(since.date(), today) >= slow_after
    return Timing(overdue, due_soon, slow, left)
