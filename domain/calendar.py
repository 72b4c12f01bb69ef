"""Working days: the official Chinese holiday calendar, an office-edited override table, and a fallback.

Deadlines and reminders count working days, so a 调休 Saturday is a working day and a Spring Festival
Wednesday is not. The `chinese-calendar` package covers the years its release knew about; for a later
year we fall back to Monday–Friday and say so once, so the office can enter that year's overrides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

import chinese_calendar

Date = dt.date


class WorkCalendar:
    def __init__(
        self,
        overrides: Mapping[Date, bool] | None = None,
        on_fallback: Callable[[int], None] | None = None,
    ) -> None:
        """`overrides` maps a date to True (working) or False (day off) and wins over everything else;
        `on_fallback(year)` is called once per year the package does not cover."""
        self._overrides = dict(overrides or {})
        self._on_fallback = on_fallback
        self._fallback_years: set[int] = set()

    @property
    def fallback_years(self) -> frozenset[int]:
        return frozenset(self._fallback_years)

    def covers(self, year: int) -> bool:
        """Whether the packaged official calendar knows this year's holidays and 调休 days."""
        try:
            chinese_calendar.is_workday(dt.date(year, 1, 1))
            return True
        except NotImplementedError:
            return False

    def set_override(self, day: Date, working: bool) -> None:
        self._overrides[day] = working

    def is_workday(self, day: Date) -> bool:
        if day in self._overrides:
            return self._overrides[day]
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            if day.year not in self._fallback_years:
                self._fallback_years.add(day.year)
                if self._on_fallback is not None:
                    self._on_fallback(day.year)
            return day.weekday() < 5

    def add_workdays(self, day: Date, n: int) -> Date:
        """The n-th working day after `day` (n > 0) or before it (n < 0); n == 0 returns `day`."""
        step = 1 if n >= 0 else -1
        remaining = abs(n)
        cur = day
        while remaining:
            cur += dt.timedelta(days=step)
            if self.is_workday(cur):
                remaining -= 1
        return cur

    def workdays_between(self, start: Date, end: Date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end == start:
            return 0
        if end < start:
            return -self.workdays_between(end, start)
        count = 0
        cur = start
        while cur < end:
            cur += dt.timedelta(days=1)
            if self.is_workday(cur):
                count += 1
        return count

    def next_workday(self, day: Date) -> Date:
        """`day` itself if it is a working day, else the first working day after it."""
        cur = day
        while not self.is_workday(cur):
            cur += dt.timedelta(days=1)
        return cur
