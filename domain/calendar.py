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
        self._checked_years: set[int] = set()
        self._day_cache: dict[Date, bool] = {}
        self._index: dict[Date, int] = {}  # running count of working days, for O(1) arithmetic
        self._index_start: Date | None = None
        self._workdays: list[Date] = []

    @property
    def fallback_years(self) -> frozenset[int]:
        """Years asked about that fell back to Monday–Friday."""
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
        self._day_cache.clear()
        self._index.clear()
        self._workdays.clear()
        self._index_start = None

    def is_workday(self, day: Date) -> bool:
        self._note_year(day.year)
        return self._silent(day)

    def _note_year(self, year: int) -> None:
        """Tell once about a year asked for that the package does not cover."""
        if year in self._checked_years:
            return
        self._checked_years.add(year)
        if not self.covers(year):
            self._fallback_years.add(year)
            if self._on_fallback is not None:
                self._on_fallback(year)

    def _silent(self, day: Date) -> bool:
        cached = self._day_cache.get(day)
        if cached is None:
            cached = self._day_cache[day] = self._lookup(day)
        return cached

    def _lookup(self, day: Date) -> bool:
        if day in self._overrides:
            return self._overrides[day]
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5

    def _indexed(self, *days: Date) -> bool:
        """Build (once) a running count of working days over a window around the dates asked for."""
        lo, hi = min(days), max(days)
        if self._index_start is not None and lo in self._index and hi in self._index:
            return True
        if hi - lo > dt.timedelta(days=3660):
            return False
        start = lo - dt.timedelta(days=800)
        end = hi + dt.timedelta(days=800)
        if self._index_start is not None:
            start = min(start, self._index_start)
            end = max(end, max(self._index))
        self._index.clear()
        self._workdays.clear()
        count, cur = 0, start
        while cur <= end:
            if self._silent(cur):
                count += 1
                self._workdays.append(cur)
            self._index[cur] = count
            cur += dt.timedelta(days=1)
        self._index_start = start
        return True

    def add_workdays(self, day: Date, n: int) -> Date:
        """The n-th working day after `day` (n > 0) or before it (n < 0); n == 0 returns `day`."""
        if n and self._indexed(day, day + dt.timedelta(days=3 * n)):
            before = self._index[day] - (1 if self._silent(day) else 0)  # working days strictly before `day`
            pos = self._index[day] + n - 1 if n > 0 else before + n
            if 0 <= pos < len(self._workdays) and self._workdays[pos] in self._index:
                found = self._workdays[pos]
                for year in range(min(day, found).year, max(day, found).year + 1):
                    self._note_year(year)
                return found
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
        if self._indexed(start, end):
            for year in range(start.year, end.year + 1):
                self._note_year(year)
            return self._index[end] - self._index[start]
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
