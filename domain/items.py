"""A supervised item (督办事项) and every transition of DESIGN §2.

Each transition checks the actor (domain.permissions), changes state, and appends an `ItemEvent`
to `new_events`; storage writes those to the append-only event table in the same transaction, and
domain.notifications turns them into the messages people receive.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from domain import permissions as perm
from domain.errors import ConfidentialRefused, InvalidTransition, PermissionDenied, ValidationError
from domain.roles import Person

TITLE_MAX = 200
TEXT_MAX = 4000


class ItemKind(str, enum.Enum):
    INCOMING = "incoming"  # 来文督办 第六条
    SPECIAL = "special"  # 专项督办 第七条
    PERIODIC = "periodic"  # 定期督办 第八条

    @property
    def label(self) -> str:
        return {"incoming": "来文督办", "special": "专项督办", "periodic": "定期督办"}[self.value]


class Status(str, enum.Enum):
    DRAFT = "draft"
    ASSIGNED = "assigned"
    DESIGNATED = "designated"
    IN_PROGRESS = "in_progress"
    UNIT_REVIEW = "unit_review"
    OFFICE_REVIEW = "office_review"
    LEADER_REVIEW = "leader_review"
    CLOSED = "closed"
    ARCHIVED = "archived"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def is_open(self) -> bool:
        """Open items are the ones the office follows up: assigned and not yet closed or cancelled."""
        return self in OPEN_STATUSES


STATUS_LABELS = {
    Status.DRAFT: "待审核立项",
    Status.ASSIGNED: "待指派",
    Status.DESIGNATED: "待签收",
    Status.IN_PROGRESS: "办理中",
    Status.UNIT_REVIEW: "待单位审核办结",
    Status.OFFICE_REVIEW: "待学校办公室审核",
    Status.LEADER_REVIEW: "待校领导审批",
    Status.CLOSED: "已办结",
    Status.ARCHIVED: "已归档",
    Status.CANCELLED: "已撤销",
}
OPEN_STATUSES = frozenset(
    {
        Status.ASSIGNED,
        Status.DESIGNATED,
        Status.IN_PROGRESS,
        Status.UNIT_REVIEW,
        Status.OFFICE_REVIEW,
        Status.LEADER_REVIEW,
    }
)
REVIEW_STATUSES = frozenset({Status.UNIT_REVIEW, Status.OFFICE_REVIEW, Status.LEADER_REVIEW})


class BranchStatus(str, enum.Enum):
    ASSIGNED = "assigned"
    DESIGNATED = "designated"
    SIGNED = "signed"


class ProgressStatus(str, enum.Enum):
    PENDING = "pending"
    PUBLISHED = "published"
    RETURNED = "returned"


class ExtensionStatus(str, enum.Enum):
    PENDING_PRINCIPAL = "pending_principal"
    PENDING_OFFICE = "pending_office"
    APPROVED = "approved"
    REFUSED = "refused"

    @property
    def is_pending(self) -> bool:
        return self in (ExtensionStatus.PENDING_PRINCIPAL, ExtensionStatus.PENDING_OFFICE)


@dataclass
class Branch:
    """One unit's share of an item (第十条): its own 专人, sign-for and progress."""

    unit_id: int
    is_lead: bool
    handler_id: int | None = None
    status: BranchStatus = BranchStatus.ASSIGNED
    signed_at: dt.datetime | None = None
    id: int | None = None


@dataclass
class ProgressEntry:
    """阶段性进展: shown only after the unit principal agrees (由单位主要负责人审核后即时展示)."""

    unit_id: int
    author_id: int
    text: str
    created_at: dt.datetime
    status: ProgressStatus = ProgressStatus.PENDING
    reviewer_id: int | None = None
    reviewed_at: dt.datetime | None = None
    return_reason: str | None = None
    id: int | None = None


@dataclass
class Extension:
    """延期申请: the deadline moves only after both the principal and the office agree."""

    requested_by: int
    requested_at: dt.datetime
    old_deadline: dt.date
    new_deadline: dt.date
    reason: str
    status: ExtensionStatus = ExtensionStatus.PENDING_PRINCIPAL
    decided_by: int | None = None
    decided_at: dt.datetime | None = None
    refuse_reason: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class ItemEvent:
    kind: str
    actor_id: int | None
    at: dt.datetime
    payload: dict[str, Any] = field(default_factory=dict)


