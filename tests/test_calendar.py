"""Working days as the office counts them: the official holiday calendar (chinese-calendar 1.11.0),
the office's own overrides, and Monday–Friday for a year the package does not know yet."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.calendar import WorkCalendar

D = dt.date


def days(start: D, end: D) -> list[D]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


# ---- the official calendar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [D(2026, 2, 14), D(2026, 2, 28), D(2026, 9, 20), D(2026, 10, 10)],
    ids=["Spring Festival Saturday", "Spring Festival Saturday after", "National Day Sunday", "National Day Saturday"],
)
def test_a_makeup_weekend_day_is_a_working_day(cal: WorkCalendar, day: D) -> None:
    assert day.weekday() >= 5
    assert cal.is_workday(day)


@pytest.mark.parametrize("day", days(D(2026, 10, 1), D(2026, 10, 7)), ids=str)
def test_national_day_week_is_off(cal: WorkCalendar, day: D) -> None:
    assert not cal.is_workday(day)


@pytest.mark.parametrize("day", days(D(2026, 2, 15), D(2026, 2, 23)), ids=str)
def test_spring_festival_is_off_even_on_weekdays(cal: WorkCalendar, day: D) -> None:
    assert not cal.is_workday(day)


@pytest.mark.parametrize("day", [D(2026, 2, 13), D(2026, 2, 24), D(2026, 9, 30), D(2026, 10, 8), D(2026, 10, 9)], ids=str)
def test_the_weekdays_around_the_holidays_are_working_days(cal: WorkCalendar, day: D) -> None:
    assert cal.is_workday(day)


def test_an_ordinary_week_is_monday_to_friday(cal: WorkCalendar) -> None:
    week = days(D(2026, 3, 2), D(2026, 3, 8))
    assert [cal.is_workday(d) for d in week] == [True, True, True, True, True, False, False]


def test_2026_is_covered_by_the_package(cal: WorkCalendar) -> None:
    assert cal.covers(2026)


# ---- overrides ------------------------------------------------------------------------------------------------


def test_an_override_can_make_a_public_holiday_a_working_day() -> None:
    cal = WorkCalendar(overrides={D(2026, 10, 1): True})
    assert cal.is_workday(D(2026, 10, 1))
    assert not cal.is_workday(D(2026, 10, 2))


def test_an_override_can_make_a_makeup_saturday_a_day_off() -> None:
    cal = WorkCalendar(overrides={D(2026, 10, 10): False})
    assert not cal.is_workday(D(2026, 10, 10))


def test_an_override_set_later_wins_both_ways(cal: WorkCalendar) -> None:
    monday, sunday = D(2026, 3, 9), D(2026, 3, 8)
    cal.set_override(monday, False)
    cal.set_override(sunday, True)
    assert not cal.is_workday(monday)
    assert cal.is_workday(sunday)
    cal.set_override(monday, True)
    assert cal.is_workday(monday)


def test_the_override_table_passed_in_is_not_changed_by_the_calendar() -> None:
    table = {D(2026, 10, 1): True}
    cal = WorkCalendar(overrides=table)
    cal.set_override(D(2026, 10, 2), True)
    assert table == {D(2026, 10, 1): True}


# ---- counting working days ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (D(2026, 3, 6), 1, D(2026, 3, 9)),  # Friday + 1 -> Monday
        (D(2026, 3, 6), 5, D(2026, 3, 13)),
        (D(2026, 3, 7), 1, D(2026, 3, 9)),  # from a Saturday
        (D(2026, 9, 30), 1, D(2026, 10, 8)),  # over National Day
        (D(2026, 9, 30), 3, D(2026, 10, 10)),  # the makeup Saturday counts
        (D(2026, 9, 30), 4, D(2026, 10, 12)),
        (D(2026, 2, 13), 1, D(2026, 2, 14)),  # Friday + 1 -> makeup Saturday
        (D(2026, 2, 13), 2, D(2026, 2, 24)),  # then the whole Spring Festival is skipped
        (D(2026, 3, 9), -1, D(2026, 3, 6)),  # backwards over a weekend
        (D(2026, 10, 8), -1, D(2026, 9, 30)),  # backwards over National Day
        (D(2026, 10, 12), -2, D(2026, 10, 9)),
    ],
)
def test_add_workdays_skips_weekends_and_holidays(cal: WorkCalendar, start: D, n: int, expected: D) -> None:
    assert cal.add_workdays(start, n) == expected


def test_adding_zero_workdays_keeps_the_day_even_on_a_holiday(cal: WorkCalendar) -> None:
    assert cal.add_workdays(D(2026, 10, 3), 0) == D(2026, 10, 3)


@pytest.mark.parametrize(
    ("start", "end", "n"),
    [
        (D(2026, 3, 6), D(2026, 3, 9), 1),  # Friday -> Monday
        (D(2026, 3, 2), D(2026, 3, 16), 10),
        (D(2026, 9, 30), D(2026, 10, 8), 1),
        (D(2026, 9, 30), D(2026, 10, 12), 4),
        (D(2026, 9, 29), D(2026, 10, 13), 6),
        (D(2026, 10, 1), D(2026, 10, 7), 0),
        (D(2026, 3, 9), D(2026, 3, 9), 0),
        (D(2026, 10, 12), D(2026, 9, 30), -4),
        (D(2026, 3, 9), D(2026, 3, 6), -1),
    ],
)
def test_workdays_between_counts_working_days_after_start_up_to_end(cal: WorkCalendar, start: D, end: D, n: int) -> None:
    assert cal.workdays_between(start, end) == n


def test_workdays_between_and_add_workdays_agree(cal: WorkCalendar) -> None:
    start = D(2026, 9, 25)
    for n in range(1, 15):
        assert cal.workdays_between(start, cal.add_workdays(start, n)) == n


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2026, 10, 1), D(2026, 10, 8)),
        (D(2026, 10, 10), D(2026, 10, 10)),
        (D(2026, 10, 11), D(2026, 10, 12)),
        (D(2026, 3, 7), D(2026, 3, 9)),
        (D(2026, 3, 9), D(2026, 3, 9)),
        (D(2026, 2, 15), D(2026, 2, 24)),
    ],
)
def test_next_workday_is_the_day_itself_or_the_first_working_day_after(cal: WorkCalendar, day: D, expected: D) -> None:
    assert cal.next_workday(day) == expected


def test_overrides_are_used_when_counting(cal: WorkCalendar) -> None:
    cal.set_override(D(2026, 10, 10), False)
    cal.set_override(D(2026, 10, 2), True)
    assert cal.add_workdays(D(2026, 9, 30), 1) == D(2026, 10, 2)
    assert cal.workdays_between(D(2026, 9, 30), D(2026, 10, 12)) == 4  # 10-02, 10-08, 10-09, 10-12
    assert cal.next_workday(D(2026, 10, 10)) == D(2026, 10, 12)


# ---- a year the package does not cover ------------------------------------------------------------------------------


def test_2027_is_not_covered_and_falls_back_to_monday_to_friday() -> None:
    calls: list[int] = []
    cal = WorkCalendar(on_fallback=calls.append)
    assert not cal.covers(2027)

    week = days(D(2027, 1, 4), D(2027, 1, 10))  # Monday to Sunday
    assert [cal.is_workday(d) for d in week] == [True, True, True, True, True, False, False]
    assert cal.is_workday(D(2027, 1, 1))  # a Friday: New Year's Day is not known without overrides
    assert cal.fallback_years == frozenset({2027})
    assert calls == [2027]


def test_the_office_is_told_once_per_uncovered_year_however_many_days_are_asked() -> None:
    calls: list[int] = []
    cal = WorkCalendar(on_fallback=calls.append)

    for d in days(D(2027, 1, 1), D(2027, 12, 31)):
        cal.is_workday(d)
    cal.add_workdays(D(2027, 3, 1), 40)
    cal.workdays_between(D(2027, 1, 1), D(2027, 12, 31))
    cal.next_workday(D(2027, 5, 1))
    assert calls == [2027]

    cal.is_workday(D(2028, 1, 3))
    cal.is_workday(D(2028, 6, 5))
    assert calls == [2027, 2028]
    assert cal.fallback_years == frozenset({2027, 2028})


def test_counting_across_new_year_into_an_uncovered_year_works_and_tells_the_office() -> None:
    calls: list[int] = []
    cal = WorkCalendar(on_fallback=calls.append)
    assert cal.add_workdays(D(2026, 12, 31), 1) == D(2027, 1, 1)
    assert cal.add_workdays(D(2026, 12, 31), 2) == D(2027, 1, 4)
    assert cal.workdays_between(D(2026, 12, 30), D(2027, 1, 4)) == 3  # 12-31, 01-01, 01-04
    assert calls == [2027]


def test_covered_years_never_report_a_fallback() -> None:
    calls: list[int] = []
    cal = WorkCalendar(on_fallback=calls.append)
    for d in days(D(2026, 1, 1), D(2026, 12, 31)):
        cal.is_workday(d)
    assert calls == [] and cal.fallback_years == frozenset()


def test_an_override_in_an_uncovered_year_is_honoured() -> None:
    cal = WorkCalendar(overrides={D(2027, 1, 1): False, D(2027, 1, 2): True})
    assert not cal.is_workday(D(2027, 1, 1))
    assert cal.is_workday(D(2027, 1, 2))


def test_the_fallback_works_without_anyone_to_tell() -> None:
    cal = WorkCalendar()
    assert cal.next_workday(D(2027, 1, 2)) == D(2027, 1, 4)
    assert cal.fallback_years == frozenset({2027})
