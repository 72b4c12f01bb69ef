"""Operations on one item, as values the service runs inside its transaction.

`approve` and `give_back` take the decision a card was issued for; without one (a typed `同意 37`) they
take the first decision waiting on the actor, most significant first (Item.decisions_for).
"""

from __future__ import annotations

import datetime as dt

from domain.errors import InvalidTransition, PermissionDenied, ValidationError
from domain.items import Item, ProgressEntry, ProgressStatus
from domain.roles import Person, Role
from handlers.ports import UnitOfWork
from handlers.service import Operation

DECISION_LABELS = {"draft": "立项", "closure": "办结", "extension": "延期申请", "progress": "进展"}


def sign() -> Operation:
    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        item.sign(actor, now)

    return op


def designate(handler_name: str) -> Operation:
    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        if not actor.has(Role.PRINCIPAL):
            raise PermissionDenied("只有承办单位主要负责人可以指派办理人。")
        found = await uow.people.by_name(handler_name.strip(), actor.unit_id)
        if not found:
            raise ValidationError(f"本单位未找到“{handler_name}”，请核对姓名。")
        if len(found) > 1:
            raise ValidationError(f"本单位有多位“{handler_name}”，请联系学校办公室处理。")
        item.designate(actor, found[0], now)

    return op


def report_progress(text: str) -> Operation:
    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        item.report_progress(actor, text, now)

    return op


def submit_closure(result: str) -> Operation:
    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        item.submit_closure(actor, result, now)

    return op


def request_extension(new_deadline: dt.date, reason: str) -> Operation:
    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        item.request_extension(actor, new_deadline, reason, now)

    return op


def _decision(item: Item, actor: Person, kind: str | None) -> str:
    if kind is not None:
        return kind
    waiting = item.decisions_for(actor)
    if not waiting:
        raise InvalidTransition(f"事项 {item.code} 当前（{item.status.label}）没有待您审核的内容。")
    return waiting[0]


def check_ref(item: Item, kind: str, ref: str) -> ProgressEntry | None:
    """A card acts only on the decision instance it was issued for; anything else is a stale card."""
    if not ref:
        return None
    if kind == "progress":
        entry_id = ref.partition(":")[2]
        entry = next((p for p in item.progress if str(p.id) == entry_id), None)
        if entry is None or entry.status is not ProgressStatus.PENDING:
            raise InvalidTransition(f"该进展已审核过，本次操作未生效。事项 {item.code} 当前状态：{item.status.label}。")
        return entry
    if item.decision_ref(kind) != ref:
        raise InvalidTransition(f"该卡片对应的审核已处理，本次操作未生效。事项 {item.code} 当前状态：{item.status.label}。")
    return None


def decide(approve: bool, *, kind: str | None = None, reason: str = "", ref: str = "") -> Operation:
    """同意 or 退回 a pending decision. A card names its decision and its instance (`ref`): a press on a
    card whose decision was already taken changes nothing, even if a newer one of the same kind waits."""

    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        d = _decision(item, actor, kind)
        entry = check_ref(item, d, ref)
        if d == "draft":
            if approve:
                item.approve_draft(actor, now)
            else:
                item.return_draft(actor, reason, now)
        elif d == "closure":
            item.review_closure(actor, approve, now, reason=reason)
        elif d == "extension":
            item.review_extension(actor, approve, now, reason=reason)
        elif d == "progress":
            item.review_progress(actor, approve, now, reason=reason, entry=entry)
        else:
            raise InvalidTransition("无法识别的审核类型。")

    return op


def urge(note: str = "") -> Operation:
    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        item.urge(actor, note, now)

    return op


def cancel(reason: str) -> Operation:
    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        item.cancel(actor, reason, now)

    return op


def archive() -> Operation:
    async def op(item: Item, actor: Person, now: dt.datetime, uow: UnitOfWork) -> None:
        item.archive(actor, now)

    return op
