"""The JSON API for the OA system and office tools (DESIGN §4).

The bearer token acts with the office's rights. Bodies are checked field by field before anything is
written; every error is `{"error": code, "message": 中文说明}` with a 4xx status.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.openapi import OPENAPI
from domain.codes import parse_code
from domain.errors import ConfidentialRefused, DomainError, NotFound, ValidationError
from domain.items import Item, ItemKind, Status
from domain.ledger import LedgerEntry
from domain.roles import SYSTEM_OFFICE, Role, parse_roles
from handlers import actions
from handlers.org import PersonSpec, import_org
from handlers.service import NewItem, Supervision
from domain.timing import assess
from handlers.views import EVENT_LABELS, summary_timing

log = logging.getLogger("duban.api")

SVC = web.AppKey("supervision", Supervision)
TOKEN = web.AppKey("api_token", str)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn every failure into a JSON error a person can read; never leak a stack trace."""
    try:
        return await handler(request)
    except DomainError as err:
        return json_error(err.http_status, err.code, err.message)
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "too_large", "请求内容过大。")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        messages = {404: "请求的地址不存在。", 405: "不支持该请求方法。"}
        return json_error(exc.status, "http_error", messages.get(exc.status, exc.reason))
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return json_error(500, "internal", "服务器内部错误，请稍后再试。")


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path.startswith("/api/v1/") and request.path != "/api/v1/openapi.json":
        token = request.app[TOKEN]
        if not token:
            return json_error(503, "api_disabled", "接口未启用：服务端未配置 DUBAN_API_TOKEN。")
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), token.encode()):
            return json_error(401, "unauthorized", "缺少或错误的访问令牌。")
    return await handler(request)


# ---- body checking -----------------------------------------------------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # client_max_size enforces the size limit (413)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ValidationError("请求体不是有效的 JSON。", code="malformed_json") from None
    if not isinstance(data, dict):
        raise ValidationError("请求体应为 JSON 对象。", code="malformed_json")
    return data


