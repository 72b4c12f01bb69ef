"""Who may do what to an item — every rule of that kind lives here, so it can be read in one place.

Each check raises PermissionDenied with the reason a person reads in chat; the caller records the refusal
in the audit trail (第十二条 accountability depends on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.errors import PermissionDenied
from domain.roles import Person, Role

if TYPE_CHECKING:
    from domain.items import Branch, Item


def require_office(actor: Person, what: str) -> None:
    """交办、催办、撤销、通报、统计、抽查 and the office's closure review belong to 学校办公室 (第四条)."""
    if not actor.has(Role.OFFICE):
        raise PermissionDenied(f"只有学校办公室督办人员可以{what}。")


def is_leader_for(item: Item, actor: Person) -> bool:
    """The item's named 分管校领导; without one, any leader who has the lead unit in charge."""
    if not actor.has(Role.LEADER):
        return False
    if item.leader_id is not None:
        return actor.id == item.leader_id
    return item.lead_unit_id in actor.units_in_charge


def require_leader(item: Item, actor: Person, what: str) -> None:
    if not is_leader_for(item, actor):
        raise PermissionDenied(f"只有该事项的分管校领导可以{what}。")


def is_principal_of(actor: Person, unit_id: int) -> bool:
    return actor.has(Role.PRINCIPAL) and actor.unit_id == unit_id


def principal_branch(item: Item, actor: Person) -> Branch:
    """The branch whose unit this principal heads (第九条: the principal answers for the unit's items)."""
    for b in item.branches:
        if is_principal_of(actor, b.unit_id):
            return b
    raise PermissionDenied("您不是该事项承办单位的主要负责人，无权进行此操作。")


def handler_branch(item: Item, actor: Person) -> Branch:
    """Only the designated 专人 of a unit reports on its branch (第七条 2)."""
    for b in item.branches:
        if b.handler_id == actor.id:
            return b
    raise PermissionDenied("您不是该事项的指定办理人，无权进行此操作。")


def require_lead_handler(item: Item, actor: Person, what: str) -> Branch:
    """Only the lead unit submits closure, asks for more time and archives (第十条)."""
    branch = handler_branch(item, actor)
    if not branch.is_lead:
        raise PermissionDenied(f"只有牵头单位的办理人可以{what}，配合单位请报送进展（第十条）。")
    return branch


def require_lead_principal(item: Item, actor: Person, what: str) -> None:
    if not is_principal_of(actor, item.lead_unit_id):
        raise PermissionDenied(f"只有牵头单位主要负责人可以{what}。")


def require_closure_reviewer(item: Item, actor: Person) -> None:
    """Who may approve or return a closure, by stage:
    unit_review → the lead unit's principal (办结意见); office_review → 学校办公室 (专项/定期 only);
    leader_review → the item's 分管校领导 (审批)."""
    from domain.items import Status

    if item.status is Status.UNIT_REVIEW:
        require_lead_principal(item, actor, "审核办结")
    elif item.status is Status.OFFICE_REVIEW:
        require_office(actor, "审核办结")
    elif item.status is Status.LEADER_REVIEW:
        require_leader(item, actor, "审批办结")


def may_view(item: Item, actor: Person) -> bool:
    """Office and the item's leader see everything; a unit sees the items it takes part in."""
    if actor.has(Role.OFFICE) or is_leader_for(item, actor):
        return True
    if actor.has(Role.LEADER) and item.lead_unit_id in actor.units_in_charge:
        return True
    return any(b.unit_id == actor.unit_id or b.handler_id == actor.id for b in item.branches)