def _text(value: str | None, label: str, *, required: bool = True, limit: int = TEXT_MAX) -> str:
    v = (value or "").strip()
    if required and not v:
        raise ValidationError(f"{label}不能为空。")
    if len(v) > limit:
        raise ValidationError(f"{label}过长（不超过 {limit} 字）。")
    return v


@dataclass
class Item:
    code: str
    kind: ItemKind
    title: str
    content: str
    source_title: str
    source_number: str
    lead_unit_id: int
    branches: list[Branch]
    deadline: dt.date
    leader_id: int | None
    status: Status
    created_at: dt.datetime
    created_by: int | None
    category: str = ""
    closure_result: str | None = None
    closed_at: dt.datetime | None = None
    last_return_reason: str | None = None
    cancel_reason: str | None = None
    urge_count: int = 0
    return_count: int = 0
    last_published_at: dt.datetime | None = None
    progress: list[ProgressEntry] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)
    version: int = 0
    id: int | None = None
    new_events: list[ItemEvent] = field(default_factory=list, repr=False, compare=False)

    # ---- creation (交办 / 立项) -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        code: str,
        kind: ItemKind,
        title: str,
        lead_unit_id: int,
        deadline: dt.date,
        actor: Person,
        now: dt.datetime,
        content: str = "",
        source_title: str = "",
        source_number: str = "",
        co_unit_ids: list[int] | tuple[int, ...] = (),
        leader_id: int | None = None,
        handler: Person | None = None,
        confidential: bool = False,
        category: str = "",
    ) -> Item:
        """交办 by the office. Periodic items start as drafts of the task ledger until the leader approves
        (第八条 1); the others go straight to the units. A handler named by the office is taken as designated."""
        if confidential:
            raise ConfidentialRefused()
        perm.require_office(actor, "交办督办事项")
        title = _text(title, "事项标题", limit=TITLE_MAX)
        if kind is ItemKind.INCOMING and not source_title.strip():
            raise ValidationError("来文督办须填写来文名称。")
        if deadline < now.date():
            raise ValidationError(f"办结时限 {deadline.isoformat()} 早于交办日期 {now.date().isoformat()}。")
        co = list(dict.fromkeys(co_unit_ids))
        if lead_unit_id in co:
            raise ValidationError("牵头单位不能同时列为配合单位。")
        branches = [Branch(unit_id=lead_unit_id, is_lead=True)] + [Branch(unit_id=u, is_lead=False) for u in co]
        item = cls(
            code=code,
            kind=kind,
            title=title,
            content=_text(content, "事项内容", required=False),
            source_title=_text(source_title, "来文名称", required=False, limit=TITLE_MAX),
            source_number=_text(source_number, "文号", required=False, limit=100),
            lead_unit_id=lead_unit_id,
            branches=branches,
            deadline=deadline,
            leader_id=leader_id,
            status=Status.DRAFT if kind is ItemKind.PERIODIC else Status.ASSIGNED,
            created_at=now,
            created_by=actor.id or None,
            category=_text(category, "类别", required=False, limit=100),
        )
        item._event("created", actor, now, item_kind=kind.value, deadline=deadline.isoformat(), status=item.status.value)
        if handler is not None:
            if handler.unit_id != lead_unit_id:
                raise ValidationError(f"办理人“{handler.name}”不属于牵头单位。")
            item._designate_branch(item.lead_branch, handler, actor, now)
        return item

    # ---- helpers -------------------------------------------------------------------------------

    @property
    def lead_branch(self) -> Branch:
        return self.branches[0]

    @property
    def handler_id(self) -> int | None:
        return self.lead_branch.handler_id

    def branch_for_unit(self, unit_id: int) -> Branch | None:
        return next((b for b in self.branches if b.unit_id == unit_id), None)

    @property
    def pending_extension(self) -> Extension | None:
        return next((e for e in self.extensions if e.status.is_pending), None)

    def pending_progress(self, unit_id: int | None = None) -> list[ProgressEntry]:
        return [
            p
            for p in self.progress
            if p.status is ProgressStatus.PENDING and (unit_id is None or p.unit_id == unit_id)
        ]

    def _event(self, kind: str, actor: Person | None, now: dt.datetime, **payload: Any) -> None:
        self.new_events.append(ItemEvent(kind, (actor.id or None) if actor else None, now, payload))

    def _require_status(self, allowed: set[Status] | frozenset[Status], what: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"事项 {self.code} 当前状态为“{self.status.label}”，不能{what}。")

    # ---- 立项审核 (periodic) -------------------------------------------------------------------

    def approve_draft(self, actor: Person, now: dt.datetime) -> None:
        """第八条 1: the task ledger goes to the units only after the leader in charge approves it."""
        self._require_status({Status.DRAFT}, "审核立项")
        perm.require_leader(self, actor, "审核任务台账")
        self.status = Status.DESIGNATED if self.lead_branch.handler_id is not None else Status.ASSIGNED
        self._event("draft_approved", actor, now)

    def return_draft(self, actor: Person, reason: str, now: dt.datetime) -> None:
        """The leader sends a ledger entry back to the office for rework; it stays a draft."""
        self._require_status({Status.DRAFT}, "退回立项")
        perm.require_leader(self, actor, "审核任务台账")
        self._event("draft_returned", actor, now, reason=_text(reason, "退回理由"))

    # ---- 指派专人 / 签收 -------------------------------------------------------------------------

    def designate(self, actor: Person, handler: Person, now: dt.datetime) -> None:
        self._require_status({Status.ASSIGNED, Status.DESIGNATED, Status.IN_PROGRESS}, "指派办理人")
        branch = perm.principal_branch(self, actor)
        if handler.unit_id != branch.unit_id:
            raise ValidationError(f"“{handler.name}”不是本单位人员，不能指派为办理人。")
        if branch.handler_id == handler.id and branch.status is not BranchStatus.ASSIGNED:
            raise InvalidTransition(f"“{handler.name}”已是该事项的办理人。")
        self._designate_branch(branch, handler, actor, now)

    def _designate_branch(self, branch: Branch, handler: Person, actor: Person, now: dt.datetime) -> None:
        previous = branch.handler_id
        branch.handler_id = handler.id
        branch.status = BranchStatus.DESIGNATED
        branch.signed_at = None
        if branch.is_lead and self.status in (Status.ASSIGNED, Status.IN_PROGRESS):
            self.status = Status.DESIGNATED
        self._event(
            "designated", actor, now, unit_id=branch.unit_id, handler_id=handler.id, previous_handler_id=previous
        )

    def sign(self, actor: Person, now: dt.datetime) -> None:
        if self.status not in OPEN_STATUSES:
            raise InvalidTransition(f"事项 {self.code} 当前状态为“{self.status.label}”，不能签收。")
        branch = perm.handler_branch(self, actor)
        if branch.status is BranchStatus.SIGNED:
            raise InvalidTransition(f"您已签收事项 {self.code}。")
        branch.status = BranchStatus.SIGNED
        branch.signed_at = now
        if branch.is_lead and self.status is Status.DESIGNATED:
            self.status = Status.IN_PROGRESS
        self._event("signed", actor, now, unit_id=branch.unit_id)

    # ---- 进展 (pending until the principal agrees) ------------------------------------------------

    def report_progress(self, actor: Person, text: str, now: dt.datetime) -> ProgressEntry:
        if self.status not in OPEN_STATUSES:
            raise InvalidTransition(f"事项 {self.code} 当前状态为“{self.status.label}”，不能报送进展。")
        branch = perm.handler_branch(self, actor)
        if branch.status is not BranchStatus.SIGNED:
            raise InvalidTransition(f"请先签收事项 {self.code}，再报送进展。")
        entry = ProgressEntry(unit_id=branch.unit_id, author_id=actor.id, text=_text(text, "进展内容"), created_at=now)
        self.progress.append(entry)
        self._event("progress_reported", actor, now, unit_id=branch.unit_id, text=entry.text)
        return entry

    def review_progress(
        self, actor: Person, approve: bool, now: dt.datetime, *, reason: str = "", entry: ProgressEntry | None = None
    ) -> ProgressEntry:
        """The principal agrees (published: shown at once) or returns it with a reason (第七条 2)."""
        if self.status not in OPEN_STATUSES:
            raise InvalidTransition(f"事项 {self.code} 当前状态为“{self.status.label}”，进展无需再审核。")
        branch = perm.principal_branch(self, actor)
        pending = self.pending_progress(branch.unit_id)
        if entry is None:
            if not pending:
                raise InvalidTransition(f"事项 {self.code} 没有待审核的进展。")
            entry = pending[0]
        elif entry.unit_id != branch.unit_id:
            raise PermissionDenied("只有该进展所属单位的主要负责人可以审核。")
        elif entry not in pending:
            raise InvalidTransition("该进展已审核过。")
        return_reason = None if approve else _text(reason, "退回理由")
        entry.reviewer_id = actor.id
        entry.reviewed_at = now
        if approve:
            entry.status = ProgressStatus.PUBLISHED
            self.last_published_at = now
            self._event("progress_published", actor, now, unit_id=entry.unit_id, text=entry.text)
        else:
            entry.status = ProgressStatus.RETURNED
            entry.return_reason = return_reason
            self._event("progress_returned", actor, now, unit_id=entry.unit_id, reason=entry.return_reason)
        return entry

    # ---- 办结 and its review chain ------------------------------------------------------------------

    def submit_closure(self, actor: Person, result: str, now: dt.datetime) -> None:
        perm.require_lead_handler(self, actor, "提交办结")
        self._require_status({Status.IN_PROGRESS}, "提交办结")
        self.closure_result = _text(result, "办理结果")
        self.status = Status.UNIT_REVIEW
        self._event("closure_submitted", actor, now, result=self.closure_result)

    def review_closure(self, actor: Person, approve: bool, now: dt.datetime, *, reason: str = "") -> None:
        """incoming: principal → leader (第六条 3); special/periodic: principal → office → leader (第七条 4, 第八条 3).
        A 退回 at any stage sends it back to the unit with the reason."""
        self._require_status(REVIEW_STATUSES, "审核办结")
        perm.require_closure_reviewer(self, actor)
        stage = self.status
        if not approve:
            self.last_return_reason = _text(reason, "退回理由")
            self.return_count += 1
            self.status = Status.IN_PROGRESS
            self._event("closure_returned", actor, now, stage=stage.value, reason=self.last_return_reason)
            return
        if stage is Status.UNIT_REVIEW:
            self.status = Status.LEADER_REVIEW if self.kind is ItemKind.INCOMING else Status.OFFICE_REVIEW
        elif stage is Status.OFFICE_REVIEW:
            self.status = Status.LEADER_REVIEW
        else:
            self.status = Status.CLOSED
            self.closed_at = now
        self._event("closure_approved", actor, now, stage=stage.value, next=self.status.value)

    # ---- 延期 -------------------------------------------------------------------------------------

    def request_extension(self, actor: Person, new_deadline: dt.date, reason: str, now: dt.datetime) -> Extension:
        perm.require_lead_handler(self, actor, "申请延期")
        self._require_status({Status.IN_PROGRESS}, "申请延期")
        if self.pending_extension is not None:
            raise InvalidTransition(f"事项 {self.code} 已有待审核的延期申请。")
        if new_deadline <= self.deadline:
            raise ValidationError(f"新的办结时限须晚于当前时限 {self.deadline.isoformat()}。")
        ext = Extension(
            requested_by=actor.id,
            requested_at=now,
            old_deadline=self.deadline,
            new_deadline=new_deadline,
            reason=_text(reason, "延期理由"),
        )
        self.extensions.append(ext)
        self._event("extension_requested", actor, now, new_deadline=new_deadline.isoformat(), reason=ext.reason)
        return ext

    def review_extension(self, actor: Person, approve: bool, now: dt.datetime, *, reason: str = "") -> Extension:
        ext = self.pending_extension
        if ext is None:
            raise InvalidTransition(f"事项 {self.code} 没有待审核的延期申请。")
        if self.status is not Status.IN_PROGRESS:
            raise InvalidTransition(f"事项 {self.code} 当前状态为“{self.status.label}”，延期申请不再审核。")
        if ext.status is ExtensionStatus.PENDING_PRINCIPAL:
            perm.require_lead_principal(self, actor, "审核延期申请")
        else:
            perm.require_office(actor, "审核延期申请")
        stage = ext.status
        if not approve:
            refuse_reason = _text(reason, "退回理由")
            ext.status = ExtensionStatus.REFUSED
            ext.refuse_reason = refuse_reason
            ext.decided_by, ext.decided_at = actor.id, now
            self._event("extension_refused", actor, now, stage=stage.value, reason=ext.refuse_reason)
            return ext
        if stage is ExtensionStatus.PENDING_PRINCIPAL:
            ext.status = ExtensionStatus.PENDING_OFFICE
            self._event("extension_agreed_by_principal", actor, now)
        else:
            ext.status = ExtensionStatus.APPROVED
            ext.decided_by, ext.decided_at = actor.id, now
            self.deadline = ext.new_deadline
            self._event(
                "extension_approved", actor, now, old=ext.old_deadline.isoformat(), new=ext.new_deadline.isoformat()
            )
        return ext

    # ---- office actions, archive ---------------------------------------------------------------------

    def urge(self, actor: Person, note: str, now: dt.datetime, *, automatic: bool = False) -> None:
        """催办单 (第七条 3): recorded in the timeline; the office's manual one goes out at once."""
        if not automatic:
            perm.require_office(actor, "催办")
        self._require_status(OPEN_STATUSES, "催办")
        self.urge_count += 1
        self._event("urged", None if automatic else actor, now, note=_text(note, "催办说明", required=False))

    def cancel(self, actor: Person, reason: str, now: dt.datetime) -> None:
        perm.require_office(actor, "撤销督办事项")
        self._require_status(OPEN_STATUSES | {Status.DRAFT}, "撤销")
        self.cancel_reason = _text(reason, "撤销理由")
        previous = self.status
        self.status = Status.CANCELLED
        self._event("cancelled", actor, now, reason=self.cancel_reason, previous=previous.value)

    def archive(self, actor: Person, now: dt.datetime) -> None:
        """归档 (一事一结): the lead unit's handler files the process materials after closure."""
        self._require_status({Status.CLOSED}, "归档")
        try:
            perm.require_lead_handler(self, actor, "归档")
        except PermissionDenied:
            if not actor.is_office:
                raise
        self.status = Status.ARCHIVED
        self._event("archived", actor, now)

    # ---- what is waiting for this person -------------------------------------------------------------

    def decision_ref(self, kind: str, unit_id: int | None = None) -> str:
        """Names one instance of a decision, so a card issued for it cannot act on a later one of the same
        kind: the n-th closure submission at its stage, one extension request at its stage, one report."""
        if kind == "closure":
            return f"closure:{self.return_count}:{self.status.value}"
        if kind == "extension":
            ext = self.pending_extension
            return f"extension:{ext.id}:{ext.status.value}" if ext else "extension:none"
        if kind == "progress":
            pending = self.pending_progress(unit_id)
            return f"progress:{pending[-1].id}" if pending else "progress:none"
        return kind

    def decisions_for(self, actor: Person) -> list[str]:
        """The decisions waiting on this actor, most significant first: 'draft', 'closure', 'extension',
        'progress'. A bare `同意 <编号>` in chat applies to the first of them."""
        out: list[str] = []
        if self.status is Status.DRAFT and perm.is_leader_for(self, actor):
            out.append("draft")
        if self.status in REVIEW_STATUSES:
            try:
                perm.require_closure_reviewer(self, actor)
                out.append("closure")
            except PermissionDenied:
                pass
        ext = self.pending_extension
        if ext is not None and self.status is Status.IN_PROGRESS:
            if (ext.status is ExtensionStatus.PENDING_PRINCIPAL and perm.is_principal_of(actor, self.lead_unit_id)) or (
                ext.status is ExtensionStatus.PENDING_OFFICE and actor.is_office
            ):
                out.append("extension")
        if self.status in OPEN_STATUSES and any(perm.is_principal_of(actor, p.unit_id) for p in self.pending_progress()):
            out.append("progress")
        return out
