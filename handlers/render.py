"""What people read: every notice rendered as a short, polite Chinese message, with buttons where the
recipient has a decision to make and the matching text commands for platforms where no card can be sent."""

from __future__ import annotations

from dataclasses import dataclass

from bot.messages import Button, OutMessage
from domain.items import Item
from domain.notifications import CardKind, Notice

SIGN = (Button("签收", "sign"),)
REVIEW = (Button("同意", "approve"), Button("退回", "return"))


@dataclass(frozen=True)
class Names:
    units: dict[int, str]
    people: dict[int, str]

    def unit(self, uid: int) -> str:
        return self.units.get(uid, "（未知单位）")

    def person(self, pid: int | None) -> str:
        return self.people.get(pid, "未指派") if pid is not None else "未指派"


def _clip(text: str, n: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def item_fields(item: Item, names: Names) -> tuple[tuple[str, str], ...]:
    co = "、".join(names.unit(b.unit_id) for b in item.branches[1:])
    fields = [("类别", item.kind.label), ("牵头单位", names.unit(item.lead_unit_id))]
    if co:
        fields.append(("配合单位", co))
    fields.append(("办结时限", item.deadline.isoformat()))
    return tuple(fields)


def render_notice(n: Notice, item: Item, names: Names) -> OutMessage:
    code, d = item.code, n.data
    head = f"{code}《{_clip(item.title, 40)}》"
    fields = item_fields(item, names)
    card = n.card
    if card is CardKind.DRAFT:
        return _card(
            "立项审核",
            f"【立项审核】定期督办事项 {head} 待您审核，牵头单位{names.unit(item.lead_unit_id)}，"
            f"完成时限 {item.deadline.isoformat()}。",
            f"请回复“同意 {code}”或“退回 {code} 理由”。",
            item,
            fields,
            card,
        )
    if card is CardKind.SIGN:
        return _card(
            "请签收督办事项",
            f"【请签收】{head}已指派您办理，办结时限 {item.deadline.isoformat()}。",
            f"请回复“签收 {code}”。",
            item,
            fields,
            card,
            buttons=SIGN,
        )
    if card is CardKind.PROGRESS:
        return _card(
            "进展待审核",
            f"【进展待审核】{head}{names.person(_int(d.get('actor_id')))}报送进展：{_clip(d.get('text', ''))}",
            f"审核后即时展示。请回复“同意 {code}”或“退回 {code} 理由”。",
            item,
            fields,
            card,
        )
    if card is CardKind.CLOSURE:
        stage = {"closure_submitted": "办理人已提交办结"}.get(n.kind, "上一环节已审核同意")
        return _card(
            "办结待审核",
            f"【办结待审核】{head}{stage}。办理结果：{_clip(item.closure_result or '')}",
            f"请回复“同意 {code}”或“退回 {code} 理由”。",
            item,
            fields,
            card,
        )
    if card is CardKind.EXTENSION:
        ext = item.pending_extension
        new = ext.new_deadline.isoformat() if ext else d.get("new_deadline", "")
        reason = ext.reason if ext else d.get("reason", "")
        stage = "（单位已同意）" if n.kind == "extension_agreed_by_principal" else ""
        return _card(
            "延期申请",
            f"【延期申请】{head}申请将办结时限由 {item.deadline.isoformat()} 延至 {new}{stage}，理由：{_clip(reason)}",
            f"请回复“同意 {code}”或“退回 {code} 理由”。",
            item,
            fields,
            card,
        )
    return OutMessage(text=_plain(n, item, head, names), title="督办提醒", item_code=code)


def _int(v: object) -> int | None:
    return v if isinstance(v, int) else None


def _card(
    title: str,
    body: str,
    commands: str,
    item: Item,
    fields: tuple[tuple[str, str], ...],
    card: CardKind,
    buttons: tuple[Button, ...] = REVIEW,
) -> OutMessage:
    unit = None
    if card is CardKind.PROGRESS:
        unit = next((p.unit_id for p in reversed(item.progress) if p.status.value == "pending"), None)
    return OutMessage(
        text=f"{body}\n{commands}",
        title=title,
        fields=fields,
        buttons=buttons,
        item_code=item.code,
        card_kind=card.value,
        ref=item.decision_ref(card.value, unit),
    )


def _plain(n: Notice, item: Item, head: str, names: Names) -> str:
    code, d, k = item.code, n.data, n.kind
    if k in ("created", "draft_approved"):
        role = "牵头" if n.recipient.id == item.lead_unit_id else "配合"
        return (
            f"【新督办事项】{head}已交贵单位{role}办理，办结时限 {item.deadline.isoformat()}。"
            f"请指派专人：回复“指派 {code} 姓名”。"
        )
    if k == "draft_returned":
        return f"定期督办事项 {head}被校领导退回：{d.get('reason', '')}。请修改任务台账后重新报审。"
    if k == "progress_published":
        return f"您报送的 {head}进展已审核发布。"
    if k == "progress_returned":
        return f"您报送的 {head}进展被退回：{d.get('reason', '')}。请修改后重新报送。"
    if k == "closure_approved":
        return f"{head}已办结。请办理人按一事一结要求整理过程材料，回复“归档 {code}”。"
    if k == "closure_returned":
        return f"{head}办结被退回：{d.get('reason', '')}。请继续办理后重新提交。"
    if k == "extension_approved":
        return f"{head}延期已批准，新的办结时限为 {d.get('new', item.deadline.isoformat())}。"
    if k == "extension_refused":
        return f"{head}延期申请未获同意：{d.get('reason', '')}。原办结时限 {item.deadline.isoformat()} 不变。"
    if k == "urged":
        note = f"{d['note']}。" if d.get("note") else ""
        return f"【催办】{head}办结时限 {item.deadline.isoformat()}，请抓紧办理并及时报送进展。{note}"
    if k == "cancelled":
        return f"{head}已由学校办公室撤销：{d.get('reason', '')}。"
    return f"{head}有新的变化，请回复“查看 {code}”了解详情。"