class Fields:
    """Typed access to a JSON object that refuses unknown keys, so a misspelt field is never ignored."""

    def __init__(self, data: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValidationError(f"未知字段：{', '.join(unknown)}。")
        self.d = data

    def text(self, key: str, label: str, *, required: bool = False, default: str = "") -> str:
        v = self.d.get(key, None)
        if v is None or v == "":
            if required:
                raise ValidationError(f"缺少{label}（{key}）。")
            return default
        if not isinstance(v, str):
            raise ValidationError(f"{label}（{key}）应为字符串。")
        return v

    def texts(self, key: str, label: str) -> list[str]:
        v = self.d.get(key, [])
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise ValidationError(f"{label}（{key}）应为非空字符串数组。")
        return [x.strip() for x in v]

    def date(self, key: str, label: str) -> dt.date:
        v = self.text(key, label, required=True)
        if not _DATE.match(v):
            raise ValidationError(f"{label}（{key}）应为 YYYY-MM-DD 格式的日期，收到“{v[:20]}”。")
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            raise ValidationError(f"{label}（{key}）“{v}”不是存在的日期。") from None

    def flag(self, key: str, label: str) -> bool:
        v = self.d.get(key, False)
        if not isinstance(v, bool):
            raise ValidationError(f"{label}（{key}）应为 true 或 false。")
        return v


def _code(request: web.Request) -> str:
    return parse_code(request.match_info["code"], request.app[SVC].now().year)


# ---- items --------------------------------------------------------------------------------------------

ITEM_FIELDS = {
    "kind", "title", "content", "source_title", "source_number", "lead_unit", "co_units", "deadline",
    "leader", "handler", "confidential", "category",
}


async def create_item(request: web.Request) -> web.Response:
    data = await _body(request)
    if data.get("confidential") is True:
        # refuse before reading anything else of it: nothing of a confidential item is stored or echoed
        raise_confidential()
    f = Fields(data, ITEM_FIELDS)
    kind_text = f.text("kind", "类别", required=True)
    try:
        kind = ItemKind(kind_text)
    except ValueError:
        raise ValidationError("类别（kind）应为 incoming（来文督办）、special（专项督办）或 periodic（定期督办）。") from None
    req = NewItem(
        kind=kind,
        title=f.text("title", "事项标题", required=True),
        lead_unit=f.text("lead_unit", "牵头单位", required=True),
        deadline=f.date("deadline", "办结时限"),
        content=f.text("content", "事项内容"),
        source_title=f.text("source_title", "来文名称"),
        source_number=f.text("source_number", "文号"),
        co_units=f.texts("co_units", "配合单位"),
        leader=f.text("leader", "分管校领导") or None,
        handler=f.text("handler", "办理人") or None,
        confidential=f.flag("confidential", "涉密标记"),
        category=f.text("category", "分类"),
    )
    svc = request.app[SVC]
    item = await svc.create_item(SYSTEM_OFFICE, req, "api")
    return ok(await _item_json(svc, item), status=201)


def raise_confidential() -> None:
    raise ConfidentialRefused()


async def _item_json(svc: Supervision, item: Item, timeline: bool = False) -> dict[str, Any]:
    async with svc.uow.reader() as uow:
        names = await svc.names_for(uow, item)
        events = await uow.events.timeline(item.id or 0) if timeline else []
        extra = await uow.people.many({e.actor_id for e in events if e.actor_id} - set(names.people))
    names.people.update({k: v.name for k, v in extra.items()})
    t = assess(item, svc.now(), svc.calendar)
    out: dict[str, Any] = {
        "code": item.code,
        "kind": item.kind.value,
        "title": item.title,
        "content": item.content,
        "source_title": item.source_title,
        "source_number": item.source_number,
        "category": item.category,
        "status": item.status.value,
        "status_label": item.status.label,
        "deadline": item.deadline.isoformat(),
        "lead_unit": names.unit(item.lead_unit_id),
        "co_units": [names.unit(b.unit_id) for b in item.branches[1:]],
        "leader": names.person(item.leader_id) if item.leader_id else None,
        "branches": [
            {
                "unit": names.unit(b.unit_id),
                "lead": b.is_lead,
                "handler": names.person(b.handler_id) if b.handler_id else None,
                "status": b.status.value,
            }
            for b in item.branches
        ],
        "progress": [
            {"unit": names.unit(p.unit_id), "text": p.text, "at": p.created_at.isoformat(), "status": p.status.value}
            for p in item.progress
        ],
        "extensions": [
            {"new_deadline": e.new_deadline.isoformat(), "reason": e.reason, "status": e.status.value}
            for e in item.extensions
        ],
        "closure_result": item.closure_result,
        "overdue": t.overdue,
        "due_soon": t.due_soon,
        "slow": t.slow,
        "mark": t.mark,
        "urge_count": item.urge_count,
        "return_count": item.return_count,
        "created_at": item.created_at.isoformat(),
        "closed_at": item.closed_at.isoformat() if item.closed_at else None,
    }
    if timeline:
        out["timeline"] = [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "label": EVENT_LABELS.get(e.kind, e.kind),
                "actor": names.person(e.actor_id) if e.actor_id else "系统",
                "channel": e.channel,
                "payload": e.payload,
            }
            for e in events
        ]
    return out


