"""Chat commands and card presses → service calls → a short Chinese reply. Platform-neutral.

Full-width or half-width spaces and colons separate words; unknown or malformed input gets a usage
line, never silence and never a stack trace.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable

from bot.messages import CardPress, Incoming, Reply
from domain.codes import parse_code
from domain.errors import DomainError, ValidationError
from domain.items import Item
from domain.roles import Channel, Person, Role
from domain.views import Prompt
from handlers import actions, spotcheck
from handlers.service import Operation, Supervision
from handlers.views import detail_text, stats_text, todo_text

log = logging.getLogger("duban.chat")

UNKNOWN_USER = "您好，您尚未登记为督办系统用户，请联系学校办公室。"
PROMPT_TTL = dt.timedelta(minutes=10)

USAGE = {
    "查看": "查看 编号",
    "指派": "指派 编号 姓名",
    "签收": "签收 编号",
    "进展": "进展 编号 内容",
    "办结": "办结 编号 办理结果",
    "延期": "延期 编号 YYYY-MM-DD 理由",
    "同意": "同意 编号",
    "退回": "退回 编号 理由",
    "归档": "归档 编号",
    "催办": "催办 编号 [说明]",
    "撤销": "撤销 编号 理由",
    "通报": "通报 [@单位、单位] 内容",
}

HELP_COMMON = "待办 · 查看 编号"
HELP_BY_ROLE = {
    Role.HANDLER: "签收 编号 · 进展 编号 内容 · 办结 编号 结果 · 延期 编号 日期 理由 · 归档 编号",
    Role.PRINCIPAL: "指派 编号 姓名 · 同意 编号 · 退回 编号 理由 · 确认台账 [说明]",
    Role.LEADER: "同意 编号 · 退回 编号 理由",
    Role.OFFICE: "催办 编号 [说明] · 撤销 编号 理由 · 通报 内容 · 统计 · 抽查 · 同意/退回 编号",
}

_SPLIT = re.compile(r"[\s:：]+")
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")


def normalise(text: str) -> str:
    return text.replace("\u3000", " ").strip()


def split_words(text: str, n: int) -> list[str]:
    """Split off at most n leading words; the rest (which may hold spaces and colons) stays whole."""
    return _SPLIT.split(text, maxsplit=n) if text else []


def parse_date(text: str) -> dt.date:
    m = _DATE.match(text.strip())
    if not m:
        raise ValidationError(f"“{text}”不是日期，请写成 YYYY-MM-DD，例如 2026-12-31。")
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise ValidationError(f"日期“{text}”不存在，请核对。") from None


class ChatHandlers:
    def __init__(self, svc: Supervision, *, spot_check_units: int = 3) -> None:
        self.svc = svc
        self.spot_check_units = spot_check_units

    async def handle(self, inc: Incoming) -> Reply:
        try:
            person = await self.svc.person_for(Channel(inc.channel), inc.user_id)
            if person is None:
                log.info("unknown user", extra={"channel": inc.channel, "user": inc.user_id})
                return Reply(UNKNOWN_USER)
            if inc.press is not None:
                return await self._press(person, inc.press, inc.channel)
            return await self._text(person, normalise(inc.text or ""), inc.channel)
        except DomainError as err:
            return Reply(err.message)

    # ---- card presses -------------------------------------------------------------------------------

    async def _press(self, person: Person, press: CardPress, channel: str) -> Reply:
        kind = press.card_kind or None
        if press.action == "return":
            # the domain check runs now, so a wrong person or a stale card hears it at once
            await self._check_decision(person, press.code, kind, press.card_ref)
            expires = self.svc.now() + PROMPT_TTL
            await self.svc.ask(Prompt(person.id, press.code, kind, press.card_id or None, expires, press.card_ref))
            return Reply(f"请直接回复退回 {press.code} 的理由（{int(PROMPT_TTL.total_seconds() // 60)} 分钟内有效）。")
        if press.action == "sign":
            await self._run(person, press.code, actions.sign(), channel, "sign")
            return Reply(
                f"已签收 {press.code}。请按时办理，回复“进展 {press.code} 内容”报送进展。",
                card_update=f"已签收（{person.name}）",
                card_id=press.card_id,
            )
        item = await self._run(person, press.code, actions.decide(True, kind=kind, ref=press.card_ref), channel, "approve")
        return Reply(
            f"已同意。{press.code} 当前状态：{item.status.label}。", card_update=f"已同意（{person.name}）", card_id=press.card_id
        )

    async def _check_decision(self, person: Person, code: str, kind: str | None, ref: str = "") -> None:
        item, _, _ = await self.svc.visible_item(person, code)
        waiting = item.decisions_for(person)
        try:
            if (kind and kind not in waiting) or not waiting:
                raise ValidationError(f"事项 {code} 当前（{item.status.label}）没有待您审核的内容，本次操作未生效。")
            if kind:
                actions.check_ref(item, kind, ref)
        except DomainError as err:
            await self.svc.record_refusal(person, code, "return", err, "chat")
            raise

    async def _run(self, person: Person, code: str, op: Operation, channel: str, what: str) -> Item:
        return await self.svc.act(person, code, op, channel, what=what)

    # ---- text commands --------------------------------------------------------------------------------

    async def _text(self, person: Person, text: str, channel: str) -> Reply:
        prompt = await self.svc.take_prompt(person)
        if prompt is not None:
            if prompt.expires_at < self.svc.now():
                note = f"（您此前对 {prompt.item_code} 的退回已超时作废，如需退回请重新操作。）\n"
                reply = await self._command(person, text, channel)
                return Reply(note + reply.text)
            if text in ("取消", "算了"):
                return Reply(f"已取消对 {prompt.item_code} 的退回。")
            item = await self._run(
                person, prompt.item_code, actions.decide(False, kind=prompt.decision, reason=text, ref=prompt.ref), channel, "return"
            )
            return Reply(
                f"已退回 {prompt.item_code}，理由已转告办理单位。当前状态：{item.status.label}。",
                card_update=f"已退回（{person.name}）",
                card_id=prompt.card_id,
            )
        return await self._command(person, text, channel)

    async def _command(self, person: Person, text: str, channel: str) -> Reply:
        if not text:
            return Reply(self.help(person))
        head, *rest = split_words(text, 1)
        body = rest[0] if rest else ""
        handler = self._commands.get(head)
        if handler is None:
            return Reply(f"抱歉，没有“{head[:10]}”这个指令。\n{self.help(person)}")
        return await handler(self, person, head, body, channel)

    def help(self, person: Person) -> str:
        lines = ["可用指令：", HELP_COMMON]
        lines += [HELP_BY_ROLE[r] for r in (Role.HANDLER, Role.PRINCIPAL, Role.LEADER, Role.OFFICE) if person.has(r)]
        lines.append("编号可写全（2026-0037）或只写本年序号（37）。")
        return "\n".join(lines)

    def _code(self, word: str) -> str:
        return parse_code(word, self.svc.now().year)

    def _args(self, head: str, body: str, n: int, *, last_required: bool = True) -> list[str]:
        """Split `body` into n parts (the last keeps its spaces); a missing part is a usage error."""
        parts = split_words(body, n - 1) if body else []
        need = n if last_required else n - 1
        if len(parts) < need or any(not p for p in parts[:need]):
            raise ValidationError(f"格式：{USAGE[head]}")
        return parts + [""] * (n - len(parts))

    async def _todo(self, person: Person, head: str, body: str, channel: str) -> Reply:
        items = await self.svc.todo(person)
        return Reply(todo_text(person, items, self.svc.now(), self.svc.calendar))

    async def _help(self, person: Person, head: str, body: str, channel: str) -> Reply:
        return Reply(self.help(person))

    async def _view(self, person: Person, head: str, body: str, channel: str) -> Reply:
        (code,) = self._args(head, body, 1)
        item, names, timeline = await self.svc.visible_item(person, self._code(code))
        return Reply(detail_text(item, names, timeline, self.svc.now(), self.svc.calendar, self.svc.tz))

    async def _designate(self, person: Person, head: str, body: str, channel: str) -> Reply:
        code, name = self._args(head, body, 2)
        code = self._code(code)
        await self._run(person, code, actions.designate(name), channel, "designate")
        return Reply(f"已指派{name.strip()}办理 {code}，已通知其签收。")

    async def _sign(self, person: Person, head: str, body: str, channel: str) -> Reply:
        (code,) = self._args(head, body, 1)
        code = self._code(code)
        await self._run(person, code, actions.sign(), channel, "sign")
        return Reply(f"已签收 {code}。请按时办理，回复“进展 {code} 内容”报送进展。")

    async def _progress(self, person: Person, head: str, body: str, channel: str) -> Reply:
        code, text = self._args(head, body, 2)
        code = self._code(code)
        await self._run(person, code, actions.report_progress(text), channel, "progress")
        return Reply(f"{code} 进展已提交，单位主要负责人审核后即时展示。")

    async def _closure(self, person: Person, head: str, body: str, channel: str) -> Reply:
        code, result = self._args(head, body, 2)
        code = self._code(code)
        await self._run(person, code, actions.submit_closure(result), channel, "closure")
        return Reply(f"{code} 办结已提交，待单位主要负责人审核。")

    async def _extension(self, person: Person, head: str, body: str, channel: str) -> Reply:
        code, date_text, reason = self._args(head, body, 3)
        code, new = self._code(code), parse_date(date_text)
        await self._run(person, code, actions.request_extension(new, reason), channel, "extension")
        return Reply(f"{code} 延期申请（延至 {new.isoformat()}）已提交，待单位主要负责人和学校办公室审核。")

    async def _approve(self, person: Person, head: str, body: str, channel: str) -> Reply:
        (code,) = self._args(head, body, 1)
        code = self._code(code)
        item = await self._run(person, code, actions.decide(True), channel, "approve")
        return Reply(f"已同意。{code} 当前状态：{item.status.label}。")

    async def _return(self, person: Person, head: str, body: str, channel: str) -> Reply:
        code, reason = self._args(head, body, 2, last_required=False)
        code = self._code(code)
        if not reason.strip():
            await self._check_decision(person, code, None)
            await self.svc.ask(Prompt(person.id, code, None, None, self.svc.now() + PROMPT_TTL))
            return Reply(f"请直接回复退回 {code} 的理由（10 分钟内有效）。")
        item = await self._run(person, code, actions.decide(False, reason=reason), channel, "return")
        return Reply(f"已退回 {code}，理由已转告办理单位。当前状态：{item.status.label}。")

    async def _archive(self, person: Person, head: str, body: str, channel: str) -> Reply:
        (code,) = self._args(head, body, 1)
        code = self._code(code)
        await self._run(person, code, actions.archive(), channel, "archive")
        return Reply(f"{code} 已归档，感谢您的辛勤工作。")

    async def _urge(self, person: Person, head: str, body: str, channel: str) -> Reply:
        code, note = self._args(head, body, 2, last_required=False)
        code = self._code(code)
        await self._run(person, code, actions.urge(note), channel, "urge")
        return Reply(f"已催办 {code}，已通知办理人和单位主要负责人。")

    async def _cancel(self, person: Person, head: str, body: str, channel: str) -> Reply:
        code, reason = self._args(head, body, 2)
        code = self._code(code)
        await self._run(person, code, actions.cancel(reason), channel, "cancel")
        return Reply(f"已撤销 {code}，已通知相关单位。")

    async def _notice(self, person: Person, head: str, body: str, channel: str) -> Reply:
        if not body.strip():
            raise ValidationError(f"格式：{USAGE[head]}")
        units: list[str] = []
        if body.startswith(("@", "＠")):
            target, _, body = body[1:].partition(" ")
            units = [u for u in re.split(r"[、,，]", target) if u.strip()]
        try:
            count = await self.svc.broadcast(person, body, channel, units)
        except DomainError as err:
            # a refused action is written to the audit trail too (DESIGN §1), like item actions in svc.act
            await self.svc.record_refusal(person, None, "notice", err, channel)
            raise
        return Reply(f"通报已发送给 {count} 位单位主要负责人。")

    async def _stats(self, person: Person, head: str, body: str, channel: str) -> Reply:
        if not (person.is_office or person.has(Role.LEADER)):
            raise ValidationError("统计仅向学校办公室和校领导提供。")
        return Reply(stats_text(await self.svc.statistics()))

    async def _spot_check(self, person: Person, head: str, body: str, channel: str) -> Reply:
        d = await spotcheck.draw(self.svc, person, self.spot_check_units, channel)
        _, people = await spotcheck.current(self.svc)
        prefix = "已随机抽取并通知以下单位。\n" if d.new else ""
        return Reply(prefix + spotcheck.summary_text(d, people))

    async def _confirm_ledger(self, person: Person, head: str, body: str, channel: str) -> Reply:
        month = await spotcheck.confirm(self.svc, person, body, channel)
        return Reply(f"已收到贵单位 {month} 台账确认，感谢配合。")

    _commands: dict[str, Callable[[ChatHandlers, Person, str, str, str], Awaitable[Reply]]] = {
        "帮助": _help,
        "help": _help,
        "待办": _todo,
        "我的督办": _todo,
        "查看": _view,
        "指派": _designate,
        "签收": _sign,
        "进展": _progress,
        "办结": _closure,
        "延期": _extension,
        "同意": _approve,
        "退回": _return,
        "归档": _archive,
        "催办": _urge,
        "撤销": _cancel,
        "通报": _notice,
        "统计": _stats,
        "抽查": _spot_check,
        "确认台账": _confirm_ledger,
    }
