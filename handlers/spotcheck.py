"""抽查 (第十一条): the office draws units at random each month and asks each drawn unit's principal to
confirm that its 《来文落实情况办理台账》 is current; the answers go into the office's summary."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from bot.messages import OutMessage
from domain.errors import DomainError, PermissionDenied, ValidationError
from domain.items import ItemEvent
from domain.permissions import require_office
from domain.roles import Person, Role
from domain.views import SpotCheck
from handlers.service import Supervision


def month_of(now: dt.datetime) -> str:
    return f"{now:%Y-%m}"


@dataclass(frozen=True)
class Draw:
    month: str
    checks: list[SpotCheck]
    unit_names: dict[int, str]
    new: bool


async def draw(svc: Supervision, actor: Person, count: int, channel: str, rng: random.Random | None = None) -> Draw:
    """Draw `count` units for this month, once: a second call (or a second replica) shows the same draw."""
    try:
        require_office(actor, "抽查台账")
    except DomainError as err:
        await svc.record_refusal(actor, None, "spot_check", err, channel)  # refusals go to the audit trail (DESIGN §1)
        raise
    now = svc.now()
    month = month_of(now)
    rng = rng or random.SystemRandom()
    async with svc.uow(channel) as uow:
        existing = await uow.jobs.checks_for(month)
        names = {u.id: u.name for u in await uow.units.all()}
        if existing:
            return Draw(month, existing, names, new=False)
        if not await uow.jobs.claim_run(f"spotcheck:{month}", now):
            # Another replica (the monthly job) or a concurrent 抽查 drew this month just now: on PostgreSQL
            # the claim waited for its commit, so its draw is visible here. Without the claim both would
            # insert their own random units and one would fail on the unique (month, unit) constraint.
            return Draw(month, await uow.jobs.checks_for(month), names, new=False)
        principals = await uow.people.with_role(Role.PRINCIPAL)
        by_unit: dict[int, list[Person]] = {}
        for p in principals:
            by_unit.setdefault(p.unit_id, []).append(p)
        if not by_unit:
            raise ValidationError("没有可抽查的单位（尚无单位主要负责人）。")
        drawn = rng.sample(sorted(by_unit), min(count, len(by_unit)))
        counts = await uow.jobs.ledger_counts()
        await uow.jobs.add_checks(month, {u: counts.get(u, 0) for u in drawn}, now)
        await uow.events.record(None, [ItemEvent("spot_check_drawn", actor.id or None, now,
                                                 {"month": month, "units": [names[u] for u in drawn]})], channel)
        rows = []
        for u in drawn:
            text = (
                f"【台账抽查】学校办公室 {now.month} 月抽查贵单位《来文落实情况办理台账》（现有 {counts.get(u, 0)} 条）。"
                "请核对台账是否及时更新，确认后回复“确认台账”；如有情况说明，请回复“确认台账 说明”。"
            )
            for p in by_unit[u]:
                rows.append((f"spotcheck:{month}:{p.id}", p.id, OutMessage(text=text, title="台账抽查", notice=True).to_dict()))
        await uow.outbox.add(rows, now)
        checks = await uow.jobs.checks_for(month)
        await uow.commit()
    svc.committed()
    return Draw(month, checks, names, new=True)


async def confirm(svc: Supervision, person: Person, note: str, channel: str) -> str:
    try:
        return await _confirm(svc, person, note, channel)
    except DomainError as err:
        await svc.record_refusal(person, None, "confirm_ledger", err, channel)  # refusals go to the audit trail
        raise


async def _confirm(svc: Supervision, person: Person, note: str, channel: str) -> str:
    if not person.has(Role.PRINCIPAL):
        raise PermissionDenied("只有单位主要负责人可以确认台账。")
    now = svc.now()
    month = month_of(now)
    async with svc.uow(channel) as uow:
        done = await uow.jobs.answer(month, person.unit_id, person.id, note.strip() or "已核对，台账为最新。", now)
        if not done:
            raise ValidationError("本月未抽查贵单位的台账，无需确认。")
        await uow.events.record(None, [ItemEvent("spot_check_answered", person.id, now, {"month": month, "note": note})], channel)
        await uow.commit()
    svc.committed()
    return month


def summary_text(d: Draw, people: dict[int, str]) -> str:
    if not d.checks:
        return f"{d.month} 尚未抽查。"
    answered = sum(1 for c in d.checks if c.answered_at)
    lines = [f"{d.month} 台账抽查：共 {len(d.checks)} 个单位，已确认 {answered} 个。"]
    for c in d.checks:
        state = f"已确认（{people.get(c.answered_by or 0, '')}：{(c.answer or '')[:40]}）" if c.answered_at else "待确认"
        lines.append(f"· {d.unit_names.get(c.unit_id, '?')}｜台账 {c.ledger_entries} 条｜{state}")
    return "\n".join(lines)


async def current(svc: Supervision) -> tuple[Draw, dict[int, str]]:
    month = month_of(svc.now())
    async with svc.uow.reader() as uow:
        checks = await uow.jobs.checks_for(month)
        names = {u.id: u.name for u in await uow.units.all()}
        people = await uow.people.many(c.answered_by for c in checks if c.answered_by)
    return Draw(month, checks, names, new=False), {pid: p.name for pid, p in people.items()}