def _int_param(request: web.Request, key: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValidationError(f"参数 {key} 应为 {lo} 到 {hi} 之间的整数。")
    return int(raw)


async def list_items(request: web.Request) -> web.Response:
    svc = request.app[SVC]
    q = request.query
    statuses = None
    if "status" in q:
        try:
            statuses = [Status(s) for s in q["status"].split(",")]
        except ValueError:
            raise ValidationError("参数 status 含有无法识别的状态。") from None
    kind = None
    if "kind" in q:
        try:
            kind = ItemKind(q["kind"])
        except ValueError:
            raise ValidationError("参数 kind 应为 incoming、special 或 periodic。") from None
    async with svc.uow.reader() as uow:
        unit_id = None
        if "unit" in q:
            unit = await uow.units.by_name(q["unit"])
            if unit is None:
                raise NotFound(f"未找到单位“{q['unit']}”。")
            unit_id = unit.id
        rows = await uow.items.list(
            statuses=statuses,
            unit_id=unit_id,
            kind=kind,
            limit=_int_param(request, "limit", 100, 1, 500),
            offset=_int_param(request, "offset", 0, 0, 10**9),
        )
        units = await uow.units.names(r.lead_unit_id for r in rows)
    now = svc.now()
    return ok(
        {
            "items": [
                {
                    "code": r.code,
                    "kind": r.kind.value,
                    "title": r.title,
                    "status": r.status.value,
                    "status_label": r.status.label,
                    "deadline": r.deadline.isoformat(),
                    "lead_unit": units.get(r.lead_unit_id),
                    "overdue": summary_timing(r, now, svc.calendar).overdue,
                }
                for r in rows
            ]
        }
    )


async def get_item(request: web.Request) -> web.Response:
    svc = request.app[SVC]
    code = _code(request)
    async with svc.uow.reader() as uow:
        item = await uow.items.get(code)
    if item is None:
        raise NotFound(f"未找到督办事项 {code}。")
    return ok(await _item_json(svc, item, timeline=True))


async def urge_item(request: web.Request) -> web.Response:
    f = Fields(await _body(request), {"note"})
    svc = request.app[SVC]
    item = await svc.act(SYSTEM_OFFICE, _code(request), actions.urge(f.text("note", "催办说明")), "api", what="urge")
    return ok({"code": item.code, "urge_count": item.urge_count})


async def cancel_item(request: web.Request) -> web.Response:
    f = Fields(await _body(request), {"reason"})
    reason = f.text("reason", "撤销理由", required=True)
    svc = request.app[SVC]
    item = await svc.act(SYSTEM_OFFICE, _code(request), actions.cancel(reason), "api", what="cancel")
    return ok({"code": item.code, "status": item.status.value})


# ---- notices, stats, org, ledger ----------------------------------------------------------------------


async def post_notice(request: web.Request) -> web.Response:
    f = Fields(await _body(request), {"text", "units"})
    svc = request.app[SVC]
    count = await svc.broadcast(SYSTEM_OFFICE, f.text("text", "通报内容", required=True), "api", f.texts("units", "单位"))
    return ok({"recipients": count}, status=201)


async def get_stats(request: web.Request) -> web.Response:
    rows = await request.app[SVC].statistics()
    return ok({"units": [r.as_dict() for r in rows]})


async def post_org(request: web.Request) -> web.Response:
    f = Fields(await _body(request), {"people"})
    people = f.d.get("people")
    if not isinstance(people, list) or not people:
        raise ValidationError("people 应为非空数组。")
    specs: list[PersonSpec] = []
    errors: list[str] = []
    for i, p in enumerate(people, start=1):
        try:
            if not isinstance(p, dict):
                raise ValidationError("应为对象。")
            pf = Fields(p, {"unit", "name", "roles", "wecom_id", "dingtalk_id", "units_in_charge", "preferred_channel"})
            roles_v = pf.d.get("roles")
            roles_text = "、".join(pf.texts("roles", "角色")) if isinstance(roles_v, list) else pf.text("roles", "角色", required=True)
            roles = parse_roles(roles_text)
            wecom, ding = pf.text("wecom_id", "企业微信ID") or None, pf.text("dingtalk_id", "钉钉ID") or None
            if not (wecom or ding):
                raise ValidationError("企业微信ID和钉钉ID至少填写一个。")
            in_charge = tuple(pf.texts("units_in_charge", "分管单位"))
            if in_charge and Role.LEADER not in roles:
                raise ValidationError("只有校领导可以填写分管单位。")
            channel = pf.text("preferred_channel", "首选渠道", default="wecom")
            if channel not in ("wecom", "dingtalk"):
                raise ValidationError("首选渠道应为 wecom 或 dingtalk。")
            specs.append(
                PersonSpec(
                    unit=_required_text(pf, "unit", "单位").strip(),
                    name=_required_text(pf, "name", "姓名").strip(),
                    roles=roles,
                    wecom_id=wecom,
                    dingtalk_id=ding,
                    units_in_charge=in_charge,
                    preferred_channel=channel,
                    line=i,
                )
            )
        except DomainError as err:
            errors.append(f"第 {i} 人：{err.message}")
    if errors:
        raise ValidationError("导入未执行：\n" + "\n".join(errors))
    count = await import_org(request.app[SVC], SYSTEM_OFFICE, specs, "api")
    return ok({"imported": count})


async def post_ledger(request: web.Request) -> web.Response:
    data = await _body(request)
    if data.get("confidential") is True:
        raise_confidential()
    f = Fields(data, {"unit", "doc_title", "doc_number", "responsible", "deadline", "summary", "confidential"})
    svc = request.app[SVC]
    async with svc.uow.reader() as uow:
        unit = await uow.units.by_name(f.text("unit", "单位", required=True))
    if unit is None:
        raise ValidationError(f"未找到单位“{f.d['unit']}”。")
    now = svc.now()
    entry = LedgerEntry.create(
        unit_id=unit.id,
        doc_title=f.text("doc_title", "来文名称", required=True),
        doc_number=f.text("doc_number", "文号", required=True),
        responsible=f.text("responsible", "责任人", required=True),
        deadline=f.date("deadline", "办结时限"),
        summary=_required_text(f, "summary", "办理情况摘要"),
        now=now,
        confidential=f.flag("confidential", "涉密标记"),
    )
    await svc.add_ledger_entry(SYSTEM_OFFICE, entry, "api")
    return ok({"id": entry.id}, status=201)


def _required_text(f: Fields, key: str, label: str) -> str:
    v = f.text(key, label, required=True)
    if not v.strip():
        raise ValidationError(f"{label}（{key}）不能为空。")
    return v


async def get_ledger(request: web.Request) -> web.Response:
    svc = request.app[SVC]
    name = request.query.get("unit", "").strip()
    if not name:
        raise ValidationError("缺少参数 unit（单位名称）。")
    async with svc.uow.reader() as uow:
        unit = await uow.units.by_name(name)
        if unit is None:
            raise NotFound(f"未找到单位“{name}”。")
        entries = await uow.ledger.for_unit(unit.id)
    return ok(
        {
            "unit": unit.name,
            "entries": [
                {
                    "doc_title": e.doc_title,
                    "doc_number": e.doc_number,
                    "responsible": e.responsible,
                    "deadline": e.deadline.isoformat(),
                    "summary": e.summary,
                }
                for e in entries
            ],
        }
    )


async def openapi(request: web.Request) -> web.Response:
    return ok(OPENAPI)


async def healthz(request: web.Request) -> web.Response:
    return ok({"status": "ok"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_post("/api/v1/items", create_item)
    app.router.add_get("/api/v1/items", list_items)
    app.router.add_get("/api/v1/items/{code}", get_item)
    app.router.add_post("/api/v1/items/{code}/urge", urge_item)
    app.router.add_post("/api/v1/items/{code}/cancel", cancel_item)
    app.router.add_post("/api/v1/notices", post_notice)
    app.router.add_get("/api/v1/stats", get_stats)
    app.router.add_post("/api/v1/org", post_org)
    app.router.add_post("/api/v1/ledger", post_ledger)
    app.router.add_get("/api/v1/ledger", get_ledger)
