"""The supervision rules themselves (domain/): no database, no network, a fixed clock in Asia/Shanghai.

People and items are built directly; each test reads as what a person in the office, a unit or the
leadership would notice in chat. Tests named `test_clause_*` point at the clause of the 2018 rules
(seed/000_e07da7fc1f7d204d.txt) they check.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from domain import permissions as perm
from domain.calendar import WorkCalendar
from domain.codes import format_code, parse_code
from domain.errors import (
    CONFIDENTIAL_MESSAGE,
    ConfidentialRefused,
    DomainError,
    InvalidTransition,
    PermissionDenied,
    ValidationError,
)
from domain.items import (
    BranchStatus,
    ExtensionStatus,
    Item,
    ItemKind,
    ProgressStatus,
    Status,
)
from domain.ledger import LedgerEntry
from domain.notifications import CardKind, To, notices_for
from domain.roles import SYSTEM_OFFICE, Person, Role, parse_roles
from domain.stats import compute
from domain.timing import GREEN, RED, YELLOW, assess

TZ = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc


def at(y: int, m: int, d: int, h: int = 9, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=TZ)


NOW = at(2026, 3, 2)  # a Monday
LATER = NOW + dt.timedelta(hours=2)
DEADLINE = dt.date(2026, 3, 31)

# ---- a small organisation ---------------------------------------------------------------------------------

OFFICE_UNIT, LEADERS_UNIT, JWC, KYY, XSC = 1, 2, 10, 20, 30  # 学校办公室, 校领导, 教务处, 科研院, 学生处


def person(pid: int, name: str, unit: int, *roles: Role, in_charge: tuple[int, ...] = ()) -> Person:
    return Person(id=pid, name=name, unit_id=unit, roles=frozenset(roles), units_in_charge=frozenset(in_charge))


OFFICE = person(1, "周督办", OFFICE_UNIT, Role.OFFICE)
LI = person(2, "李校长", LEADERS_UNIT, Role.LEADER, in_charge=(JWC, KYY))  # in charge of 教务处 and 科研院
WANG = person(3, "王副校长", LEADERS_UNIT, Role.LEADER, in_charge=(XSC,))  # in charge of 学生处 only
CHEN = person(4, "陈处长", JWC, Role.PRINCIPAL)
ZHANG = person(5, "张老师", JWC, Role.HANDLER)
LIU = person(6, "刘老师", JWC, Role.HANDLER)
ZHAO = person(7, "赵院长", KYY, Role.PRINCIPAL)
SUN = person(8, "孙老师", KYY, Role.HANDLER)
QIAN = person(9, "钱处长", XSC, Role.PRINCIPAL)
WU = person(10, "吴老师", XSC, Role.HANDLER)
LEADERS = (LI, WANG)


# ---- building items ----------------------------------------------------------------------------------------


def new_item(
    kind: ItemKind = ItemKind.SPECIAL,
    *,
    co: tuple[int, ...] = (),
    deadline: dt.date = DEADLINE,
    now: dt.datetime = NOW,
    **kw: Any,
) -> Item:
    if kind is ItemKind.INCOMING:
        kw.setdefault("source_title", "关于做好2026年本科教学评估工作的通知")
        kw.setdefault("source_number", "教高厅〔2026〕3号")
    return Item.create(
        code="2026-0037",
        kind=kind,
        title="完成本科教学审核评估自评报告",
        lead_unit_id=JWC,
        deadline=deadline,
        actor=OFFICE,
        now=now,
        co_unit_ids=co,
        **kw,
    )


def leader_of(item: Item) -> Person:
    return next(p for p in LEADERS if perm.is_leader_for(item, p))


def step(item: Item, now: dt.datetime = NOW) -> None:
    """Move the item one step along the happy path, done by the person whose turn it is."""
    s = item.status
    if s is Status.DRAFT:
        item.approve_draft(leader_of(item), now)
    elif s is Status.ASSIGNED:
        item.designate(CHEN, ZHANG, now)
    elif s is Status.DESIGNATED:
        item.sign(ZHANG, now)
    elif s is Status.IN_PROGRESS:
        item.submit_closure(ZHANG, "自评报告已定稿并报送。", now)
    elif s is Status.UNIT_REVIEW:
        item.review_closure(CHEN, True, now)
    elif s is Status.OFFICE_REVIEW:
        item.review_closure(OFFICE, True, now)
    elif s is Status.LEADER_REVIEW:
        item.review_closure(leader_of(item), True, now)
    elif s is Status.CLOSED:
        item.archive(ZHANG, now)
    else:
        raise AssertionError(f"no step from {s}")


def item_at(status: Status, kind: ItemKind = ItemKind.SPECIAL, **kw: Any) -> Item:
    item = new_item(kind, **kw)
    for _ in range(10):
        if item.status is status:
            return item
        step(item)
    raise AssertionError(f"a {kind.value} item never reaches {status.value}")


def with_co_unit_signed(status: Status = Status.IN_PROGRESS, kind: ItemKind = ItemKind.SPECIAL) -> Item:
    """教务处 leads, 科研院 co-operates; both branches have a signed handler."""
    item = new_item(kind, co=(KYY,))
    if item.status is Status.DRAFT:
        step(item)
    item.designate(ZHAO, SUN, NOW)
    item.sign(SUN, NOW)
    while item.status is not status:
        step(item)
    return item


def with_extension(stage: ExtensionStatus) -> Item:
    item = item_at(Status.IN_PROGRESS)
    item.request_extension(ZHANG, dt.date(2026, 4, 30), "需等待评估专家反馈意见。", NOW)
    if stage is ExtensionStatus.PENDING_OFFICE:
        item.review_extension(CHEN, True, NOW)
    assert item.pending_extension is not None and item.pending_extension.status is stage
    return item


def with_pending_progress(co: bool = False) -> Item:
    item = with_co_unit_signed() if co else item_at(Status.IN_PROGRESS)
    item.report_progress(SUN if co else ZHANG, "已完成第一轮自评数据采集。", NOW)
    return item


def event_kinds(item: Item) -> list[str]:
    return [e.kind for e in item.new_events]


def last_event(item: Item, kind: str | None = None) -> Any:
    events = [e for e in item.new_events if kind is None or e.kind == kind]
    assert events, f"no {kind} event"
    return events[-1]


def assert_refused(item: Item, exc: type[DomainError], action: Callable[[], object]) -> DomainError:
    """The action is refused with `exc` and the item is exactly as it was: status, version, children, events."""
    before = copy.deepcopy(item)
    with pytest.raises(exc) as info:
        action()
    assert item.status is before.status
    assert item.version == before.version
    assert item == before
    assert item.new_events == before.new_events
    assert info.value.message
    return info.value


# ==== creation (交办 / 立项) ===================================================================================


@pytest.mark.parametrize(
    ("kind", "status"),
    [(ItemKind.INCOMING, Status.ASSIGNED), (ItemKind.SPECIAL, Status.ASSIGNED), (ItemKind.PERIODIC, Status.DRAFT)],
)
def test_a_new_item_goes_to_the_unit_except_periodic_which_waits_for_the_leader(kind: ItemKind, status: Status) -> None:
    item = new_item(kind, co=(KYY,))

    assert item.status is status
    assert [(b.unit_id, b.is_lead, b.status, b.handler_id) for b in item.branches] == [
        (JWC, True, BranchStatus.ASSIGNED, None),
        (KYY, False, BranchStatus.ASSIGNED, None),
    ]
    assert item.lead_unit_id == JWC and item.deadline == DEADLINE and item.created_by == OFFICE.id
    assert event_kinds(item) == ["created"]
    assert last_event(item).payload == {"item_kind": kind.value, "deadline": "2026-03-31", "status": status.value}


def test_a_handler_named_by_the_office_at_creation_only_has_to_sign() -> None:
    item = new_item(handler=ZHANG)
    assert item.status is Status.DESIGNATED
    assert item.handler_id == ZHANG.id
    assert event_kinds(item) == ["created", "designated"]
    item.sign(ZHANG, LATER)
    assert item.status is Status.IN_PROGRESS


def test_a_periodic_item_with_a_named_handler_stays_a_draft_and_cannot_be_signed_yet() -> None:
    item = new_item(ItemKind.PERIODIC, handler=ZHANG)
    assert item.status is Status.DRAFT
    assert_refused(item, InvalidTransition, lambda: item.sign(ZHANG, LATER))

    item.approve_draft(LI, LATER)
    assert item.status is Status.DESIGNATED
    item.sign(ZHANG, LATER)
    assert item.status is Status.IN_PROGRESS


def test_an_item_created_by_the_system_token_records_no_person_as_creator() -> None:
    item = Item.create(
        code="2026-0001", kind=ItemKind.SPECIAL, title="t", lead_unit_id=JWC, deadline=DEADLINE, actor=SYSTEM_OFFICE, now=NOW
    )
    assert item.created_by is None
    assert item.new_events[0].actor_id is None


def test_a_co_unit_listed_twice_gets_one_branch() -> None:
    item = new_item(co=(KYY, XSC, KYY))
    assert [b.unit_id for b in item.branches] == [JWC, KYY, XSC]


def test_a_deadline_of_today_is_accepted() -> None:
    assert new_item(deadline=NOW.date()).deadline == NOW.date()


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"title": ""}, "事项标题不能为空"),
        ({"title": " \u3000 "}, "事项标题不能为空"),
        ({"title": "长" * 201}, "事项标题过长"),
        ({"deadline": dt.date(2026, 3, 1)}, "早于交办日期"),
        ({"co_unit_ids": [KYY, JWC]}, "牵头单位不能同时列为配合单位"),
        ({"kind": ItemKind.INCOMING, "source_title": ""}, "来文名称"),
        ({"kind": ItemKind.INCOMING, "source_title": "   "}, "来文名称"),
        ({"handler": SUN}, "不属于牵头单位"),
        ({"handler": WU}, "不属于牵头单位"),
    ],
    ids=[
        "empty title",
        "blank title",
        "title too long",
        "deadline before the assignment date",
        "lead unit also a co-unit",
        "incoming without source title",
        "incoming with blank source title",
        "handler from a co-unit",
        "handler from an unrelated unit",
    ],
)
def test_bad_creation_input_is_refused_with_a_reason(kw: dict[str, Any], words: str) -> None:
    args: dict[str, Any] = {
        "code": "2026-0037",
        "kind": ItemKind.SPECIAL,
        "title": "完成自评报告",
        "lead_unit_id": JWC,
        "deadline": DEADLINE,
        "actor": OFFICE,
        "now": NOW,
        "co_unit_ids": [KYY],
    }
    args.update(kw)
    with pytest.raises(ValidationError) as info:
        Item.create(**args)
    assert words in info.value.message


def test_a_deadline_is_compared_with_the_assignment_date_in_shanghai() -> None:
    late_evening = at(2026, 3, 2, 23, 30)  # 15:30 UTC the same day
    assert new_item(deadline=dt.date(2026, 3, 2), now=late_evening).deadline == dt.date(2026, 3, 2)
    with pytest.raises(ValidationError):
        new_item(deadline=dt.date(2026, 3, 2), now=at(2026, 3, 3, 0, 30))


@pytest.mark.parametrize("actor", [LI, CHEN, ZHANG], ids=["leader", "principal", "handler"])
def test_only_the_office_assigns_items(actor: Person) -> None:
    with pytest.raises(PermissionDenied) as info:
        Item.create(code="2026-0001", kind=ItemKind.SPECIAL, title="t", lead_unit_id=JWC, deadline=DEADLINE, actor=actor, now=NOW)
    assert "学校办公室" in info.value.message


@pytest.mark.parametrize("kind", list(ItemKind))
def test_a_confidential_item_of_any_kind_is_refused_and_pointed_to_the_offline_ledger(kind: ItemKind) -> None:
    with pytest.raises(ConfidentialRefused) as info:
        new_item(kind, confidential=True)
    assert "线下督办管理台账" in info.value.message
    assert info.value.code == "confidential"
    assert "自评报告" not in info.value.message


# ==== the happy path of DESIGN §2 ================================================================================

HAPPY_PATHS = {
    ItemKind.INCOMING: [
        Status.ASSIGNED,
        Status.DESIGNATED,
        Status.IN_PROGRESS,
        Status.UNIT_REVIEW,
        Status.LEADER_REVIEW,
        Status.CLOSED,
        Status.ARCHIVED,
    ],
    ItemKind.SPECIAL: [
        Status.ASSIGNED,
        Status.DESIGNATED,
        Status.IN_PROGRESS,
        Status.UNIT_REVIEW,
        Status.OFFICE_REVIEW,
        Status.LEADER_REVIEW,
        Status.CLOSED,
        Status.ARCHIVED,
    ],
    ItemKind.PERIODIC: [
        Status.DRAFT,
        Status.ASSIGNED,
        Status.DESIGNATED,
        Status.IN_PROGRESS,
        Status.UNIT_REVIEW,
        Status.OFFICE_REVIEW,
        Status.LEADER_REVIEW,
        Status.CLOSED,
        Status.ARCHIVED,
    ],
}


@pytest.mark.parametrize("kind", list(ItemKind))
def test_each_kind_walks_its_own_path_from_assignment_to_archive(kind: ItemKind) -> None:
    item = new_item(kind)
    seen = [item.status]
    while item.status is not Status.ARCHIVED:
        step(item, LATER)
        seen.append(item.status)

    assert seen == HAPPY_PATHS[kind]
    assert item.closed_at == LATER
    assert item.closure_result == "自评报告已定稿并报送。"
    assert item.lead_branch.status is BranchStatus.SIGNED and item.lead_branch.signed_at == LATER
    reviews = HAPPY_PATHS[kind][HAPPY_PATHS[kind].index(Status.UNIT_REVIEW) : -1]
    approvals = [(e.payload["stage"], e.payload["next"]) for e in item.new_events if e.kind == "closure_approved"]
    assert approvals == [(a.value, b.value) for a, b in zip(reviews, reviews[1:])]


def test_incoming_closure_approvals_skip_the_office_stage() -> None:
    item = item_at(Status.UNIT_REVIEW, ItemKind.INCOMING)
    item.review_closure(CHEN, True, LATER)
    assert item.status is Status.LEADER_REVIEW
    assert last_event(item).payload == {"stage": "unit_review", "next": "leader_review"}
    item.review_closure(LI, True, LATER)
    assert item.status is Status.CLOSED
    assert last_event(item).payload == {"stage": "leader_review", "next": "closed"}


def test_signing_starts_the_work_and_is_recorded_on_the_branch() -> None:
    item = item_at(Status.DESIGNATED)
    item.sign(ZHANG, LATER)
    assert item.status is Status.IN_PROGRESS
    assert item.lead_branch.status is BranchStatus.SIGNED
    assert item.lead_branch.signed_at == LATER
    assert last_event(item).kind == "signed" and last_event(item).payload == {"unit_id": JWC}


def test_the_principal_may_hand_the_item_to_another_colleague_who_then_has_to_sign() -> None:
    item = item_at(Status.IN_PROGRESS)
    item.designate(CHEN, LIU, LATER)

    assert item.status is Status.DESIGNATED
    assert item.handler_id == LIU.id
    assert item.lead_branch.status is BranchStatus.DESIGNATED and item.lead_branch.signed_at is None
    assert last_event(item).payload == {"unit_id": JWC, "handler_id": LIU.id, "previous_handler_id": ZHANG.id}
    assert_refused(item, PermissionDenied, lambda: item.submit_closure(ZHANG, "结果", LATER))
    item.sign(LIU, LATER)
    assert item.status is Status.IN_PROGRESS


# ==== periodic drafts (立项审核) =====================================================================================


def test_a_periodic_draft_reaches_the_units_only_after_its_leader_approves() -> None:
    item = new_item(ItemKind.PERIODIC)
    assert_refused(item, InvalidTransition, lambda: item.designate(CHEN, ZHANG, LATER))
    assert_refused(item, InvalidTransition, lambda: item.urge(OFFICE, "请抓紧", LATER))

    item.approve_draft(LI, LATER)

    assert item.status is Status.ASSIGNED
    assert last_event(item).kind == "draft_approved" and last_event(item).actor_id == LI.id


def test_a_returned_draft_stays_a_draft_with_the_reason_and_can_be_approved_later() -> None:
    item = new_item(ItemKind.PERIODIC)
    item.return_draft(LI, "请补充配合单位。", LATER)

    assert item.status is Status.DRAFT
    assert last_event(item).kind == "draft_returned"
    assert last_event(item).payload == {"reason": "请补充配合单位。"}
    item.approve_draft(LI, LATER)
    assert item.status is Status.ASSIGNED


def test_a_named_leader_approves_the_draft_even_if_another_leader_has_the_unit_in_charge() -> None:
    item = new_item(ItemKind.PERIODIC, leader_id=WANG.id)
    assert_refused(item, PermissionDenied, lambda: item.approve_draft(LI, LATER))
    item.approve_draft(WANG, LATER)
    assert item.status is Status.ASSIGNED


# ==== 退回 at each review stage ===================================================================================

REVIEW_STAGES = [
    (ItemKind.INCOMING, Status.UNIT_REVIEW, CHEN),
    (ItemKind.INCOMING, Status.LEADER_REVIEW, LI),
    (ItemKind.SPECIAL, Status.UNIT_REVIEW, CHEN),
    (ItemKind.SPECIAL, Status.OFFICE_REVIEW, OFFICE),
    (ItemKind.SPECIAL, Status.LEADER_REVIEW, LI),
    (ItemKind.PERIODIC, Status.UNIT_REVIEW, CHEN),
    (ItemKind.PERIODIC, Status.OFFICE_REVIEW, OFFICE),
    (ItemKind.PERIODIC, Status.LEADER_REVIEW, LI),
]


@pytest.mark.parametrize(("kind", "stage", "reviewer"), REVIEW_STAGES, ids=[f"{k.value}-{s.value}" for k, s, _ in REVIEW_STAGES])
def test_a_return_at_any_review_stage_sends_the_item_back_to_the_handler_with_the_reason(
    kind: ItemKind, stage: Status, reviewer: Person
) -> None:
    item = item_at(stage, kind)
    item.review_closure(reviewer, False, LATER, reason="佐证材料不全，请补充。")

    assert item.status is Status.IN_PROGRESS
    assert item.last_return_reason == "佐证材料不全，请补充。"
    assert item.return_count == 1
    assert item.closed_at is None
    ev = last_event(item)
    assert (ev.kind, ev.actor_id, ev.payload) == (
        "closure_returned",
        reviewer.id,
        {"stage": stage.value, "reason": "佐证材料不全，请补充。"},
    )

    # the handler fixes it and submits again; a second return counts twice
    item.submit_closure(ZHANG, "已补充佐证材料。", LATER)
    assert item.status is Status.UNIT_REVIEW and item.closure_result == "已补充佐证材料。"
    item.review_closure(CHEN, False, LATER, reason="仍缺少签字页。")
    assert item.return_count == 2 and item.last_return_reason == "仍缺少签字页。"


@pytest.mark.parametrize(("kind", "stage", "reviewer"), REVIEW_STAGES, ids=[f"{k.value}-{s.value}" for k, s, _ in REVIEW_STAGES])
def test_a_return_without_a_reason_is_refused(kind: ItemKind, stage: Status, reviewer: Person) -> None:
    item = item_at(stage, kind)
    err = assert_refused(item, ValidationError, lambda: item.review_closure(reviewer, False, LATER, reason=" "))
    assert "退回理由" in err.message


# ==== 延期 ======================================================================================================


def test_an_extension_moves_the_deadline_after_principal_then_office_agree() -> None:
    item = item_at(Status.IN_PROGRESS)
    ext = item.request_extension(ZHANG, dt.date(2026, 4, 30), "需等待评估专家反馈意见。", NOW)
    assert ext.status is ExtensionStatus.PENDING_PRINCIPAL
    assert (ext.old_deadline, ext.new_deadline, ext.requested_by) == (DEADLINE, dt.date(2026, 4, 30), ZHANG.id)
    assert item.pending_extension is ext

    item.review_extension(CHEN, True, LATER)
    assert ext.status is ExtensionStatus.PENDING_OFFICE
    assert item.deadline == DEADLINE  # the principal alone does not move it

    item.review_extension(OFFICE, True, LATER)
    assert ext.status is ExtensionStatus.APPROVED
    assert (ext.decided_by, ext.decided_at) == (OFFICE.id, LATER)
    assert item.deadline == dt.date(2026, 4, 30)
    assert item.pending_extension is None
    assert item.status is Status.IN_PROGRESS
    assert event_kinds(item)[-3:] == ["extension_requested", "extension_agreed_by_principal", "extension_approved"]
    assert last_event(item).payload == {"old": "2026-03-31", "new": "2026-04-30"}


@pytest.mark.parametrize(
    ("stage", "reviewer"),
    [(ExtensionStatus.PENDING_PRINCIPAL, CHEN), (ExtensionStatus.PENDING_OFFICE, OFFICE)],
    ids=["principal refuses", "office refuses"],
)
def test_a_refused_extension_leaves_the_deadline_and_allows_a_new_request(stage: ExtensionStatus, reviewer: Person) -> None:
    item = with_extension(stage)
    ext = item.review_extension(reviewer, False, LATER, reason="时限不宜再推迟。")

    assert ext.status is ExtensionStatus.REFUSED
    assert (ext.refuse_reason, ext.decided_by, ext.decided_at) == ("时限不宜再推迟。", reviewer.id, LATER)
    assert item.deadline == DEADLINE
    assert item.pending_extension is None
    assert last_event(item).kind == "extension_refused"
    assert last_event(item).payload == {"stage": stage.value, "reason": "时限不宜再推迟。"}

    item.request_extension(ZHANG, dt.date(2026, 4, 15), "缩短延期。", LATER)
    assert item.pending_extension is not None


@pytest.mark.parametrize("stage", [ExtensionStatus.PENDING_PRINCIPAL, ExtensionStatus.PENDING_OFFICE])
def test_a_second_extension_request_while_one_is_pending_is_refused(stage: ExtensionStatus) -> None:
    item = with_extension(stage)
    err = assert_refused(
        item, InvalidTransition, lambda: item.request_extension(ZHANG, dt.date(2026, 5, 31), "再延一次。", LATER)
    )
    assert "已有待审核的延期申请" in err.message


@pytest.mark.parametrize("new", [DEADLINE, dt.date(2026, 3, 20)], ids=["same day", "earlier"])
def test_an_extension_must_move_the_deadline_later(new: dt.date) -> None:
    item = item_at(Status.IN_PROGRESS)
    err = assert_refused(item, ValidationError, lambda: item.request_extension(ZHANG, new, "理由", LATER))
    assert "2026-03-31" in err.message


@pytest.mark.parametrize("stage", [ExtensionStatus.PENDING_PRINCIPAL, ExtensionStatus.PENDING_OFFICE])
def test_refusing_an_extension_without_a_reason_changes_nothing(stage: ExtensionStatus) -> None:
    item = with_extension(stage)
    reviewer = CHEN if stage is ExtensionStatus.PENDING_PRINCIPAL else OFFICE
    assert_refused(item, ValidationError, lambda: item.review_extension(reviewer, False, LATER, reason=""))
    assert item.pending_extension is not None and item.pending_extension.status is stage


# ==== 撤销 and 归档 =================================================================================================

CANCELLABLE = [
    (ItemKind.PERIODIC, Status.DRAFT),
    (ItemKind.SPECIAL, Status.ASSIGNED),
    (ItemKind.SPECIAL, Status.DESIGNATED),
    (ItemKind.SPECIAL, Status.IN_PROGRESS),
    (ItemKind.SPECIAL, Status.UNIT_REVIEW),
    (ItemKind.SPECIAL, Status.OFFICE_REVIEW),
    (ItemKind.SPECIAL, Status.LEADER_REVIEW),
]


@pytest.mark.parametrize(("kind", "status"), CANCELLABLE, ids=[s.value for _, s in CANCELLABLE])
def test_the_office_may_cancel_a_draft_or_open_item_with_a_reason(kind: ItemKind, status: Status) -> None:
    item = item_at(status, kind)
    item.cancel(OFFICE, "会议决定不再推进。", LATER)

    assert item.status is Status.CANCELLED
    assert item.cancel_reason == "会议决定不再推进。"
    ev = last_event(item)
    assert (ev.kind, ev.actor_id, ev.payload) == (
        "cancelled",
        OFFICE.id,
        {"reason": "会议决定不再推进。", "previous": status.value},
    )


@pytest.mark.parametrize("status", [Status.CLOSED, Status.ARCHIVED, Status.CANCELLED])
def test_a_finished_item_cannot_be_cancelled(status: Status) -> None:
    item = item_at(status) if status is not Status.CANCELLED else new_item()
    if status is Status.CANCELLED:
        item.cancel(OFFICE, "撤销", NOW)
    assert_refused(item, InvalidTransition, lambda: item.cancel(OFFICE, "再撤销", LATER))


@pytest.mark.parametrize("actor", [OFFICE, ZHANG], ids=["office", "lead handler"])
def test_a_closed_item_is_archived_by_the_lead_handler_or_the_office(actor: Person) -> None:
    item = item_at(Status.CLOSED)
    item.archive(actor, LATER)
    assert item.status is Status.ARCHIVED
    assert (last_event(item).kind, last_event(item).actor_id) == ("archived", actor.id)


@pytest.mark.parametrize("status", [Status.IN_PROGRESS, Status.UNIT_REVIEW, Status.LEADER_REVIEW, Status.ARCHIVED])
def test_an_item_is_archived_only_once_and_only_after_closure(status: Status) -> None:
    item = item_at(status)
    err = assert_refused(item, InvalidTransition, lambda: item.archive(ZHANG, LATER))
    assert status.label in err.message


# ==== co-units (第十条) ===========================================================================================


def test_each_co_unit_designates_and_signs_on_its_own_branch_without_moving_the_item() -> None:
    item = new_item(co=(KYY, XSC))
    item.designate(ZHAO, SUN, NOW)
    assert item.status is Status.ASSIGNED  # the lead unit has not designated anyone yet
    item.sign(SUN, NOW)
    assert item.status is Status.ASSIGNED

    item.designate(CHEN, ZHANG, NOW)
    assert item.status is Status.DESIGNATED
    item.sign(ZHANG, NOW)
    assert item.status is Status.IN_PROGRESS

    lead, kyy, xsc = item.branches
    assert (lead.handler_id, lead.status) == (ZHANG.id, BranchStatus.SIGNED)
    assert (kyy.handler_id, kyy.status, kyy.signed_at) == (SUN.id, BranchStatus.SIGNED, NOW)
    assert (xsc.handler_id, xsc.status) == (None, BranchStatus.ASSIGNED)
    assert item.handler_id == ZHANG.id  # the item's handler is the lead unit's


def test_a_co_unit_signing_first_does_not_start_the_lead_units_work() -> None:
    item = new_item(co=(KYY,), handler=ZHANG)
    item.designate(ZHAO, SUN, NOW)
    item.sign(SUN, NOW)

    assert item.status is Status.DESIGNATED  # still waiting for 张老师 to sign
    assert item.lead_branch.status is BranchStatus.DESIGNATED
    assert_refused(item, InvalidTransition, lambda: item.submit_closure(ZHANG, "结果", LATER))


def test_a_co_unit_changing_its_handler_does_not_stop_the_lead_units_work() -> None:
    item = with_co_unit_signed()
    item.designate(ZHAO, person(11, "周老师", KYY, Role.HANDLER), LATER)

    assert item.status is Status.IN_PROGRESS
    assert item.lead_branch.status is BranchStatus.SIGNED
    assert item.branches[1].status is BranchStatus.DESIGNATED and item.branches[1].handler_id == 11


def test_a_co_unit_handler_reports_progress_that_its_own_principal_publishes() -> None:
    item = with_co_unit_signed()
    entry = item.report_progress(SUN, "已提供科研数据。", LATER)
    assert (entry.unit_id, entry.author_id, entry.status) == (KYY, SUN.id, ProgressStatus.PENDING)

    item.review_progress(ZHAO, True, LATER)
    assert entry.status is ProgressStatus.PUBLISHED
    assert item.last_published_at == LATER


@pytest.mark.parametrize(
    ("action", "what"),
    [
        (lambda item: item.submit_closure(SUN, "科研院部分已完成。", LATER), "提交办结"),
        (lambda item: item.request_extension(SUN, dt.date(2026, 4, 30), "需要更多时间。", LATER), "申请延期"),
    ],
    ids=["closure", "extension"],
)
def test_a_co_unit_handler_is_told_only_the_lead_unit_may_close_or_extend(action: Callable[[Item], Any], what: str) -> None:
    item = with_co_unit_signed()
    err = assert_refused(item, PermissionDenied, lambda: action(item))
    assert "牵头" in err.message and what in err.message


def test_a_co_unit_handler_is_told_only_the_lead_unit_archives() -> None:
    item = with_co_unit_signed(Status.CLOSED)
    err = assert_refused(item, PermissionDenied, lambda: item.archive(SUN, LATER))
    assert "牵头" in err.message and "归档" in err.message


def test_a_co_unit_principal_may_not_review_the_lead_units_closure_or_extension() -> None:
    item = with_co_unit_signed(Status.UNIT_REVIEW)
    assert_refused(item, PermissionDenied, lambda: item.review_closure(ZHAO, True, LATER))

    item = with_co_unit_signed()
    item.request_extension(ZHANG, dt.date(2026, 4, 30), "理由", LATER)
    assert_refused(item, PermissionDenied, lambda: item.review_extension(ZHAO, True, LATER))


def test_a_principal_designates_only_people_of_their_own_unit() -> None:
    item = new_item(co=(KYY,))
    err = assert_refused(item, ValidationError, lambda: item.designate(CHEN, SUN, LATER))
    assert "孙老师" in err.message
    assert_refused(item, ValidationError, lambda: item.designate(ZHAO, ZHANG, LATER))


# ==== progress (阶段性进展) =========================================================================================


def test_progress_stays_pending_until_the_principal_publishes_it() -> None:
    item = item_at(Status.IN_PROGRESS)
    entry = item.report_progress(ZHANG, "  已完成自评数据采集。 ", NOW)

    assert entry.status is ProgressStatus.PENDING and entry.text == "已完成自评数据采集。"
    assert item.pending_progress() == [entry]
    assert item.last_published_at is None

    item.review_progress(CHEN, True, LATER)

    assert entry.status is ProgressStatus.PUBLISHED
    assert (entry.reviewer_id, entry.reviewed_at) == (CHEN.id, LATER)
    assert item.last_published_at == LATER
    assert item.pending_progress() == []
    assert last_event(item).payload == {"unit_id": JWC, "text": "已完成自评数据采集。"}


def test_returned_progress_is_not_published_and_carries_the_reason() -> None:
    item = with_pending_progress()
    entry = item.review_progress(CHEN, False, LATER, reason="请写明完成比例。")

    assert entry.status is ProgressStatus.RETURNED
    assert entry.return_reason == "请写明完成比例。"
    assert item.last_published_at is None
    assert last_event(item).kind == "progress_returned"


def test_the_principal_reviews_progress_oldest_first_or_the_entry_named() -> None:
    item = item_at(Status.IN_PROGRESS)
    first = item.report_progress(ZHANG, "第一次进展", NOW)
    second = item.report_progress(ZHANG, "第二次进展", NOW)

    assert item.review_progress(CHEN, True, LATER, entry=second) is second
    assert first.status is ProgressStatus.PENDING
    assert item.review_progress(CHEN, False, LATER, reason="不清楚") is first
    assert_refused(item, InvalidTransition, lambda: item.review_progress(CHEN, True, LATER, entry=second))


def test_returning_progress_without_a_reason_changes_nothing() -> None:
    item = with_pending_progress()
    assert_refused(item, ValidationError, lambda: item.review_progress(CHEN, False, LATER, reason=" "))
    assert item.pending_progress()[0].status is ProgressStatus.PENDING


def test_the_principal_of_another_unit_cannot_review_progress() -> None:
    item = with_pending_progress(co=True)  # 科研院's handler reported
    entry = item.pending_progress()[0]

    assert_refused(item, PermissionDenied, lambda: item.review_progress(QIAN, True, LATER))
    assert_refused(item, PermissionDenied, lambda: item.review_progress(CHEN, True, LATER, entry=entry))
    assert_refused(item, InvalidTransition, lambda: item.review_progress(CHEN, True, LATER))  # none of 教务处's
    assert entry.status is ProgressStatus.PENDING


def test_progress_may_be_reported_while_the_closure_is_under_review_but_not_after_closure() -> None:
    item = item_at(Status.UNIT_REVIEW)
    item.report_progress(ZHANG, "补充说明", LATER)
    step(item)
    step(item)
    step(item)
    assert item.status is Status.CLOSED
    assert_refused(item, InvalidTransition, lambda: item.report_progress(ZHANG, "晚到的进展", LATER))


# ==== 催办 =======================================================================================================


@pytest.mark.parametrize("status", sorted(HAPPY_PATHS[ItemKind.SPECIAL][:-2], key=lambda s: s.value))
def test_the_office_urges_any_open_item_and_the_count_goes_up(status: Status) -> None:
    item = item_at(status)
    item.urge(OFFICE, "请于本周内报送进展。", LATER)
    item.urge(OFFICE, "", LATER)

    assert item.urge_count == 2
    assert item.status is status
    assert [(e.kind, e.actor_id, e.payload) for e in item.new_events[-2:]] == [
        ("urged", OFFICE.id, {"note": "请于本周内报送进展。"}),
        ("urged", OFFICE.id, {"note": ""}),
    ]


def test_an_automatic_reminder_is_recorded_without_a_person() -> None:
    item = item_at(Status.IN_PROGRESS)
    item.urge(SYSTEM_OFFICE, "已逾期，请尽快办结。", LATER, automatic=True)
    assert item.urge_count == 1
    assert last_event(item).actor_id is None


@pytest.mark.parametrize("status", [Status.CLOSED, Status.ARCHIVED])
def test_a_closed_item_is_not_urged(status: Status) -> None:
    item = item_at(status)
    assert_refused(item, InvalidTransition, lambda: item.urge(OFFICE, "催", LATER))
    assert_refused(item, InvalidTransition, lambda: item.urge(SYSTEM_OFFICE, "催", LATER, automatic=True))


# ==== every refusal leaves the item as it was =====================================================================

Prepare = Callable[[], Item]
Act = Callable[[Item], object]


def at_status(status: Status, kind: ItemKind = ItemKind.SPECIAL, **kw: Any) -> Prepare:
    return lambda: item_at(status, kind, **kw)


REFUSALS: list[tuple[str, Prepare, Act, type[DomainError]]] = [
    # wrong person
    ("handler approves own closure", at_status(Status.UNIT_REVIEW), lambda i: i.review_closure(ZHANG, True, LATER), PermissionDenied),
    ("handler returns own closure", at_status(Status.UNIT_REVIEW), lambda i: i.review_closure(ZHANG, False, LATER, reason="x"), PermissionDenied),
    ("principal of another unit approves closure", at_status(Status.UNIT_REVIEW), lambda i: i.review_closure(QIAN, True, LATER), PermissionDenied),
    ("office approves in the principal's place", at_status(Status.UNIT_REVIEW), lambda i: i.review_closure(OFFICE, True, LATER), PermissionDenied),
    ("leader approves before the unit", at_status(Status.UNIT_REVIEW), lambda i: i.review_closure(LI, True, LATER), PermissionDenied),
    ("principal approves at the office stage", at_status(Status.OFFICE_REVIEW), lambda i: i.review_closure(CHEN, True, LATER), PermissionDenied),
    ("leader skips the office stage", at_status(Status.OFFICE_REVIEW), lambda i: i.review_closure(LI, True, LATER), PermissionDenied),
    ("office approves at the leader stage", at_status(Status.LEADER_REVIEW), lambda i: i.review_closure(OFFICE, True, LATER), PermissionDenied),
    ("leader not in charge approves", at_status(Status.LEADER_REVIEW), lambda i: i.review_closure(WANG, True, LATER), PermissionDenied),
    ("leader in charge but not the named leader approves", at_status(Status.LEADER_REVIEW, leader_id=WANG.id), lambda i: i.review_closure(LI, True, LATER), PermissionDenied),
    ("office approves incoming closure", at_status(Status.LEADER_REVIEW, ItemKind.INCOMING), lambda i: i.review_closure(OFFICE, True, LATER), PermissionDenied),
    ("office approves a draft", at_status(Status.DRAFT, ItemKind.PERIODIC), lambda i: i.approve_draft(OFFICE, LATER), PermissionDenied),
    ("leader not in charge approves a draft", at_status(Status.DRAFT, ItemKind.PERIODIC), lambda i: i.approve_draft(WANG, LATER), PermissionDenied),
    ("principal returns a draft", at_status(Status.DRAFT, ItemKind.PERIODIC), lambda i: i.return_draft(CHEN, "x", LATER), PermissionDenied),
    ("principal of another unit designates", at_status(Status.ASSIGNED), lambda i: i.designate(QIAN, WU, LATER), PermissionDenied),
    ("handler designates", at_status(Status.ASSIGNED), lambda i: i.designate(ZHANG, ZHANG, LATER), PermissionDenied),
    ("office designates", at_status(Status.ASSIGNED), lambda i: i.designate(OFFICE, ZHANG, LATER), PermissionDenied),
    ("colleague signs for the designated handler", at_status(Status.DESIGNATED), lambda i: i.sign(LIU, LATER), PermissionDenied),
    ("principal signs", at_status(Status.DESIGNATED), lambda i: i.sign(CHEN, LATER), PermissionDenied),
    ("colleague reports progress", at_status(Status.IN_PROGRESS), lambda i: i.report_progress(LIU, "x", LATER), PermissionDenied),
    ("principal submits closure", at_status(Status.IN_PROGRESS), lambda i: i.submit_closure(CHEN, "x", LATER), PermissionDenied),
    ("office submits closure", at_status(Status.IN_PROGRESS), lambda i: i.submit_closure(OFFICE, "x", LATER), PermissionDenied),
    ("principal asks for an extension", at_status(Status.IN_PROGRESS), lambda i: i.request_extension(CHEN, dt.date(2026, 4, 30), "x", LATER), PermissionDenied),
    ("handler approves own extension", lambda: with_extension(ExtensionStatus.PENDING_PRINCIPAL), lambda i: i.review_extension(ZHANG, True, LATER), PermissionDenied),
    ("office skips the principal on an extension", lambda: with_extension(ExtensionStatus.PENDING_PRINCIPAL), lambda i: i.review_extension(OFFICE, True, LATER), PermissionDenied),
    ("principal of another unit approves an extension", lambda: with_extension(ExtensionStatus.PENDING_PRINCIPAL), lambda i: i.review_extension(QIAN, True, LATER), PermissionDenied),
    ("principal decides at the office stage of an extension", lambda: with_extension(ExtensionStatus.PENDING_OFFICE), lambda i: i.review_extension(CHEN, True, LATER), PermissionDenied),
    ("leader decides an extension", lambda: with_extension(ExtensionStatus.PENDING_OFFICE), lambda i: i.review_extension(LI, True, LATER), PermissionDenied),
    ("handler publishes own progress", with_pending_progress, lambda i: i.review_progress(ZHANG, True, LATER), PermissionDenied),
    ("principal of another unit publishes progress", with_pending_progress, lambda i: i.review_progress(QIAN, True, LATER), PermissionDenied),
    ("office publishes progress", with_pending_progress, lambda i: i.review_progress(OFFICE, True, LATER), PermissionDenied),
    ("principal urges", at_status(Status.IN_PROGRESS), lambda i: i.urge(CHEN, "x", LATER), PermissionDenied),
    ("leader urges", at_status(Status.IN_PROGRESS), lambda i: i.urge(LI, "x", LATER), PermissionDenied),
    ("handler urges", at_status(Status.IN_PROGRESS), lambda i: i.urge(ZHANG, "x", LATER), PermissionDenied),
    ("principal cancels", at_status(Status.IN_PROGRESS), lambda i: i.cancel(CHEN, "x", LATER), PermissionDenied),
    ("leader cancels", at_status(Status.IN_PROGRESS), lambda i: i.cancel(LI, "x", LATER), PermissionDenied),
    ("leader cancels a draft", at_status(Status.DRAFT, ItemKind.PERIODIC), lambda i: i.cancel(LI, "x", LATER), PermissionDenied),
    ("principal archives", at_status(Status.CLOSED), lambda i: i.archive(CHEN, LATER), PermissionDenied),
    ("leader archives", at_status(Status.CLOSED), lambda i: i.archive(LI, LATER), PermissionDenied),
    ("colleague archives", at_status(Status.CLOSED), lambda i: i.archive(LIU, LATER), PermissionDenied),
    # wrong state
    ("signing twice", at_status(Status.IN_PROGRESS), lambda i: i.sign(ZHANG, LATER), InvalidTransition),
    ("closure before signing", at_status(Status.DESIGNATED), lambda i: i.submit_closure(ZHANG, "x", LATER), InvalidTransition),
    ("closure submitted twice", at_status(Status.UNIT_REVIEW), lambda i: i.submit_closure(ZHANG, "x", LATER), InvalidTransition),
    ("approving a closure nobody submitted", at_status(Status.IN_PROGRESS), lambda i: i.review_closure(CHEN, True, LATER), InvalidTransition),
    ("approving a closed item again", at_status(Status.CLOSED), lambda i: i.review_closure(LI, True, LATER), InvalidTransition),
    ("approving an extension nobody asked for", at_status(Status.IN_PROGRESS), lambda i: i.review_extension(CHEN, True, LATER), InvalidTransition),
    ("publishing progress nobody reported", at_status(Status.IN_PROGRESS), lambda i: i.review_progress(CHEN, True, LATER), InvalidTransition),
    ("progress before signing", at_status(Status.DESIGNATED), lambda i: i.report_progress(ZHANG, "x", LATER), InvalidTransition),
    ("extension before signing", at_status(Status.DESIGNATED), lambda i: i.request_extension(ZHANG, dt.date(2026, 4, 30), "x", LATER), InvalidTransition),
    ("extension while the closure is reviewed", at_status(Status.UNIT_REVIEW), lambda i: i.request_extension(ZHANG, dt.date(2026, 4, 30), "x", LATER), InvalidTransition),
    ("approving a draft twice", at_status(Status.ASSIGNED, ItemKind.PERIODIC), lambda i: i.approve_draft(LI, LATER), InvalidTransition),
    ("returning an approved draft", at_status(Status.ASSIGNED, ItemKind.PERIODIC), lambda i: i.return_draft(LI, "x", LATER), InvalidTransition),
    ("approving a special item as a draft", at_status(Status.ASSIGNED), lambda i: i.approve_draft(LI, LATER), InvalidTransition),
    ("designating the same handler again", at_status(Status.DESIGNATED), lambda i: i.designate(CHEN, ZHANG, LATER), InvalidTransition),
    ("designating after closure", at_status(Status.CLOSED), lambda i: i.designate(CHEN, LIU, LATER), InvalidTransition),
    ("designating during review", at_status(Status.UNIT_REVIEW), lambda i: i.designate(CHEN, LIU, LATER), InvalidTransition),
    ("signing a closed item", at_status(Status.CLOSED), lambda i: i.sign(ZHANG, LATER), InvalidTransition),
    ("urging a draft", at_status(Status.DRAFT, ItemKind.PERIODIC), lambda i: i.urge(OFFICE, "x", LATER), InvalidTransition),
    ("archiving before closure", at_status(Status.LEADER_REVIEW), lambda i: i.archive(ZHANG, LATER), InvalidTransition),
    # bad input
    ("designating someone of another unit", at_status(Status.ASSIGNED), lambda i: i.designate(CHEN, WU, LATER), ValidationError),
    ("empty progress", at_status(Status.IN_PROGRESS), lambda i: i.report_progress(ZHANG, " ", LATER), ValidationError),
    ("empty closure result", at_status(Status.IN_PROGRESS), lambda i: i.submit_closure(ZHANG, "", LATER), ValidationError),
    ("extension without a reason", at_status(Status.IN_PROGRESS), lambda i: i.request_extension(ZHANG, dt.date(2026, 4, 30), "", LATER), ValidationError),
    ("cancel without a reason", at_status(Status.IN_PROGRESS), lambda i: i.cancel(OFFICE, "  ", LATER), ValidationError),
    ("draft returned without a reason", at_status(Status.DRAFT, ItemKind.PERIODIC), lambda i: i.return_draft(LI, "", LATER), ValidationError),
    ("progress returned without a reason", with_pending_progress, lambda i: i.review_progress(CHEN, False, LATER), ValidationError),
    ("extension refused without a reason", lambda: with_extension(ExtensionStatus.PENDING_PRINCIPAL), lambda i: i.review_extension(CHEN, False, LATER), ValidationError),
    ("progress too long", at_status(Status.IN_PROGRESS), lambda i: i.report_progress(ZHANG, "字" * 4001, LATER), ValidationError),
]


@pytest.mark.parametrize(("prepare", "act", "exc"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_refused_action_says_why_and_changes_nothing(prepare: Prepare, act: Act, exc: type[DomainError]) -> None:
    item = prepare()
    assert_refused(item, exc, lambda: act(item))


def test_a_permission_refusal_tells_the_person_who_may_do_it() -> None:
    item = item_at(Status.LEADER_REVIEW)
    assert "分管校领导" in assert_refused(item, PermissionDenied, lambda: item.review_closure(WANG, True, LATER)).message
    item = item_at(Status.UNIT_REVIEW)
    assert "牵头单位主要负责人" in assert_refused(item, PermissionDenied, lambda: item.review_closure(QIAN, True, LATER)).message
    item = item_at(Status.IN_PROGRESS)
    assert "学校办公室" in assert_refused(item, PermissionDenied, lambda: item.urge(CHEN, "", LATER)).message
    assert "指定办理人" in assert_refused(item, PermissionDenied, lambda: item.report_progress(LIU, "x", LATER)).message


def test_a_wrong_state_refusal_names_the_item_and_its_current_state() -> None:
    item = item_at(Status.DESIGNATED)
    err = assert_refused(item, InvalidTransition, lambda: item.submit_closure(ZHANG, "x", LATER))
    assert "2026-0037" in err.message and "待签收" in err.message


# ==== decisions waiting on a person ================================================================================


def test_the_decisions_waiting_on_the_lead_principal_come_closure_then_extension_then_progress() -> None:
    item = with_co_unit_signed()
    item.report_progress(ZHANG, "进展", NOW)
    item.request_extension(ZHANG, dt.date(2026, 4, 30), "理由", NOW)
    assert item.decisions_for(CHEN) == ["extension", "progress"]
    item.submit_closure(ZHANG, "结果", NOW)

    # once closure is submitted the extension is moot: it is no longer offered for review
    assert item.decisions_for(CHEN) == ["closure", "progress"]
    with pytest.raises(InvalidTransition):
        item.review_extension(CHEN, True, LATER)
    assert item.decisions_for(ZHAO) == []
    item.report_progress(SUN, "配合进展", NOW)
    assert item.decisions_for(ZHAO) == ["progress"]
    assert item.decisions_for(ZHANG) == []
    assert item.decisions_for(OFFICE) == []
    assert item.decisions_for(LI) == []


def test_the_office_sees_the_extension_while_in_progress_and_only_the_closure_at_its_stage() -> None:
    item = item_at(Status.IN_PROGRESS)
    item.request_extension(ZHANG, dt.date(2026, 4, 30), "理由", NOW)
    item.review_extension(CHEN, True, NOW)
    assert item.decisions_for(OFFICE) == ["extension"]
    item.submit_closure(ZHANG, "结果", NOW)
    item.review_closure(CHEN, True, NOW)

    assert item.status is Status.OFFICE_REVIEW
    assert item.decisions_for(OFFICE) == ["closure"]
    assert item.decisions_for(CHEN) == []


def test_a_draft_waits_only_on_its_leader_and_a_leader_review_only_on_the_leader() -> None:
    draft = new_item(ItemKind.PERIODIC)
    assert draft.decisions_for(LI) == ["draft"]
    assert draft.decisions_for(WANG) == [] and draft.decisions_for(OFFICE) == []

    item = item_at(Status.LEADER_REVIEW)
    assert item.decisions_for(LI) == ["closure"]
    assert item.decisions_for(WANG) == [] and item.decisions_for(OFFICE) == [] and item.decisions_for(CHEN) == []


# ==== permissions =================================================================================================


def test_without_a_named_leader_any_leader_in_charge_of_the_lead_unit_is_its_leader() -> None:
    item = new_item(co=(XSC,))
    assert perm.is_leader_for(item, LI)
    assert not perm.is_leader_for(item, WANG)  # in charge of a co-unit only


def test_a_named_leader_is_the_only_leader_of_the_item() -> None:
    item = new_item(leader_id=WANG.id)
    assert perm.is_leader_for(item, WANG)
    assert not perm.is_leader_for(item, LI)


def test_someone_without_the_leader_role_is_never_the_items_leader() -> None:
    pretender = person(99, "某处长", JWC, Role.PRINCIPAL, in_charge=(JWC,))
    assert not perm.is_leader_for(new_item(), pretender)
    named = person(98, "某处长", JWC, Role.PRINCIPAL)
    assert not perm.is_leader_for(new_item(leader_id=98), named)


def test_a_unit_sees_the_items_it_takes_part_in_and_nothing_else() -> None:
    item = new_item(co=(KYY,))
    assert perm.may_view(item, OFFICE) and perm.may_view(item, LI)
    assert perm.may_view(item, CHEN) and perm.may_view(item, ZHANG) and perm.may_view(item, SUN)
    assert not perm.may_view(item, QIAN) and not perm.may_view(item, WU) and not perm.may_view(item, WANG)


# ==== notifications ===============================================================================================


def heard(item: Item, kind: str | None = None) -> list[tuple[To, int | None, CardKind | None]]:
    return [(n.recipient.to, n.recipient.id, n.card) for n in notices_for(item, last_event(item, kind))]


P = To.UNIT_PRINCIPALS


def test_a_new_item_tells_the_principal_of_every_unit_still_without_a_handler() -> None:
    item = new_item(co=(KYY,))
    assert heard(item, "created") == [(P, JWC, None), (P, KYY, None)]
    notice = notices_for(item, last_event(item))[0]
    assert notice.item_code == "2026-0037" and notice.data["actor_id"] == OFFICE.id and notice.kind == "created"


def test_a_new_item_with_a_handler_sends_the_handler_a_sign_card() -> None:
    item = new_item(co=(KYY,), handler=ZHANG)
    assert heard(item, "created") == [(P, KYY, None)]
    assert heard(item, "designated") == [(To.PERSON, ZHANG.id, CardKind.SIGN)]


def test_a_periodic_draft_sends_the_leader_a_draft_card_and_nobody_else_hears() -> None:
    item = new_item(ItemKind.PERIODIC, co=(KYY,), handler=ZHANG)
    assert heard(item, "created") == [(To.LEADER, None, CardKind.DRAFT)]
    assert heard(item, "designated") == []

    item.approve_draft(LI, LATER)
    assert heard(item, "draft_approved") == [(P, KYY, None), (To.PERSON, ZHANG.id, CardKind.SIGN)]


def test_a_returned_draft_goes_back_to_the_office() -> None:
    item = new_item(ItemKind.PERIODIC)
    item.return_draft(LI, "请补充", LATER)
    assert heard(item) == [(To.OFFICE, None, None)]


def test_a_designated_handler_of_any_unit_gets_a_sign_card() -> None:
    item = new_item(co=(KYY,))
    item.designate(ZHAO, SUN, LATER)
    assert heard(item) == [(To.PERSON, SUN.id, CardKind.SIGN)]
    item.designate(CHEN, ZHANG, LATER)
    assert heard(item) == [(To.PERSON, ZHANG.id, CardKind.SIGN)]


def test_signing_notifies_nobody() -> None:
    item = item_at(Status.DESIGNATED)
    item.sign(ZHANG, LATER)
    assert heard(item) == []


def test_reported_progress_goes_to_the_reporting_units_principals_as_a_progress_card() -> None:
    item = with_co_unit_signed()
    item.report_progress(SUN, "配合进展", LATER)
    assert heard(item) == [(P, KYY, CardKind.PROGRESS)]
    item.report_progress(ZHANG, "牵头进展", LATER)
    assert heard(item) == [(P, JWC, CardKind.PROGRESS)]


@pytest.mark.parametrize("approve", [True, False], ids=["published", "returned"])
def test_the_handler_hears_whether_their_progress_was_published_or_returned(approve: bool) -> None:
    item = with_pending_progress(co=True)
    item.review_progress(ZHAO, approve, LATER, reason="请补充")
    assert heard(item) == [(To.PERSON, SUN.id, None)]


def test_a_submitted_closure_reaches_the_lead_principal_as_a_closure_card() -> None:
    item = with_co_unit_signed(Status.UNIT_REVIEW)
    assert heard(item, "closure_submitted") == [(P, JWC, CardKind.CLOSURE)]


@pytest.mark.parametrize(
    ("kind", "stage", "expected"),
    [
        (ItemKind.SPECIAL, Status.UNIT_REVIEW, [(To.OFFICE, None, CardKind.CLOSURE)]),
        (ItemKind.PERIODIC, Status.UNIT_REVIEW, [(To.OFFICE, None, CardKind.CLOSURE)]),
        (ItemKind.SPECIAL, Status.OFFICE_REVIEW, [(To.LEADER, None, CardKind.CLOSURE)]),
        (ItemKind.INCOMING, Status.UNIT_REVIEW, [(To.LEADER, None, CardKind.CLOSURE)]),
        (ItemKind.SPECIAL, Status.LEADER_REVIEW, [(To.PERSON, ZHANG.id, None), (P, JWC, None)]),
        (ItemKind.INCOMING, Status.LEADER_REVIEW, [(To.PERSON, ZHANG.id, None), (P, JWC, None)]),
    ],
    ids=[
        "special: unit approved -> office card",
        "periodic: unit approved -> office card",
        "special: office approved -> leader card",
        "incoming: unit approved -> leader card",
        "special: closed -> unit told",
        "incoming: closed -> unit told",
    ],
)
def test_an_approved_closure_goes_to_the_next_reviewer_with_a_card(kind: ItemKind, stage: Status, expected: list[Any]) -> None:
    item = item_at(stage, kind)
    step(item, LATER)
    assert heard(item, "closure_approved") == expected


@pytest.mark.parametrize(
    ("stage", "reviewer", "expected"),
    [
        (Status.UNIT_REVIEW, CHEN, [(To.PERSON, ZHANG.id, None)]),
        (Status.OFFICE_REVIEW, OFFICE, [(To.PERSON, ZHANG.id, None), (P, JWC, None)]),
        (Status.LEADER_REVIEW, LI, [(To.PERSON, ZHANG.id, None), (P, JWC, None)]),
    ],
    ids=["by principal", "by office", "by leader"],
)
def test_a_returned_closure_reaches_the_handler_and_above_unit_level_the_principal(
    stage: Status, reviewer: Person, expected: list[Any]
) -> None:
    item = item_at(stage)
    item.review_closure(reviewer, False, LATER, reason="不符合要求")
    assert heard(item) == expected
    assert notices_for(item, last_event(item))[0].data["reason"] == "不符合要求"


def test_an_extension_request_travels_principal_card_then_office_card_then_back_to_the_unit() -> None:
    item = item_at(Status.IN_PROGRESS)
    item.request_extension(ZHANG, dt.date(2026, 4, 30), "理由", LATER)
    assert heard(item) == [(P, JWC, CardKind.EXTENSION)]
    item.review_extension(CHEN, True, LATER)
    assert heard(item) == [(To.OFFICE, None, CardKind.EXTENSION)]
    item.review_extension(OFFICE, True, LATER)
    assert heard(item) == [(To.PERSON, ZHANG.id, None), (P, JWC, None)]


def test_a_refused_extension_is_told_to_the_handler() -> None:
    item = with_extension(ExtensionStatus.PENDING_OFFICE)
    item.review_extension(OFFICE, False, LATER, reason="不同意")
    assert heard(item) == [(To.PERSON, ZHANG.id, None)]


@pytest.mark.parametrize("kind", ["urged", "cancelled"])
def test_an_urge_or_a_cancel_reaches_handlers_and_principals_of_every_branch(kind: str) -> None:
    item = new_item(co=(KYY, XSC))  # 学生处 has not designated anyone yet
    item.designate(CHEN, ZHANG, NOW)
    item.designate(ZHAO, SUN, NOW)
    if kind == "urged":
        item.urge(OFFICE, "请抓紧", LATER)
    else:
        item.cancel(OFFICE, "不再推进", LATER)
    assert heard(item) == [
        (To.PERSON, ZHANG.id, None),
        (P, JWC, None),
        (To.PERSON, SUN.id, None),
        (P, KYY, None),
        (P, XSC, None),
    ]


def test_an_automatic_urge_is_sent_with_no_actor() -> None:
    item = item_at(Status.IN_PROGRESS)
    item.urge(SYSTEM_OFFICE, "自动提醒", LATER, automatic=True)
    notices = notices_for(item, last_event(item))
    assert notices and all(n.data["actor_id"] is None and n.data["note"] == "自动提醒" for n in notices)


# ==== timing: overdue, due soon, slow ================================================================================

CAL = WorkCalendar()


def running(signed: dt.datetime, deadline: dt.date) -> Item:
    item = new_item(deadline=deadline, now=signed)
    item.designate(CHEN, ZHANG, signed)
    item.sign(ZHANG, signed)
    return item


def test_an_item_a_week_away_is_green() -> None:
    t = assess(running(at(2026, 3, 2), dt.date(2026, 3, 13)), at(2026, 3, 4), CAL)
    assert (t.overdue, t.due_soon, t.slow, t.workdays_left, t.mark) == (False, False, False, 7, GREEN)
    assert t.describe() == "剩 7 个工作日"


@pytest.mark.parametrize(
    ("today", "left", "mark"),
    [
        (dt.date(2026, 3, 4), 4, GREEN),  # Wed -> Tue: Thu Fri Mon Tue
        (dt.date(2026, 3, 5), 3, YELLOW),  # Thu -> Tue: Fri Mon Tue
        (dt.date(2026, 3, 6), 2, YELLOW),  # Fri -> Tue: four calendar days, two working days
        (dt.date(2026, 3, 7), 2, YELLOW),  # Saturday
    ],
)
def test_due_soon_counts_working_days_across_a_weekend(today: dt.date, left: int, mark: str) -> None:
    item = running(at(2026, 3, 2), dt.date(2026, 3, 10))
    t = assess(item, dt.datetime.combine(today, dt.time(9), TZ), CAL)
    assert (t.workdays_left, t.due_soon, t.overdue, t.mark) == (left, mark == YELLOW, False, mark)


def test_nine_calendar_days_over_national_day_are_only_two_working_days() -> None:
    item = running(at(2026, 9, 28), dt.date(2026, 10, 9))
    t = assess(item, at(2026, 9, 30), CAL)
    assert (t.workdays_left, t.due_soon, t.mark) == (2, True, YELLOW)


def test_the_national_day_makeup_saturday_counts_towards_the_deadline() -> None:
    item = running(at(2026, 9, 28), dt.date(2026, 10, 12))
    t = assess(item, at(2026, 9, 30), CAL)
    assert (t.workdays_left, t.due_soon, t.mark) == (4, False, GREEN)  # 10-08, 10-09, 10-10 (Sat), 10-12

    without_makeup = WorkCalendar(overrides={dt.date(2026, 10, 10): False})
    t = assess(item, at(2026, 9, 30), without_makeup)
    assert (t.workdays_left, t.due_soon, t.mark) == (3, True, YELLOW)


def test_on_the_deadline_day_the_item_is_due_today_not_overdue() -> None:
    item = running(at(2026, 9, 28), dt.date(2026, 9, 30))
    t = assess(item, at(2026, 9, 30, 23, 59), CAL)
    assert (t.overdue, t.due_soon, t.workdays_left, t.mark) == (False, True, 0, YELLOW)
    assert t.describe() == "今日到期"


def test_an_item_past_its_deadline_is_red_counting_working_days_overdue_across_the_holiday() -> None:
    item = running(at(2026, 9, 28), dt.date(2026, 9, 30))
    t = assess(item, at(2026, 10, 8), CAL)
    assert (t.overdue, t.due_soon, t.workdays_left, t.mark) == (True, False, -1, RED)
    assert t.describe() == "已逾期 1 个工作日"

    t = assess(item, at(2026, 10, 4), CAL)  # in the middle of the holiday: overdue, no working day lost yet
    assert (t.overdue, t.workdays_left, t.mark) == (True, 0, RED)
    assert t.describe() == "已逾期"


def test_overdue_starts_at_midnight_in_shanghai() -> None:
    item = running(at(2026, 3, 2), dt.date(2026, 3, 10))
    assert not assess(item, at(2026, 3, 10, 23, 59), CAL).overdue
    assert assess(item, at(2026, 3, 11, 0, 1), CAL).overdue


@pytest.mark.parametrize("status", [Status.CLOSED, Status.ARCHIVED])
def test_a_closed_item_is_never_overdue_or_slow(status: Status) -> None:
    item = item_at(status)
    t = assess(item, at(2026, 6, 1), CAL)
    assert (t.overdue, t.due_soon, t.slow, t.mark) == (False, False, False, GREEN)


def test_a_cancelled_item_is_never_overdue() -> None:
    item = item_at(Status.IN_PROGRESS)
    item.cancel(OFFICE, "撤销", NOW)
    assert assess(item, at(2026, 6, 1), CAL).mark == GREEN


@pytest.mark.parametrize(("today", "slow"), [(dt.date(2026, 3, 13), False), (dt.date(2026, 3, 16), True)])
def test_ten_working_days_after_signing_without_published_progress_the_item_is_slow(today: dt.date, slow: bool) -> None:
    item = running(at(2026, 3, 2), dt.date(2026, 6, 30))
    t = assess(item, dt.datetime.combine(today, dt.time(9), TZ), CAL)
    assert t.slow is slow
    assert t.mark == (YELLOW if slow else GREEN)
    assert t.describe().endswith("进展缓慢") is slow


def test_pending_progress_does_not_stop_an_item_looking_slow_but_published_progress_does() -> None:
    item = running(at(2026, 3, 2), dt.date(2026, 6, 30))
    item.report_progress(ZHANG, "进展", at(2026, 3, 9))
    assert assess(item, at(2026, 3, 16), CAL).slow

    item.review_progress(CHEN, True, at(2026, 3, 9))
    assert not assess(item, at(2026, 3, 16), CAL).slow
    assert assess(item, at(2026, 3, 23), CAL).slow  # ten working days after publication


def test_a_holiday_does_not_make_an_item_look_slow() -> None:
    item = running(at(2026, 9, 1), dt.date(2026, 12, 31))
    item.report_progress(ZHANG, "进展", at(2026, 9, 29))
    item.review_progress(CHEN, True, at(2026, 9, 29))
    t = assess(item, at(2026, 10, 13), CAL)  # fourteen calendar days, six working days
    assert not t.slow and t.mark == GREEN


def test_slow_is_judged_only_while_the_unit_is_working_on_it() -> None:
    item = running(at(2026, 3, 2), dt.date(2026, 6, 30))
    item.submit_closure(ZHANG, "结果", at(2026, 3, 2))
    assert not assess(item, at(2026, 4, 1), CAL).slow


def test_thresholds_can_be_tuned() -> None:
    item = running(at(2026, 3, 2), dt.date(2026, 3, 13))
    t = assess(item, at(2026, 3, 6), CAL, due_soon_within=5, slow_after=4)
    assert t.due_soon and t.slow and t.workdays_left == 5


# ==== codes and roles =================================================================================================


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("37", "2026-0037"),
        ("#37", "2026-0037"),
        ("＃37", "2026-0037"),
        (" 37 ", "2026-0037"),
        ("2026-37", "2026-0037"),
        ("2026-0037", "2026-0037"),
        ("2026－0037", "2026-0037"),
        ("2025-12", "2025-0012"),
        ("12345", "2026-12345"),
    ],
)
def test_an_item_code_may_be_typed_short_or_full(typed: str, code: str) -> None:
    assert parse_code(typed, 2026) == code


@pytest.mark.parametrize("typed", ["", "abc", "第37号", "2026-", "-37", "37a", "2026-0037-1", "26-37", "1234567"])
def test_a_garbled_item_code_is_refused_with_an_example(typed: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_code(typed, 2026)
    assert "2026-0037" in info.value.message


def test_codes_are_zero_padded_to_four_digits() -> None:
    assert format_code(2026, 7) == "2026-0007"
    assert format_code(2026, 12345) == "2026-12345"


@pytest.mark.parametrize(
    ("text", "roles"),
    [
        ("学校办公室", {Role.OFFICE}),
        ("校领导、主要负责人", {Role.LEADER, Role.PRINCIPAL}),
        ("分管校领导", {Role.LEADER}),
        ("办公室,办理人", {Role.OFFICE, Role.HANDLER}),
        ("主要负责人，专人", {Role.PRINCIPAL, Role.HANDLER}),
        ("office, Leader", {Role.OFFICE, Role.LEADER}),
        ("PRINCIPAL、handler", {Role.PRINCIPAL, Role.HANDLER}),
        ("办理人、办理人、", {Role.HANDLER}),
    ],
)
def test_role_words_in_chinese_or_english_with_any_separator_are_understood(text: str, roles: set[Role]) -> None:
    assert parse_roles(text) == frozenset(roles)


@pytest.mark.parametrize("text", ["主任", "办理人、主任", "boss"])
def test_an_unknown_role_word_is_named_in_the_error(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_roles(text)
    word = text.split("、")[-1]
    assert f"“{word}”" in info.value.message


@pytest.mark.parametrize("text", ["", "  ", "、,"])
def test_an_empty_role_cell_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="角色不能为空"):
        parse_roles(text)


# ==== statistics (第十一条) ===========================================================================================


def row(unit: int, status: Status, deadline: dt.date, closed_at: dt.datetime | None = None, urged: int = 0, returned: int = 0) -> dict[str, Any]:
    return {
        "lead_unit_id": unit,
        "status": status.value,
        "deadline": deadline,
        "closed_at": closed_at,
        "urge_count": urged,
        "return_count": returned,
    }


NAMES = {JWC: "教务处", KYY: "科研院", XSC: "学生处"}
JUNE_30 = dt.date(2026, 6, 30)


def test_closure_on_time_is_judged_by_the_shanghai_date_not_utc() -> None:
    rows = [
        row(JWC, Status.CLOSED, JUNE_30, dt.datetime(2026, 6, 30, 15, 30, tzinfo=UTC)),  # 23:30 in Shanghai
        row(JWC, Status.ARCHIVED, JUNE_30, dt.datetime(2026, 6, 30, 16, 30, tzinfo=UTC)),  # 00:30 on July 1st
    ]
    (s,) = compute(rows, {JWC: "教务处"}, dt.date(2026, 7, 10), TZ)
    assert (s.unit, s.total, s.closed_on_time, s.closed_late, s.in_progress, s.overdue_now) == ("教务处", 2, 1, 1, 0, 0)


def test_open_items_past_their_deadline_count_as_overdue_now_and_drafts_and_cancelled_are_left_out() -> None:
    today = dt.date(2026, 7, 1)
    rows = [
        row(JWC, Status.IN_PROGRESS, JUNE_30, urged=2),
        row(JWC, Status.UNIT_REVIEW, today, returned=1),  # due today: not overdue
        row(JWC, Status.DRAFT, dt.date(2026, 1, 1)),
        row(JWC, Status.CANCELLED, dt.date(2026, 1, 1), urged=3, returned=3),
        row(XSC, Status.DRAFT, JUNE_30),
        row(XSC, Status.CANCELLED, JUNE_30),
    ]
    stats = compute(rows, NAMES, today, TZ)

    assert [s.unit for s in stats] == ["教务处"]  # units with nothing counted are not listed
    (s,) = stats
    assert s.as_dict() == {
        "unit": "教务处",
        "total": 2,
        "in_progress": 2,
        "closed_on_time": 0,
        "closed_late": 0,
        "overdue_now": 1,
        "urged": 1,
        "returned": 1,
    }


def test_units_with_overdue_items_are_listed_first() -> None:
    today = dt.date(2026, 7, 1)
    rows = [
        row(JWC, Status.CLOSED, JUNE_30, at(2026, 6, 1)),
        row(JWC, Status.CLOSED, JUNE_30, at(2026, 6, 2)),
        row(KYY, Status.IN_PROGRESS, JUNE_30),
        row(XSC, Status.ASSIGNED, dt.date(2026, 8, 1)),
        row(99, Status.IN_PROGRESS, dt.date(2026, 8, 1)),
    ]
    assert [s.unit for s in compute(rows, NAMES, today, TZ)] == ["科研院", "教务处", "?", "学生处"]


# ==== the unit's own ledger (第六条 2) ===============================================================================


def ledger_entry(**kw: Any) -> LedgerEntry:
    args: dict[str, Any] = {
        "unit_id": JWC,
        "doc_title": " 关于开展教材排查的通知 ",
        "doc_number": "教材厅函〔2026〕2号",
        "responsible": "张老师",
        "deadline": JUNE_30,
        "summary": "",
        "now": NOW,
    }
    args.update(kw)
    return LedgerEntry.create(**args)


def test_a_ledger_entry_keeps_the_five_columns_the_rule_names() -> None:
    e = ledger_entry(summary="已完成排查。")
    assert (e.doc_title, e.doc_number, e.responsible, e.deadline, e.summary) == (
        "关于开展教材排查的通知",
        "教材厅函〔2026〕2号",
        "张老师",
        JUNE_30,
        "已完成排查。",
    )
    assert e.created_at == e.updated_at == NOW


@pytest.mark.parametrize(("field", "label"), [("doc_title", "来文名称"), ("doc_number", "文号"), ("responsible", "责任人")])
def test_a_ledger_entry_missing_a_required_column_is_refused(field: str, label: str) -> None:
    with pytest.raises(ValidationError) as info:
        ledger_entry(**{field: " "})
    assert label in info.value.message


# ==== one test per clause of the seed the domain implements ======================================================


def test_clause_4_only_the_school_office_assigns_urges_and_cancels() -> None:
    item = item_at(Status.IN_PROGRESS)
    for actor in (LI, CHEN, ZHANG):
        assert_refused(item, PermissionDenied, lambda a=actor: item.urge(a, "", LATER))
        assert_refused(item, PermissionDenied, lambda a=actor: item.cancel(a, "理由", LATER))
        with pytest.raises(PermissionDenied):
            Item.create(code="x", kind=ItemKind.SPECIAL, title="t", lead_unit_id=JWC, deadline=DEADLINE, actor=actor, now=NOW)


def test_clause_6_1_confidential_incoming_items_stay_offline() -> None:
    with pytest.raises(ConfidentialRefused) as info:
        new_item(ItemKind.INCOMING, confidential=True)
    assert info.value.message == CONFIDENTIAL_MESSAGE
    assert "线下督办管理台账" in info.value.message


def test_clause_6_1_non_confidential_incoming_items_enter_the_system_directly() -> None:
    item = new_item(ItemKind.INCOMING)
    assert item.status is Status.ASSIGNED
    assert item.source_title == "关于做好2026年本科教学评估工作的通知" and item.source_number == "教高厅〔2026〕3号"


def test_clause_6_2_progress_shown_after_principal_review() -> None:
    item = item_at(Status.IN_PROGRESS, ItemKind.INCOMING)
    entry = item.report_progress(ZHANG, "已召开专题会议部署。", NOW)
    published = lambda: [p for p in item.progress if p.status is ProgressStatus.PUBLISHED]  # noqa: E731
    assert published() == [] and item.last_published_at is None

    item.review_progress(CHEN, True, LATER)
    assert published() == [entry] and item.last_published_at == LATER


def test_clause_6_2_documents_outside_school_supervision_go_in_the_units_ledger() -> None:
    assert ledger_entry().unit_id == JWC
    with pytest.raises(ValidationError, match="文号"):
        ledger_entry(doc_number="")


def test_clause_6_3_incoming_closure_goes_principal_then_leader() -> None:
    item = item_at(Status.UNIT_REVIEW, ItemKind.INCOMING)
    assert_refused(item, PermissionDenied, lambda: item.review_closure(OFFICE, True, LATER))
    item.review_closure(CHEN, True, LATER)
    assert item.status is Status.LEADER_REVIEW
    assert_refused(item, PermissionDenied, lambda: item.review_closure(OFFICE, True, LATER))
    item.review_closure(LI, True, LATER)
    assert item.status is Status.CLOSED and item.closed_at == LATER


def test_clause_6_4_incoming_item_is_archived_by_its_handler_after_closure() -> None:
    item = item_at(Status.CLOSED, ItemKind.INCOMING)
    item.archive(ZHANG, LATER)
    assert item.status is Status.ARCHIVED


def test_clause_7_1_special_items_go_straight_to_the_lead_unit() -> None:
    item = new_item(ItemKind.SPECIAL, deadline=dt.date(2026, 4, 15))
    assert item.status is Status.ASSIGNED and item.deadline == dt.date(2026, 4, 15)
    assert heard(item) == [(P, JWC, None)]


def test_clause_7_2_the_unit_names_a_handler_who_signs_and_reports() -> None:
    item = new_item()
    item.designate(CHEN, ZHANG, NOW)
    item.sign(ZHANG, NOW)
    entry = item.report_progress(ZHANG, "进展", NOW)
    assert item.status is Status.IN_PROGRESS and entry.status is ProgressStatus.PENDING


def test_clause_7_3_office_urges_open_items() -> None:
    item = item_at(Status.IN_PROGRESS)
    item.urge(OFFICE, "进展缓慢，请加快办理。", LATER)
    assert item.urge_count == 1 and last_event(item).kind == "urged"
    assert (To.PERSON, ZHANG.id, None) in heard(item) and (P, JWC, None) in heard(item)
    assert_refused(item, PermissionDenied, lambda: item.urge(CHEN, "", LATER))


def test_clause_7_4_special_closure_goes_through_office_then_leader() -> None:
    item = item_at(Status.UNIT_REVIEW, ItemKind.SPECIAL)
    item.review_closure(CHEN, True, LATER)
    assert item.status is Status.OFFICE_REVIEW
    assert_refused(item, PermissionDenied, lambda: item.review_closure(LI, True, LATER))
    item.review_closure(OFFICE, True, LATER)
    assert item.status is Status.LEADER_REVIEW
    item.review_closure(LI, True, LATER)
    assert item.status is Status.CLOSED


def test_clause_7_4_return_sends_back_to_unit() -> None:
    item = item_at(Status.OFFICE_REVIEW, ItemKind.SPECIAL)
    item.review_closure(OFFICE, False, LATER, reason="不符合要求，请继续办理。")
    assert item.status is Status.IN_PROGRESS
    assert item.last_return_reason == "不符合要求，请继续办理。" and item.return_count == 1
    assert (To.PERSON, ZHANG.id, None) in heard(item)


def test_clause_7_5_special_item_is_archived_after_closure_only() -> None:
    item = item_at(Status.LEADER_REVIEW)
    assert_refused(item, InvalidTransition, lambda: item.archive(ZHANG, LATER))
    step(item)
    item.archive(ZHANG, LATER)
    assert item.status is Status.ARCHIVED


def test_clause_8_1_task_ledger_needs_leader_approval() -> None:
    item = new_item(ItemKind.PERIODIC)
    assert item.status is Status.DRAFT and not item.status.is_open
    assert heard(item) == [(To.LEADER, None, CardKind.DRAFT)]
    assert_refused(item, PermissionDenied, lambda: item.approve_draft(OFFICE, LATER))
    item.approve_draft(LI, LATER)
    assert item.status is Status.ASSIGNED and item.status.is_open


def test_clause_8_2_periodic_progress_is_published_by_the_principal() -> None:
    item = item_at(Status.IN_PROGRESS, ItemKind.PERIODIC)
    entry = item.report_progress(ZHANG, "已完成年度任务的一半。", NOW)
    assert_refused(item, PermissionDenied, lambda: item.review_progress(ZHANG, True, LATER))
    item.review_progress(CHEN, True, LATER)
    assert entry.status is ProgressStatus.PUBLISHED


def test_clause_8_3_periodic_closure_goes_through_office_then_leader_and_may_be_returned() -> None:
    item = item_at(Status.LEADER_REVIEW, ItemKind.PERIODIC)
    item.review_closure(LI, False, LATER, reason="未达到年度目标。")
    assert item.status is Status.IN_PROGRESS and item.last_return_reason == "未达到年度目标。"
    seen = []
    while item.status is not Status.CLOSED:
        step(item, LATER)
        seen.append(item.status)
    assert seen == [Status.UNIT_REVIEW, Status.OFFICE_REVIEW, Status.LEADER_REVIEW, Status.CLOSED]


def test_clause_8_4_periodic_item_is_archived_after_closure() -> None:
    item = item_at(Status.CLOSED, ItemKind.PERIODIC)
    item.archive(ZHANG, LATER)
    assert item.status is Status.ARCHIVED


def test_clause_9_principal_reviews_own_unit_only() -> None:
    item = with_co_unit_signed()
    item.report_progress(ZHANG, "牵头单位进展", NOW)
    item.report_progress(SUN, "配合单位进展", NOW)
    assert item.review_progress(CHEN, True, LATER).unit_id == JWC
    assert item.review_progress(ZHAO, True, LATER).unit_id == KYY
    item.report_progress(SUN, "第二次", NOW)
    assert_refused(item, InvalidTransition, lambda: item.review_progress(CHEN, True, LATER))
    assert_refused(item, PermissionDenied, lambda: item.review_progress(QIAN, True, LATER))


def test_clause_10_only_lead_unit_closes() -> None:
    item = with_co_unit_signed()
    err = assert_refused(item, PermissionDenied, lambda: item.submit_closure(SUN, "结果", LATER))
    assert "牵头" in err.message
    item.report_progress(SUN, "配合单位进展", LATER)  # the co-unit still reports
    item.submit_closure(ZHANG, "结果", LATER)
    assert item.status is Status.UNIT_REVIEW


def test_clause_10_the_first_unit_listed_leads() -> None:
    item = Item.create(
        code="2026-0001", kind=ItemKind.SPECIAL, title="t", lead_unit_id=KYY, co_unit_ids=[JWC], deadline=DEADLINE, actor=OFFICE, now=NOW
    )
    assert [(b.unit_id, b.is_lead) for b in item.branches] == [(KYY, True), (JWC, False)]
    assert item.lead_branch.unit_id == KYY


def test_clause_11_statistics_count_each_item_under_its_lead_unit() -> None:
    item = with_co_unit_signed(Status.CLOSED)
    r = row(item.lead_unit_id, item.status, item.deadline, item.closed_at, item.urge_count, item.return_count)
    assert [(s.unit, s.total, s.closed_on_time) for s in compute([r], NAMES, dt.date(2026, 4, 1), TZ)] == [("教务处", 1, 1)]


def test_clause_12_every_change_records_who_did_it_and_when() -> None:
    item = new_item()
    times = [NOW + dt.timedelta(minutes=i) for i in range(8)]
    item.designate(CHEN, ZHANG, times[1])
    item.sign(ZHANG, times[2])
    item.submit_closure(ZHANG, "结果", times[3])
    item.review_closure(CHEN, True, times[4])
    item.review_closure(OFFICE, True, times[5])
    item.review_closure(LI, True, times[6])
    item.archive(ZHANG, times[7])
    assert [(e.kind, e.actor_id, e.at) for e in item.new_events] == [
        ("created", OFFICE.id, times[0]),
        ("designated", CHEN.id, times[1]),
        ("signed", ZHANG.id, times[2]),
        ("closure_submitted", ZHANG.id, times[3]),
        ("closure_approved", CHEN.id, times[4]),
        ("closure_approved", OFFICE.id, times[5]),
        ("closure_approved", LI.id, times[6]),
        ("archived", ZHANG.id, times[7]),
    ]


def test_clause_13_confidential_unit_ledger_entries_are_refused() -> None:
    with pytest.raises(ConfidentialRefused) as info:
        ledger_entry(confidential=True)
    assert "线下督办管理台账" in info.value.message


def test_clause_13_confidential_items_are_refused_before_anything_else_is_looked_at() -> None:
    with pytest.raises(ConfidentialRefused):
        Item.create(
            code="x", kind=ItemKind.SPECIAL, title="", lead_unit_id=JWC, deadline=dt.date(2020, 1, 1), actor=ZHANG, now=NOW, confidential=True
        )
