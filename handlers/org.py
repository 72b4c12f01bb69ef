"""Loading the organisation and the periodic task ledger: all or nothing, with a row-level report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from domain.codes import format_code
from domain.errors import DomainError, ValidationError
from domain.items import Item, ItemKind
from domain.roles import Channel, Person, Role
from handlers.service import Supervision


@dataclass(frozen=True)
class PersonSpec:
    unit: str
    name: str
    roles: frozenset[Role]
    wecom_id: str | None = None
    dingtalk_id: str | None = None
    units_in_charge: tuple[str, ...] = ()
    preferred_channel: str = "wecom"
    line: int = 0


@dataclass(frozen=True)
class TaskSpec:
    """One row of the 任务台账 (第八条 1)."""

    task: str
    key_point: str
    lead_unit: str
    co_units: tuple[str, ...]
    leader: str
    deadline: dt.date
    category: str = ""
    line: int = 0


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def report(self) -> str:
        return "\n".join(f"第 {line} 行：{msg}" for line, msg in self.errors)


class ImportRefused(ValidationError):
    """Some rows are wrong, so nothing was imported; `errors` says which and why."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        super().__init__("导入未执行，以下行有误：\n" + "\n".join(f"第 {n} 行：{m}" for n, m in errors))


async def import_org(svc: Supervision, actor: Person, specs: Sequence[PersonSpec], channel: str) -> int:
    """Upsert units and people in one transaction; any row error means nothing changes."""
    if not actor.is_office:
        raise ValidationError("只有学校办公室可以导入组织机构。")
    if not specs:
        raise ValidationError("没有可导入的人员。")
    errors: list[tuple[int, str]] = []
    async with svc.uow(channel) as uow:
        units = {s.unit for s in specs}
        unit_ids = {name: (await uow.units.ensure(name)).id for name in sorted(units)}
        for s in specs:
            for u in s.units_in_charge:
                if u not in unit_ids:
                    existing = await uow.units.by_name(u)
                    if existing is None:
                        errors.append((s.line, f"分管单位“{u}”不存在。"))
                    else:
                        unit_ids[u] = existing.id
        if errors:
            raise ImportRefused(errors)
        for s in specs:
            try:
                await uow.people.upsert(
                    name=s.name,
                    unit_id=unit_ids[s.unit],
                    roles=s.roles,
                    wecom_id=s.wecom_id,
                    dingtalk_id=s.dingtalk_id,
                    units_in_charge=[unit_ids[u] for u in s.units_in_charge],
                    preferred_channel=Channel(s.preferred_channel),
                )
            except Exception as exc:  # a unique id already used by someone else in the database
                if isinstance(exc, DomainError):
                    raise
                raise ImportRefused([(s.line, "企业微信ID或钉钉ID与系统中其他人员重复。")]) from None
        await uow.commit()
    svc.committed()
    return len(specs)


async def import_tasks(
    svc: Supervision, actor: Person, specs: Sequence[TaskSpec], channel: str, *, commit: bool
) -> ImportResult:
    """Check every row against the organisation; with `commit`, create them as drafts awaiting the leader."""
    result = ImportResult()
    now = svc.now()
    async with svc.uow(channel) as uow:
        drafts: list[Item] = []
        for s in specs:
            try:
                lead = await uow.units.by_name(s.lead_unit)
                if lead is None:
                    raise ValidationError(f"牵头单位“{s.lead_unit}”不存在。")
                co = []
                for name in s.co_units:
                    u = await uow.units.by_name(name)
                    if u is None:
                        raise ValidationError(f"配合单位“{name}”不存在。")
                    co.append(u.id)
                leaders = [p for p in await uow.people.by_name(s.leader) if p.has(Role.LEADER)]
                if len(leaders) != 1:
                    raise ValidationError(f"分管校领导“{s.leader}”{'不存在' if not leaders else '有重名'}。")
                drafts.append(Item.create(
                    code="-", kind=ItemKind.PERIODIC, title=s.task, lead_unit_id=lead.id, deadline=s.deadline,
                    actor=actor, now=now, content=s.key_point, co_unit_ids=co, leader_id=leaders[0].id,
                    category=s.category,
                ))
            except DomainError as err:
                result.errors.append((s.line, err.message))
        if result.errors or not commit:
            return result
        for item in drafts:  # numbered only when every row is valid
            item.code = format_code(now.year, await uow.items.next_code_seq(now.year))
            events = await uow.save(item)
            await svc.queue_notices(uow, item, events, actor, now)
            result.created.append(item.code)
        await uow.commit()
    svc.committed()
    return result
