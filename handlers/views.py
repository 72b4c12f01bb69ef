"""Read-only answers: 待办, 查看, 统计 — short enough to read on a phone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from domain.calendar import WorkCalendar
from domain.items import Item, ProgressStatus, Status
from domain.roles import Person
from domain.stats import UnitStats
from domain.timing import GREEN, RED, YELLOW, Timing, assess
from domain.views import ItemSummary, TimelineEntry
from handlers.render import Names

EVENT_LABELS = {
    "created": "交办",
    "draft_approved": "立项审核通过",
    "draft_returned": "立项退回",
    "designated": "指派办理人",
    "signed": "签收",
    "progress_reported": "报送进展",
    "progress_published": "进展审核发布",
    "progress_returned": "进展退回",
    "closure_submitted": "提交办结",
    "closure_approved": "办结审核同意",
    "closure_returned": "办结退回",
    "extension_requested": "申请延期",
    "extension_agreed_by_principal": "单位同意延期",
    "extension_approved": "延期批准",
    "extension_refused": "延期未获同意",
    "urged": "催办",
    "cancelled": "撤销",
    "archived": "归档",
    "refused": "操作被拒绝",
    "reminded": "自动提醒",
}


def summary_timing(s: ItemSummary, now: dt.datetime, cal: WorkCalendar) -> Timing:
    today = now.date()
    left = cal.workdays_between(today, s.deadline)
    overdue = s.status.is_open and today > s.deadline
    due_soon = s.status.is_open and not overdue and left <= 3
    return Timing(overdue, due_soon, False, left)


def todo_text(person: Person, items: Iterable[ItemSummary], now: dt.datetime, cal: WorkCalendar) -> str:
    rows = list(items)
    if not rows:
        return f"{person.name}，您目前没有待办的督办事项。"
    lines = [f"{person.name}，您有 {len(rows)} 项督办事项："]
    for s in rows:
        t = summary_timing(s, now, cal)
        mark = t.mark if s.status.is_open else YELLOW
        title = s.title if len(s.title) <= 18 else s.title[:17] + "…"
        due = f"{s.deadline:%m-%d}" + (f" {t.describe()}" if s.status.is_open else "")
        lines.append(f"{mark} {s.code} {title}｜{s.status.label}｜{due}")
    lines.append(f"{GREEN}正常 {YELLOW}临近或待审 {RED}逾期。回复“查看 编号”看详情。")
    return "\n".join(lines)


def detail_text(
    item: Item, names: Names, timeline: list[TimelineEntry], now: dt.datetime, cal: WorkCalendar, tz: dt.tzinfo
) -> str:
    t = assess(item, now, cal)
    lines = [
        f"{t.mark if item.status.is_open else '📁'} {item.code}《{item.title}》",
        f"{item.kind.label}｜{item.status.label}｜办结时限 {item.deadline.isoformat()}"
        + (f"（{t.describe()}）" if item.status.is_open else ""),
        f"牵头：{names.unit(item.lead_unit_id)}（办理人 {names.person(item.lead_branch.handler_id)}）",
    ]
    if len(item.branches) > 1:
        co = "、".join(f"{names.unit(b.unit_id)}（{names.person(b.handler_id)}）" for b in item.branches[1:])
        lines.append(f"配合：{co}")
    if item.source_title:
        lines.append(f"来文：{item.source_title} {item.source_number}".rstrip())
    published = [p for p in item.progress if p.status is ProgressStatus.PUBLISHED]
    if published:
        lines.append("进展：")
        for p in published[-3:]:
            lines.append(f"· {p.created_at.astimezone(tz):%m-%d} {names.unit(p.unit_id)}：{p.text[:60]}")
    if item.closure_result and item.status in (Status.UNIT_REVIEW, Status.OFFICE_REVIEW, Status.LEADER_REVIEW, Status.CLOSED, Status.ARCHIVED):
        lines.append(f"办理结果：{item.closure_result[:120]}")
    if item.last_return_reason and item.status is Status.IN_PROGRESS:
        lines.append(f"最近退回理由：{item.last_return_reason}")
    if item.cancel_reason:
        lines.append(f"撤销理由：{item.cancel_reason}")
    recent = [e for e in timeline if e.kind != "refused"][-4:]
    if recent:
        lines.append("最近记录：" + "；".join(
            f"{e.at.astimezone(tz):%m-%d %H:%M} {names.person(e.actor_id) if e.actor_id else '系统'}{EVENT_LABELS.get(e.kind, e.kind)}"
            for e in recent
        ))
    return "\n".join(lines)


def stats_text(rows: list[UnitStats]) -> str:
    if not rows:
        return "暂无督办统计数据。"
    lines = ["督办统计（单位｜总数｜办理中｜按期办结｜逾期办结｜当前逾期｜催办｜退回）："]
    for r in rows:
        lines.append(
            f"{r.unit}｜{r.total}｜{r.in_progress}｜{r.closed_on_time}｜{r.closed_late}｜{r.overdue_now}｜{r.urged}｜{r.returned}"
        )
    return "\n".join(lines)
