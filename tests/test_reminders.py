"""The 催办 ladder (第七条 3, 第八条 2) as pure rules: which rung is due on which day, for whom, and with
which once-only key — on ordinary weeks, across weekends, across National Day 2026 and Spring Festival,
and with the 调休 Saturdays counted as working days (chinese-calendar 1.11.0)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from domain.calendar import WorkCalendar
from domain.items import OPEN_STATUSES, ItemKind, Status
from domain.reminders import (
    AUDIENCE,
    HEADINGS,
    Audience,
    ItemFacts,
    Ladder,
    Rule,
    Rung,
    due_rungs,
)

D = dt.date
T = dt.time
CAL = WorkCalendar()
DEADLINE_RULES = {Rule.DUE_SOON, Rule.DUE_TODAY, Rule.OVERDUE, Rule.ESCALATE}


def facts(
    deadline: D,
    *,
    status: Status = Status.DESIGNATED,
    kind: ItemKind = ItemKind.SPECIAL,
    created: D = D(2026, 1, 5),
    signed: D | None = None,
    last_published: D | None = None,
    reported: bool = False,
    item_id: int = 7,
) -> ItemFacts:
    """An open item. DESIGNATED (not yet signed) by default, so only the deadline rungs apply."""
    return ItemFacts(item_id, f"2026-{item_id:04d}", "推进一流本科课程建设", kind, status, deadline, created, signed,
                     last_published, reported)


def days(start: D, end: D) -> list[D]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def deadline_rung(item: ItemFacts, today: D, ladder: Ladder | None = None) -> Rung | None:
    found = [r for r in due_rungs(item, today, CAL, ladder or Ladder()) if r.rule in DEADLINE_RULES]
    assert len(found) <= 1, f"more than one deadline rung on {today}: {found}"
    return found[0] if found else None


def rung_of(item: ItemFacts, today: D, rule: Rule) -> Rung | None:
    found = [r for r in due_rungs(item, today, CAL) if r.rule is rule]
    assert len(found) <= 1
    return found[0] if found else None


def schedule(item: ItemFacts, start: D, end: D) -> dict[D, tuple[Rule, int, D] | None]:
    out: dict[D, tuple[Rule, int, D] | None] = {}
    for day in days(start, end):
        r = deadline_rung(item, day)
        out[day] = (r.rule, r.level, r.day) if r else None
    return out


def expected(spans: list[tuple[D, D, tuple[Rule, int, D] | None]]) -> dict[D, tuple[Rule, int, D] | None]:
    out: dict[D, tuple[Rule, int, D] | None] = {}
    for start, end, value in spans:
        for day in days(start, end):
            out[day] = value
    return out


# ==== the calendar facts the scenarios below rely on =================================================================


def test_the_2026_calendar_facts_this_file_relies_on() -> None:
    assert [CAL.is_workday(d) for d in days(D(2026, 3, 9), D(2026, 3, 15))] == [True] * 5 + [False] * 2
    assert not any(CAL.is_workday(d) for d in days(D(2026, 10, 1), D(2026, 10, 7)))
    assert CAL.is_workday(D(2026, 10, 10)) and D(2026, 10, 10).weekday() == 5  # 调休 Saturday
    assert CAL.is_workday(D(2026, 2, 14)) and CAL.is_workday(D(2026, 2, 28))
    assert not any(CAL.is_workday(d) for d in days(D(2026, 2, 15), D(2026, 2, 23)))
    assert not CAL.is_workday(D(2026, 9, 25))  # 中秋节, a Friday


# ==== deadline rungs: nominal days ==================================================================================


def test_an_ordinary_week_due_soon_due_today_overdue_escalate() -> None:
    """Deadline Friday 2026-03-13: due soon 3 working days before (Tue 3-10), due today on the day,
    overdue on the first working day after (Mon 3-16, not Saturday), escalated 3 working days overdue (Wed 3-18)."""
    item = facts(D(2026, 3, 13))
    assert schedule(item, D(2026, 3, 1), D(2026, 3, 31)) == expected([
        (D(2026, 3, 1), D(2026, 3, 9), None),
        (D(2026, 3, 10), D(2026, 3, 12), (Rule.DUE_SOON, 3, D(2026, 3, 10))),
        (D(2026, 3, 13), D(2026, 3, 15), (Rule.DUE_TODAY, 0, D(2026, 3, 13))),
        (D(2026, 3, 16), D(2026, 3, 17), (Rule.OVERDUE, 1, D(2026, 3, 16))),
        (D(2026, 3, 18), D(2026, 3, 31), (Rule.ESCALATE, 3, D(2026, 3, 18))),
    ])


def test_due_soon_counts_working_days_back_across_a_weekend() -> None:
    """Deadline Monday 3-16: the 3 working days before it are Fri 3-13, Thu 3-12, Wed 3-11."""
    item = facts(D(2026, 3, 16))
    assert deadline_rung(item, D(2026, 3, 10)) is None
    assert deadline_rung(item, D(2026, 3, 11)) == Rung(Rule.DUE_SOON, 3, D(2026, 3, 11))
    assert deadline_rung(item, D(2026, 3, 16)) == Rung(Rule.DUE_TODAY, 0, D(2026, 3, 16))
    assert deadline_rung(item, D(2026, 3, 17)) == Rung(Rule.OVERDUE, 1, D(2026, 3, 17))
    assert deadline_rung(item, D(2026, 3, 20)) == Rung(Rule.ESCALATE, 3, D(2026, 3, 19))


def test_a_deadline_on_a_saturday_is_due_on_the_friday_before_and_overdue_on_monday() -> None:
    item = facts(D(2026, 3, 14))
    assert schedule(item, D(2026, 3, 10), D(2026, 3, 19)) == expected([
        (D(2026, 3, 10), D(2026, 3, 10), None),
        (D(2026, 3, 11), D(2026, 3, 12), (Rule.DUE_SOON, 3, D(2026, 3, 11))),
        (D(2026, 3, 13), D(2026, 3, 15), (Rule.DUE_TODAY, 0, D(2026, 3, 13))),
        (D(2026, 3, 16), D(2026, 3, 17), (Rule.OVERDUE, 1, D(2026, 3, 16))),
        (D(2026, 3, 18), D(2026, 3, 19), (Rule.ESCALATE, 3, D(2026, 3, 18))),
    ])


def test_across_national_day_2026() -> None:
    """Deadline Wed 2026-09-30, the last working day before the holiday. Due soon skips the Mid-Autumn
    Friday and the weekend (Thu 9-24); overdue waits for the first working day after the week off (Thu 10-08);
    escalation lands on the 调休 Saturday 10-10, the third working day overdue."""
    item = facts(D(2026, 9, 30))
    assert schedule(item, D(2026, 9, 20), D(2026, 10, 14)) == expected([
        (D(2026, 9, 20), D(2026, 9, 23), None),
        (D(2026, 9, 24), D(2026, 9, 29), (Rule.DUE_SOON, 3, D(2026, 9, 24))),
        (D(2026, 9, 30), D(2026, 10, 7), (Rule.DUE_TODAY, 0, D(2026, 9, 30))),
        (D(2026, 10, 8), D(2026, 10, 9), (Rule.OVERDUE, 1, D(2026, 10, 8))),
        (D(2026, 10, 10), D(2026, 10, 14), (Rule.ESCALATE, 3, D(2026, 10, 10))),
    ])


@pytest.mark.parametrize("deadline", [D(2026, 10, 1), D(2026, 10, 3), D(2026, 10, 7)], ids=str)
def test_a_deadline_inside_the_holiday_is_due_on_the_last_working_day_before_it(deadline: D) -> None:
    item = facts(deadline)
    assert deadline_rung(item, D(2026, 9, 29)) == Rung(Rule.DUE_SOON, 3, CAL.add_workdays(deadline, -3))
    assert deadline_rung(item, D(2026, 9, 30)) == Rung(Rule.DUE_TODAY, 0, D(2026, 9, 30))
    assert deadline_rung(item, deadline) == Rung(Rule.DUE_TODAY, 0, D(2026, 9, 30))  # not overdue on the deadline
    assert deadline_rung(item, D(2026, 10, 8)) == Rung(Rule.OVERDUE, 1, D(2026, 10, 8))
    assert deadline_rung(item, D(2026, 10, 10)) == Rung(Rule.ESCALATE, 3, D(2026, 10, 10))


def test_the_makeup_saturday_counts_as_a_working_day() -> None:
    """Deadline Fri 10-09: overdue on the 调休 Saturday 10-10 (not Monday), escalated Tue 10-13."""
    item = facts(D(2026, 10, 9))
    assert deadline_rung(item, D(2026, 10, 9)) == Rung(Rule.DUE_TODAY, 0, D(2026, 10, 9))
    assert deadline_rung(item, D(2026, 10, 10)) == Rung(Rule.OVERDUE, 1, D(2026, 10, 10))
    assert deadline_rung(item, D(2026, 10, 12)) == Rung(Rule.OVERDUE, 1, D(2026, 10, 10))
    assert deadline_rung(item, D(2026, 10, 13)) == Rung(Rule.ESCALATE, 3, D(2026, 10, 13))
    # a deadline on the 调休 Saturday itself is due that Saturday, not the Friday before
    sat = facts(D(2026, 10, 10))
    assert deadline_rung(sat, D(2026, 10, 9)) == Rung(Rule.DUE_SOON, 3, D(2026, 9, 30))  # 10-09, 10-08, 9-30
    assert deadline_rung(sat, D(2026, 10, 10)) == Rung(Rule.DUE_TODAY, 0, D(2026, 10, 10))
    assert deadline_rung(sat, D(2026, 10, 12)) == Rung(Rule.OVERDUE, 1, D(2026, 10, 12))


def test_across_spring_festival_2026() -> None:
    """Deadline Fri 2-13: overdue on the working Saturday 2-14, then the festival (2-15..23) pauses the
    count, so the escalation comes on 2-25. A deadline inside the festival is due on Saturday 2-14."""
    item = facts(D(2026, 2, 13))
    assert deadline_rung(item, D(2026, 2, 14)) == Rung(Rule.OVERDUE, 1, D(2026, 2, 14))
    assert deadline_rung(item, D(2026, 2, 24)) == Rung(Rule.OVERDUE, 1, D(2026, 2, 14))
    assert deadline_rung(item, D(2026, 2, 25)) == Rung(Rule.ESCALATE, 3, D(2026, 2, 25))
    inside = facts(D(2026, 2, 20))
    assert deadline_rung(inside, D(2026, 2, 14)) == Rung(Rule.DUE_TODAY, 0, D(2026, 2, 14))
    assert deadline_rung(inside, D(2026, 2, 24)) == Rung(Rule.OVERDUE, 1, D(2026, 2, 24))
    assert deadline_rung(inside, D(2026, 2, 26)) == Rung(Rule.ESCALATE, 3, D(2026, 2, 26))


def test_the_numbers_come_from_the_ladder() -> None:
    ladder = Ladder(due_soon_days=5, escalate_days=2)
    item = facts(D(2026, 3, 13))
    assert deadline_rung(item, D(2026, 3, 5), ladder) is None
    assert deadline_rung(item, D(2026, 3, 6), ladder) == Rung(Rule.DUE_SOON, 5, D(2026, 3, 6))
    assert deadline_rung(item, D(2026, 3, 16), ladder) == Rung(Rule.OVERDUE, 1, D(2026, 3, 16))
    assert deadline_rung(item, D(2026, 3, 17), ladder) == Rung(Rule.ESCALATE, 2, D(2026, 3, 17))
    assert HEADINGS[Rule.ESCALATE].format(n=2) == "逾期已超过2个工作日，督办升级报告"


# ==== only the highest deadline rung ==============================================================================


def test_only_the_highest_deadline_rung_fires_on_any_day_of_the_year() -> None:
    for deadline in (D(2026, 3, 13), D(2026, 9, 30), D(2026, 10, 3), D(2026, 2, 20)):
        item = facts(deadline)
        for day in days(D(2026, 1, 1), D(2026, 12, 31)):
            deadline_rung(item, day)  # asserts at most one


def test_a_sweep_held_for_a_week_catches_up_with_the_highest_rung_only() -> None:
    """Nothing ran from the due-soon day to well past the escalation: only the escalation is due, the
    superseded lower rungs are not sent late."""
    item = facts(D(2026, 3, 13))
    assert [r.rule for r in due_rungs(item, D(2026, 3, 25), CAL)] == [Rule.ESCALATE]


@pytest.mark.parametrize("status", sorted(OPEN_STATUSES, key=lambda s: s.value), ids=lambda s: s.value)
def test_every_open_status_gets_deadline_rungs(status: Status) -> None:
    item = facts(D(2026, 3, 13), status=status, signed=D(2026, 3, 2), created=D(2026, 3, 2))
    assert deadline_rung(item, D(2026, 3, 16)) == Rung(Rule.OVERDUE, 1, D(2026, 3, 16))


@pytest.mark.parametrize("status", [Status.DRAFT, Status.CLOSED, Status.ARCHIVED, Status.CANCELLED], ids=lambda s: s.value)
def test_closed_cancelled_archived_and_draft_items_fire_nothing(status: Status) -> None:
    for kind in ItemKind:
        item = facts(D(2026, 3, 13), status=status, kind=kind, created=D(2026, 1, 5), signed=D(2026, 1, 6))
        for day in days(D(2026, 3, 1), D(2026, 6, 30)):
            assert due_rungs(item, day, CAL) == [], (status, kind, day)


# ==== slow (no published progress for N working days) ===========================================================


def test_slow_after_ten_working_days_without_published_progress_and_the_level_grows() -> None:
    item = facts(D(2026, 12, 31), status=Status.IN_PROGRESS, created=D(2026, 3, 2), signed=D(2026, 3, 2))
    assert rung_of(item, D(2026, 3, 13), Rule.SLOW) is None  # 9 working days
    assert rung_of(item, D(2026, 3, 16), Rule.SLOW) == Rung(Rule.SLOW, 1, D(2026, 3, 16))
    assert rung_of(item, D(2026, 3, 27), Rule.SLOW) == Rung(Rule.SLOW, 1, D(2026, 3, 16))
    assert rung_of(item, D(2026, 3, 30), Rule.SLOW) == Rung(Rule.SLOW, 2, D(2026, 3, 30))
    # 清明 (4-04..4-06) does not count: the third period ends Tue 4-14, not Mon 4-13
    assert rung_of(item, D(2026, 4, 13), Rule.SLOW) == Rung(Rule.SLOW, 2, D(2026, 3, 30))
    assert rung_of(item, D(2026, 4, 14), Rule.SLOW) == Rung(Rule.SLOW, 3, D(2026, 4, 14))
    assert deadline_rung(item, D(2026, 4, 14)) is None  # the deadline is far away


def test_published_progress_restarts_the_slow_count() -> None:
    item = facts(D(2026, 12, 31), status=Status.IN_PROGRESS, created=D(2026, 3, 2), signed=D(2026, 3, 2),
                 last_published=D(2026, 3, 10))
    assert rung_of(item, D(2026, 3, 16), Rule.SLOW) is None
    assert rung_of(item, D(2026, 3, 23), Rule.SLOW) is None
    assert rung_of(item, D(2026, 3, 24), Rule.SLOW) == Rung(Rule.SLOW, 1, D(2026, 3, 24))


def test_slow_counts_from_creation_when_never_signed_and_counts_only_working_days() -> None:
    """Signed Tue 2-10: the 10 working days are 2-11..2-14 (a working Saturday), 2-24..2-28 (2-28 a working
    Saturday) and Mon 3-02; the Spring Festival week does not count."""
    item = facts(D(2026, 12, 31), status=Status.IN_PROGRESS, created=D(2026, 2, 2), signed=D(2026, 2, 10))
    assert rung_of(item, D(2026, 2, 28), Rule.SLOW) is None
    assert rung_of(item, D(2026, 3, 2), Rule.SLOW) == Rung(Rule.SLOW, 1, D(2026, 3, 2))
    unsigned = facts(D(2026, 12, 31), status=Status.IN_PROGRESS, created=D(2026, 3, 2))
    assert rung_of(unsigned, D(2026, 3, 16), Rule.SLOW) == Rung(Rule.SLOW, 1, D(2026, 3, 16))


@pytest.mark.parametrize("status", [Status.ASSIGNED, Status.DESIGNATED, Status.UNIT_REVIEW, Status.OFFICE_REVIEW,
                                    Status.LEADER_REVIEW], ids=lambda s: s.value)
def test_slow_applies_only_while_the_handler_is_working_on_it(status: Status) -> None:
    item = facts(D(2026, 12, 31), status=status, created=D(2026, 1, 5), signed=D(2026, 1, 6))
    assert rung_of(item, D(2026, 6, 1), Rule.SLOW) is None


def test_slow_and_a_deadline_rung_can_be_due_together() -> None:
    item = facts(D(2026, 3, 13), status=Status.IN_PROGRESS, created=D(2026, 2, 24), signed=D(2026, 2, 24))
    rules = sorted(r.rule.value for r in due_rungs(item, D(2026, 3, 10), CAL))
    assert rules == ["due_soon", "slow"]


# ==== periodic items: report this period's progress ===============================================================


def periodic(**kw: object) -> ItemFacts:
    base = {"status": Status.IN_PROGRESS, "kind": ItemKind.PERIODIC, "created": D(2026, 3, 2), "signed": D(2026, 3, 2),
            "last_published": None}
    base.update(kw)
    # far-away deadline, fresh progress, so only the periodic rung matters
    return facts(D(2026, 12, 31), **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("month", "first"),
    [(3, D(2026, 3, 25)), (4, D(2026, 4, 27)), (9, D(2026, 9, 28)), (10, D(2026, 10, 26))],
    ids=["Wednesday 25th", "25th a Saturday", "25th the Mid-Autumn Friday", "25th a Sunday"],
)
def test_periodic_on_the_first_working_day_from_the_25th(month: int, first: D) -> None:
    day_before = first - dt.timedelta(days=1)
    month_end = (D(2026, month + 1, 1) - dt.timedelta(days=1))
    item = periodic(created=D(2026, month, 1), signed=D(2026, month, 1), last_published=day_before)
    assert rung_of(item, day_before, Rule.PERIODIC) is None
    rung = Rung(Rule.PERIODIC, 2026 * 100 + month, first)
    assert rung_of(item, first, Rule.PERIODIC) == rung
    assert rung_of(item, month_end, Rule.PERIODIC) == rung
    assert rung_of(item, D(2026, month + 1, 2), Rule.PERIODIC) is None  # a new month starts afresh


def test_periodic_is_skipped_when_this_month_was_reported() -> None:
    assert rung_of(periodic(reported=True), D(2026, 3, 25), Rule.PERIODIC) is None
    assert rung_of(periodic(reported=False), D(2026, 3, 25), Rule.PERIODIC) is not None


def test_periodic_is_only_for_periodic_items_in_progress() -> None:
    assert rung_of(periodic(kind=ItemKind.SPECIAL), D(2026, 3, 25), Rule.PERIODIC) is None
    assert rung_of(periodic(kind=ItemKind.INCOMING), D(2026, 3, 25), Rule.PERIODIC) is None
    assert rung_of(periodic(status=Status.DESIGNATED), D(2026, 3, 25), Rule.PERIODIC) is None
    assert rung_of(periodic(status=Status.DRAFT), D(2026, 3, 25), Rule.PERIODIC) is None


def test_each_month_has_its_own_periodic_key() -> None:
    item = periodic()
    march = rung_of(item, D(2026, 3, 26), Rule.PERIODIC)
    april = rung_of(item, D(2026, 4, 28), Rule.PERIODIC)
    assert march is not None and april is not None
    assert march.key(item.id) != april.key(item.id)
    assert march.key(item.id) == "7:periodic:202603:2026-03-25"


# ==== keys ========================================================================================================


def test_keys_are_stable_for_the_same_rung_on_any_later_day() -> None:
    item = facts(D(2026, 9, 30))
    seen: dict[Rule, set[str]] = {}
    for day in days(D(2026, 9, 1), D(2026, 11, 30)):
        r = deadline_rung(item, day)
        if r is not None:
            seen.setdefault(r.rule, set()).add(r.key(item.id))
    assert seen == {
        Rule.DUE_SOON: {"7:due_soon:3:2026-09-24"},
        Rule.DUE_TODAY: {"7:due_today:0:2026-09-30"},
        Rule.OVERDUE: {"7:overdue:1:2026-10-08"},
        Rule.ESCALATE: {"7:escalate:3:2026-10-10"},
    }


def test_slow_keys_are_stable_within_a_level_and_differ_between_levels() -> None:
    item = facts(D(2026, 12, 31), status=Status.IN_PROGRESS, created=D(2026, 3, 2), signed=D(2026, 3, 2))
    keys = {}
    for day in days(D(2026, 3, 16), D(2026, 3, 29)):
        r = rung_of(item, day, Rule.SLOW)
        assert r is not None
        keys[day] = r.key(item.id)
    assert set(keys.values()) == {"7:slow:1:2026-03-16"}
    level2 = rung_of(item, D(2026, 3, 30), Rule.SLOW)
    assert level2 is not None and level2.key(item.id) == "7:slow:2:2026-03-30"


def test_keys_name_the_item() -> None:
    a, b = facts(D(2026, 3, 13), item_id=7), facts(D(2026, 3, 13), item_id=8)
    ra, rb = deadline_rung(a, D(2026, 3, 16)), deadline_rung(b, D(2026, 3, 16))
    assert ra == rb and ra is not None and rb is not None
    assert ra.key(a.id) != rb.key(b.id)


def test_a_moved_deadline_gives_new_keys() -> None:
    """An approved extension moves the deadline: the rungs of the new deadline are new reminders."""
    before = facts(D(2026, 3, 13))
    after = dataclasses.replace(before, deadline=D(2026, 3, 20))
    r1, r2 = deadline_rung(before, D(2026, 3, 18)), deadline_rung(after, D(2026, 3, 18))
    assert r1 is not None and r2 is not None
    assert (r1.rule, r2.rule) == (Rule.ESCALATE, Rule.DUE_SOON)
    assert r1.key(7) != r2.key(7)


# ==== audiences and headings ======================================================================================


def test_who_each_rung_reaches() -> None:
    assert AUDIENCE == {
        Rule.DUE_SOON: (Audience.HANDLER,),
        Rule.DUE_TODAY: (Audience.HANDLER,),
        Rule.OVERDUE: (Audience.HANDLER, Audience.PRINCIPAL),
        Rule.ESCALATE: (Audience.LEADER, Audience.OFFICE),
        Rule.SLOW: (Audience.HANDLER,),
        Rule.PERIODIC: (Audience.HANDLER,),
    }
    assert set(HEADINGS) == set(Rule)


# ==== quiet hours ===============================================================================================


@pytest.mark.parametrize(
    ("at", "quiet"),
    [(T(22, 0), True), (T(23, 0), True), (T(23, 59, 59), True), (T(0, 0), True), (T(3, 0), True), (T(7, 30), True),
     (T(7, 59, 59), True), (T(8, 0), False), (T(8, 5), False), (T(12, 0), False), (T(21, 59, 59), False)],
    ids=str,
)
def test_default_quiet_hours_are_overnight(at: T, quiet: bool) -> None:
    assert Ladder().quiet(at) is quiet


@pytest.mark.parametrize(
    ("at", "quiet"),
    [(T(11, 59), False), (T(12, 0), True), (T(13, 0), True), (T(13, 59, 59), True), (T(14, 0), False),
     (T(23, 0), False), (T(7, 0), False)],
    ids=str,
)
def test_a_daytime_quiet_window(at: T, quiet: bool) -> None:
    assert Ladder(quiet_start=T(12, 0), quiet_end=T(14, 0)).quiet(at) is quiet
