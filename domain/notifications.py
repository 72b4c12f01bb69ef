"""Who hears about what: the notification policy, from an item event to the notices it causes.

A notice names its recipients by role where the domain cannot know the people (a unit's principals,
the office staff); the handlers resolve them through the repositories. `card` says which buttons the
message offers, so a reviewer can act from the card rather than typing a command.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from domain.items import Item, ItemEvent, Status


class To(str, enum.Enum):
    PERSON = "person"
    UNIT_PRINCIPALS = "unit_principals"
    OFFICE = "office"
    LEADER = "leader"  # the item's 分管校领导, or the leaders in charge of the lead unit


class CardKind(str, enum.Enum):
    SIGN = "sign"  # 签收
    DRAFT = "draft"  # 立项审核: 同意 / 退回
    PROGRESS = "progress"  # 进展审核
    CLOSURE = "closure"  # 办结审核
    EXTENSION = "extension"  # 延期审核


@dataclass(frozen=True)
class Recipient:
    to: To
    id: int | None = None  # person id or unit id


@dataclass(frozen=True)
class Notice:
    kind: str
    recipient: Recipient
    item_code: str
    card: CardKind | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _person(pid: int | None) -> list[Recipient]:
    return [Recipient(To.PERSON, pid)] if pid is not None else []


def _principals(unit_id: int) -> Recipient:
    return Recipient(To.UNIT_PRINCIPALS, unit_id)


def notices_for(item: Item, event: ItemEvent) -> list[Notice]:
    k, p = event.kind, event.payload
    out: list[tuple[Recipient, CardKind | None]] = []
    lead = item.lead_branch
    if k == "created" and item.status is Status.DRAFT:
        out = [(Recipient(To.LEADER), CardKind.DRAFT)]
    elif k in ("created", "draft_approved") and item.status is not Status.DRAFT:
        out = [(_principals(b.unit_id), None) for b in item.branches if b.handler_id is None]
        if k == "draft_approved":
            out += [(r, CardKind.SIGN) for b in item.branches for r in _person(b.handler_id)]
    elif k == "draft_returned":
        out = [(Recipient(To.OFFICE), None)]
    elif k == "designated" and item.status is not Status.DRAFT:
        out = [(Recipient(To.PERSON, p["handler_id"]), CardKind.SIGN)]
    elif k == "progress_reported":
        out = [(_principals(p["unit_id"]), CardKind.PROGRESS)]
    elif k in ("progress_published", "progress_returned"):
        branch = item.branch_for_unit(p["unit_id"])
        out = [(r, None) for r in _person(branch.handler_id if branch else None)]
    elif k == "closure_submitted":
        out = [(_principals(lead.unit_id), CardKind.CLOSURE)]
    elif k == "closure_approved":
        if item.status is Status.OFFICE_REVIEW:
            out = [(Recipient(To.OFFICE), CardKind.CLOSURE)]
        elif item.status is Status.LEADER_REVIEW:
            out = [(Recipient(To.LEADER), CardKind.CLOSURE)]
        elif item.status is Status.CLOSED:
            out = [(r, None) for r in _person(lead.handler_id)] + [(_principals(lead.unit_id), None)]
    elif k == "closure_returned":
        out = [(r, None) for r in _person(lead.handler_id)]
        if p.get("stage") != Status.UNIT_REVIEW.value:
            out.append((_principals(lead.unit_id), None))
    elif k == "extension_requested":
        out = [(_principals(lead.unit_id), CardKind.EXTENSION)]
    elif k == "extension_agreed_by_principal":
        out = [(Recipient(To.OFFICE), CardKind.EXTENSION)]
    elif k in ("extension_approved",):
        out = [(r, None) for r in _person(lead.handler_id)] + [(_principals(lead.unit_id), None)]
    elif k == "extension_refused":
        out = [(r, None) for r in _person(lead.handler_id)]
    elif k in ("urged", "cancelled"):
        for b in item.branches:
            out += [(r, None) for r in _person(b.handler_id)]
            out.append((_principals(b.unit_id), None))
    data = {**p, "actor_id": event.actor_id}
    return [Notice(k, r, item.code, card, data) for r, card in out]
