"""The JSON API (DESIGN §4) over real HTTP, and the procedure of DESIGN §2 walked through by chat commands.

Every test runs on SQLite and on PostgreSQL (the `db_url` fixture behind `runtime`). The app is the real
aiohttp application of `bot.app.build_app`; people act in chat through `runtime.chat.handle` exactly as a
WeCom message would arrive after verification and parsing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot import api
from bot.app import Runtime, build_app
from bot.messages import Incoming
from bot.settings import Settings
from domain.stats import COLUMNS
from storage.models import Base, EventRow, ItemRow, OutboxRow

from conftest import API_TOKEN, FakeClock

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CJK = re.compile(r"[\u4e00-\u9fff]")

# wecom ids of the conftest ORG
OFFICE, LEADER, LEADER2 = "zhou", "li", "wang"
JW_PRINCIPAL, JW_HANDLER, JW_HANDLER2 = "chen", "zhang", "liu"
KY_PRINCIPAL, KY_HANDLER = "zhao", "sun"


# ---- fixtures and helpers ------------------------------------------------------------------------------


@pytest.fixture
async def client(runtime: Runtime, org: dict[str, int]) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(runtime))) as c:
        yield c


class Chat:
    """People typing in WeCom; each message gets a fresh event key and one minute passes."""

    def __init__(self, runtime: Runtime, clock: FakeClock) -> None:
        self.runtime, self.clock = runtime, clock
        self.keys = itertools.count(1)

    async def __call__(self, who: str, text: str, *, tick: bool = True) -> str:
        if tick:
            self.clock.advance(minutes=1)
        reply = await self.runtime.chat.handle(Incoming("wecom", who, f"evt-{next(self.keys)}", text=text))
        assert reply.text, "the bot never stays silent"
        assert "Traceback" not in reply.text
        return reply.text


@pytest.fixture
def chat(runtime: Runtime, clock: FakeClock) -> Chat:
    return Chat(runtime, clock)


async def dump(runtime: Runtime) -> dict[str, list[str]]:
    """Every row of every table, to prove a refused request wrote nothing at all."""
    out: dict[str, list[str]] = {}
    async with runtime.svc.uow.reader() as uow:
        for table in Base.metadata.sorted_tables:
            rows = (await uow.session.execute(select(table))).all()
            out[table.name] = sorted(repr(tuple(r)) for r in rows)
    return out


def assert_only_refusals_added(before: dict[str, list[str]], after: dict[str, list[str]]) -> None:
    """A refused action changes nothing but the audit trail, which records the refusal (DESIGN §1)."""
    assert {k: v for k, v in after.items() if k != "events"} == {k: v for k, v in before.items() if k != "events"}
    added = sorted(set(after["events"]) - set(before["events"]))
    assert set(before["events"]) <= set(after["events"])
    assert all("'refused'" in e for e in added), added


async def count(runtime: Runtime, model: Any) -> int:
    async with runtime.svc.uow.reader() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(model))).scalar_one())


async def outbox(runtime: Runtime) -> list[tuple[int | None, str, dict[str, Any]]]:
    async with runtime.svc.uow.reader() as uow:
        rows = (await uow.session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars().all()
        return [(r.recipient_id, r.dedup_key, r.payload) for r in rows]


async def outbox_for(runtime: Runtime, person_id: int, code: str | None = None) -> list[dict[str, Any]]:
    return [p for rid, _, p in await outbox(runtime) if rid == person_id and (code is None or p.get("item_code") == code)]


def actions(payload: dict[str, Any]) -> list[str]:
    return [b["action"] for b in payload.get("buttons", [])]


async def assert_error(resp: Any, status: int, *, contains: str | None = None) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert CJK.search(body["message"]), f"message should be Chinese: {body['message']!r}"
    assert "Traceback" not in body["message"]
    if contains is not None:
        assert contains in body["message"], body["message"]
    return body


def new_item(kind: str = "special", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": kind,
        "title": f"{kind} 事项：推进本科教学审核评估整改",
        "content": "按校长办公会议定事项推进。",
        "lead_unit": "教务处",
        "deadline": "2026-04-30",
    }
    if kind == "incoming":
        body.update(source_title="教育部关于做好2026年本科教学工作的通知", source_number="教高函〔2026〕3号")
    if kind == "periodic":
        body.update(leader="李校长", category="年度工作要点")
    body.update(kw)
    return body


async def create(client: TestClient, kind: str = "special", **kw: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/items", json=new_item(kind, **kw), headers=AUTH)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def get_item(client: TestClient, code: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/items/{code}", headers=AUTH)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def status(client: TestClient, code: str) -> str:
    return (await get_item(client, code))["status"]


# ---- health, OpenAPI, auth -----------------------------------------------------------------------------


async def test_healthz_needs_no_token(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_openapi_is_public_and_lists_every_route(client: TestClient) -> None:
    resp = await client.get("/api/v1/openapi.json")  # no token
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"

    def routes(app: web.Application) -> set[tuple[str, str]]:
        return {
            (r.resource.canonical, r.method.lower())
            for r in app.router.routes()
            if r.method != "HEAD" and r.resource is not None
        }

    ours = {r for r in routes(client.server.app) if r[0].startswith("/api/") or r[0] == "/healthz"}
    assert ("/api/v1/items", "post") in ours and ("/healthz", "get") in ours and ("/api/v1/outbox", "get") in ours
    assert len(ours) == 14
    for path, method in sorted(ours):
        assert path in doc["paths"], f"{path} missing from the OpenAPI document"
        assert method in doc["paths"][path], f"{method.upper()} {path} missing from the OpenAPI document"
        if path not in ("/healthz", "/api/v1/openapi.json"):
            op = doc["paths"][path][method]
            assert "401" in op["responses"] and "400" in op["responses"]
    # and nothing is documented that the app does not serve
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert documented <= routes(client.server.app)
    # the item body documents exactly the fields the handler accepts
    props = doc["paths"]["/api/v1/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    for field in ("kind", "title", "content", "source_title", "source_number", "lead_unit", "co_units", "deadline",
                  "leader", "handler", "confidential"):
        assert field in props


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Token {API_TOKEN}"},
        {"Authorization": API_TOKEN},
        {"Authorization": f"Bearer {API_TOKEN}x"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "wrong-scheme", "no-scheme", "longer", "empty"],
)
async def test_bad_token_is_401_and_writes_nothing(client: TestClient, runtime: Runtime, headers: dict[str, str]) -> None:
    before = await dump(runtime)
    for method, path, body in (
        ("POST", "/api/v1/items", new_item()),
        ("GET", "/api/v1/items", None),
        ("GET", "/api/v1/stats", None),
        ("POST", "/api/v1/notices", {"text": "通报"}),
        ("POST", "/api/v1/org", {"people": [{"unit": "新单位", "name": "某人", "roles": ["handler"], "wecom_id": "x1"}]}),
    ):
        resp = await client.request(method, path, json=body, headers=headers)
        body_json = await assert_error(resp, 401)
        assert body_json["error"] == "unauthorized"
    assert await dump(runtime) == before


async def test_api_without_configured_token_is_503(runtime: Runtime, org: dict[str, int], settings: Settings) -> None:
    no_token = settings.model_copy(update={"api_token": ""})
    rt = dataclasses.replace(runtime, settings=no_token)  # same database, token unset
    before = await dump(runtime)
    async with TestClient(TestServer(build_app(rt))) as c:
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            resp = await c.post("/api/v1/items", json=new_item(), headers=headers)
            body = await assert_error(resp, 503, contains="DUBAN_API_TOKEN")
            assert body["error"] == "api_disabled"
        assert (await c.get("/healthz")).status == 200
        assert (await c.get("/api/v1/openapi.json")).status == 200
    assert await dump(runtime) == before


async def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    await assert_error(await client.get("/api/v1/nothing-here", headers=AUTH), 404)
    await assert_error(await client.delete("/api/v1/items", headers=AUTH), 405)


# ---- creating items ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["incoming", "special", "periodic"])
async def test_create_each_kind_with_sequential_codes(client: TestClient, runtime: Runtime, kind: str) -> None:
    first = await create(client, kind)
    assert first["code"] == "2026-0001"
    assert first["kind"] == kind
    assert first["status"] == ("draft" if kind == "periodic" else "assigned")
    assert first["lead_unit"] == "教务处"
    assert first["deadline"] == "2026-04-30"
    assert first["branches"] == [{"unit": "教务处", "lead": True, "handler": None, "status": "assigned"}]
    if kind == "incoming":
        assert first["source_title"].startswith("教育部") and first["source_number"] == "教高函〔2026〕3号"
    if kind == "periodic":
        assert first["leader"] == "李校长"
    second = await create(client, kind, title="第二项")
    assert second["code"] == "2026-0002"
    assert [i["code"] for i in (await (await client.get("/api/v1/items", headers=AUTH)).json())["items"]] == [
        "2026-0001",
        "2026-0002",
    ]
    # the creation is in the audit trail with the channel it came through
    timeline = (await get_item(client, "2026-0001"))["timeline"]
    assert [(e["kind"], e["channel"], e["actor"]) for e in timeline] == [("created", "api", "系统")]


async def test_create_with_handler_and_co_units(client: TestClient, runtime: Runtime, org: dict[str, int]) -> None:
    item = await create(client, "special", handler="张老师", co_units=["科研院", "学生处"])
    assert item["status"] == "designated"
    assert item["co_units"] == ["科研院", "学生处"]
    assert [(b["unit"], b["lead"], b["handler"], b["status"]) for b in item["branches"]] == [
        ("教务处", True, "张老师", "designated"),
        ("科研院", False, None, "assigned"),
        ("学生处", False, None, "assigned"),
    ]
    # the handler gets a sign card; the co-units' principals are asked to designate someone
    sign = await outbox_for(runtime, org["张老师"], item["code"])
    assert any(actions(p) == ["sign"] for p in sign)
    for principal in ("赵院长", "钱处长"):
        (msg,) = await outbox_for(runtime, org[principal], item["code"])
        assert "配合" in msg["text"] and "指派" in msg["text"]
    assert await outbox_for(runtime, org["陈处长"], item["code"]) == []  # lead unit already has its handler


async def test_periodic_draft_goes_to_the_leader(client: TestClient, runtime: Runtime, org: dict[str, int]) -> None:
    item = await create(client, "periodic")
    (card,) = await outbox_for(runtime, org["李校长"], item["code"])
    assert card["card_kind"] == "draft"
    assert actions(card) == ["approve", "return"]
    assert await outbox_for(runtime, org["陈处长"]) == []  # units hear nothing before the leader approves


def _bad_bodies() -> list[Any]:
    base = new_item("special")
    incoming = new_item("incoming")
    cases: list[Any] = [
        ("unknown-field", {**base, "titel": "拼错的字段"}, 400, "titel"),
        ("unknown-kind", {**base, "kind": "urgent"}, 400, "类别"),
        ("kind-missing", {k: v for k, v in base.items() if k != "kind"}, 400, "kind"),
        ("title-missing", {k: v for k, v in base.items() if k != "title"}, 400, "title"),
        ("title-blank", {**base, "title": "   "}, 400, "标题"),
        ("title-not-string", {**base, "title": 42}, 400, "字符串"),
        ("title-too-long", {**base, "title": "长" * 201}, 400, "过长"),
        ("unknown-lead-unit", {**base, "lead_unit": "不存在的处"}, 400, "不存在的处"),
        ("unknown-co-unit", {**base, "co_units": ["科研院", "火星研究院"]}, 400, "火星研究院"),
        ("co-units-not-list", {**base, "co_units": "科研院"}, 400, "配合单位"),
        ("lead-also-co", {**base, "co_units": ["教务处"]}, 400, "牵头单位"),
        ("unknown-leader", {**base, "leader": "不存在的校长"}, 400, "不存在的校长"),
        ("leader-not-a-leader", {**base, "leader": "陈处长"}, 400, "陈处长"),
        ("unknown-handler", {**base, "handler": "查无此人"}, 400, "查无此人"),
        ("handler-not-in-lead-unit", {**base, "handler": "孙老师"}, 400, "孙老师"),
        ("deadline-words", {**base, "deadline": "tomorrow"}, 400, "YYYY-MM-DD"),
        ("deadline-month-13", {**base, "deadline": "2026-13-01"}, 400, "2026-13-01"),
        ("deadline-feb-30", {**base, "deadline": "2026-02-30"}, 400, "2026-02-30"),
        ("deadline-missing", {k: v for k, v in base.items() if k != "deadline"}, 400, "deadline"),
        ("deadline-number", {**base, "deadline": 20260430}, 400, "办结时限"),
        ("deadline-before-today", {**base, "deadline": "2026-03-01"}, 400, "早于"),
        ("incoming-without-source", {k: v for k, v in incoming.items() if k != "source_title"}, 400, "来文名称"),
        ("confidential-not-bool", {**base, "confidential": "yes"}, 400, "true 或 false"),
    ]
    return [pytest.param(body, st, msg, id=name) for name, body, st, msg in cases]


@pytest.mark.parametrize("body,status_code,mentions", _bad_bodies())
async def test_bad_item_is_refused_and_nothing_written(
    client: TestClient, runtime: Runtime, body: dict[str, Any], status_code: int, mentions: str
) -> None:
    before = await dump(runtime)
    resp = await client.post("/api/v1/items", json=body, headers=AUTH)
    await assert_error(resp, status_code, contains=mentions)
    assert await dump(runtime) == before
    assert (await (await client.get("/api/v1/items", headers=AUTH)).json())["items"] == []
    # no code number was spent either
    assert (await create(client, "special"))["code"] == "2026-0001"


@pytest.mark.parametrize(
    "raw,mentions",
    [
        (b'{"kind": "special", "title": ', "JSON"),
        (b"", "JSON"),
        ("{'kind': 'special'}".encode(), "JSON"),
        (json.dumps([new_item()]).encode(), "对象"),
        (b'"just a string"', "对象"),
        (b"null", "对象"),
        (json.dumps(new_item(), ensure_ascii=False).encode("gbk"), "JSON"),
    ],
    ids=["truncated", "empty", "single-quotes", "array", "string", "null", "gbk-bytes"],
)
async def test_malformed_body_is_400(client: TestClient, runtime: Runtime, raw: bytes, mentions: str) -> None:
    before = await dump(runtime)
    resp = await client.post(
        "/api/v1/items", data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    body = await assert_error(resp, 400, contains=mentions)
    assert body["error"] == "malformed_json"
    assert await dump(runtime) == before


async def test_confidential_item_is_refused_and_leaves_no_trace(client: TestClient, runtime: Runtime) -> None:
    secret = "某重点型号保密任务督办XJ-7"
    before = await dump(runtime)
    for body in (
        new_item("special", title=secret, confidential=True),
        new_item("incoming", title=secret, content=secret, source_title=secret, confidential=True),
        # refused before anything else is read, so even an otherwise bad body says the same
        {"title": secret, "confidential": True, "lead_unit": "不存在", "bogus": 1},
    ):
        resp = await client.post("/api/v1/items", json=body, headers=AUTH)
        err = await assert_error(resp, 422, contains="线下")
        assert err["error"] == "confidential"
        assert secret not in err["message"]
    after = await dump(runtime)
    assert after == before
    assert secret not in repr(after)
    assert await count(runtime, ItemRow) == 0
    assert await count(runtime, EventRow) == 0  # not even a refusal event carrying the payload


async def test_body_over_one_mebibyte_is_413(client: TestClient, runtime: Runtime) -> None:
    before = await dump(runtime)
    big = json.dumps(new_item(content="材" * (400 * 1024)), ensure_ascii=False).encode()  # ~1.2 MB in UTF-8
    assert len(big) > 1024 * 1024
    resp = await client.post("/api/v1/items", data=big, headers={**AUTH, "Content-Type": "application/json"})
    body = await assert_error(resp, 413)
    assert body["error"] == "too_large"
    assert await dump(runtime) == before
    # a body just under the limit is read (and then refused for its content, not its size)
    near = json.dumps(new_item(content="a" * (1024 * 1024 - 400))).encode()
    assert len(near) < 1024 * 1024
    resp = await client.post("/api/v1/items", data=near, headers={**AUTH, "Content-Type": "application/json"})
    await assert_error(resp, 400, contains="过长")
    assert await dump(runtime) == before


# ---- reading items -------------------------------------------------------------------------------------


async def test_list_filters(client: TestClient) -> None:
    a = await create(client, "incoming", co_units=["科研院"])  # 2026-0001 教务处 + 科研院
    b = await create(client, "special", lead_unit="科研院", deadline="2026-03-20")  # 2026-0002
    c = await create(client, "periodic", lead_unit="学生处", leader="王副校长")  # 2026-0003 draft

    async def codes(query: str) -> list[str]:
        resp = await client.get(f"/api/v1/items{query}", headers=AUTH)
        assert resp.status == 200, await resp.text()
        return [i["code"] for i in (await resp.json())["items"]]

    assert await codes("") == [b["code"], a["code"], c["code"]]  # ordered by deadline
    assert await codes("?status=draft") == [c["code"]]
    assert await codes("?status=assigned") == [b["code"], a["code"]]
    assert await codes("?status=assigned,draft") == [b["code"], a["code"], c["code"]]
    assert await codes("?status=closed") == []
    assert await codes("?kind=incoming") == [a["code"]]
    assert await codes("?kind=periodic") == [c["code"]]
    assert await codes("?unit=科研院") == [b["code"], a["code"]]  # the co-unit sees its share too
    assert await codes("?unit=学生处&kind=periodic&status=draft") == [c["code"]]
    assert await codes("?unit=学生处&kind=special") == []
    assert await codes("?limit=1") == [b["code"]]
    assert await codes("?limit=1&offset=1") == [a["code"]]

    listing = (await (await client.get("/api/v1/items?kind=special", headers=AUTH)).json())["items"][0]
    assert listing == {
        "code": b["code"],
        "kind": "special",
        "title": b["title"],
        "status": "assigned",
        "status_label": "待指派",
        "deadline": "2026-03-20",
        "lead_unit": "科研院",
        "overdue": False,
    }


@pytest.mark.parametrize(
    "query,status_code,mentions",
    [
        ("status=bogus", 400, "status"),
        ("status=assigned,", 400, "status"),
        ("kind=urgent", 400, "kind"),
        ("unit=火星研究院", 404, "火星研究院"),
        ("limit=0", 400, "limit"),
        ("limit=abc", 400, "limit"),
        ("limit=501", 400, "limit"),
        ("offset=-1", 400, "offset"),
    ],
)
async def test_list_bad_filters(client: TestClient, query: str, status_code: int, mentions: str) -> None:
    await create(client)
    await assert_error(await client.get(f"/api/v1/items?{query}", headers=AUTH), status_code, contains=mentions)


async def test_get_item_by_short_number_and_full_code(client: TestClient) -> None:
    await create(client, "special")
    created = await create(client, "incoming")
    assert created["code"] == "2026-0002"
    for ref in ("2", "2026-0002", "2026-2", "%232"):  # %23 is '#', as people write #2
        item = await get_item(client, ref)
        assert item["code"] == "2026-0002" and item["kind"] == "incoming"
        assert item["timeline"][0]["kind"] == "created"
        assert item["timeline"][0]["label"] == "交办"
    assert (await get_item(client, "1"))["code"] == "2026-0001"
    body = await assert_error(await client.get("/api/v1/items/99", headers=AUTH), 404, contains="2026-0099")
    assert body["error"] == "not_found"
    await assert_error(await client.get("/api/v1/items/2025-0001", headers=AUTH), 404)
    await assert_error(await client.get("/api/v1/items/abc", headers=AUTH), 400, contains="编号")


# ---- urge, cancel, notices, stats, org, ledger --------------------------------------------------------


async def test_urge_records_count_and_notifies_handler_and_principal(
    client: TestClient, runtime: Runtime, org: dict[str, int]
) -> None:
    item = await create(client, "special", handler="张老师")
    code = item["code"]
    resp = await client.post(f"/api/v1/items/{code}/urge", json={"note": "请于本周五前报送进展"}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"code": code, "urge_count": 1}
    for name in ("张老师", "陈处长"):
        urges = [p for p in await outbox_for(runtime, org[name], code) if "催办" in p["text"]]
        assert len(urges) == 1, name
        assert "请于本周五前报送进展" in urges[0]["text"]
    assert await outbox_for(runtime, org["刘老师"]) == []
    resp = await client.post("/api/v1/items/1/urge", json={}, headers=AUTH)  # short number, no note
    assert (await resp.json())["urge_count"] == 2
    got = await get_item(client, code)
    assert got["urge_count"] == 2
    assert [(e["kind"], e["channel"]) for e in got["timeline"]] == [
        ("created", "api"), ("designated", "api"), ("urged", "api"), ("urged", "api")
    ]
    urges = [p for p in await outbox_for(runtime, org["张老师"], code) if "催办" in p["text"]]
    assert len(urges) == 2  # a second urge is a second message, not swallowed by dedup

    before = await dump(runtime)
    await assert_error(await client.post("/api/v1/items/77/urge", json={}, headers=AUTH), 404)
    await assert_error(await client.post(f"/api/v1/items/{code}/urge", json={"text": "x"}, headers=AUTH), 400)
    assert_only_refusals_added(before, await dump(runtime))


async def test_cancel_requires_reason(client: TestClient, runtime: Runtime, org: dict[str, int]) -> None:
    item = await create(client, "special", handler="张老师")
    code = item["code"]
    before = await dump(runtime)
    for body in ({}, {"reason": ""}, {"reason": 3}):
        resp = await client.post(f"/api/v1/items/{code}/cancel", json=body, headers=AUTH)
        await assert_error(resp, 400, contains="理由")
    assert await dump(runtime) == before
    # a blank reason reaches the domain, which refuses it; only the refusal enters the audit trail
    resp = await client.post(f"/api/v1/items/{code}/cancel", json={"reason": "   "}, headers=AUTH)
    await assert_error(resp, 400, contains="理由")
    got = await get_item(client, code)
    assert got["status"] == "designated"
    assert got["timeline"][-1]["kind"] == "refused" and got["timeline"][-1]["payload"]["action"] == "cancel"

    resp = await client.post(f"/api/v1/items/{code}/cancel", json={"reason": "会议决定另行安排"}, headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {"code": code, "status": "cancelled"}
    got = await get_item(client, code)
    assert got["status"] == "cancelled"
    assert got["timeline"][-1]["kind"] == "cancelled"
    assert got["timeline"][-1]["payload"]["reason"] == "会议决定另行安排"
    for name in ("张老师", "陈处长"):
        assert any("撤销" in p["text"] for p in await outbox_for(runtime, org[name], code))
    # a cancelled item is closed to further action
    body = await assert_error(await client.post(f"/api/v1/items/{code}/cancel", json={"reason": "再撤"}, headers=AUTH), 409)
    assert body["error"] == "conflict"
    await assert_error(await client.post(f"/api/v1/items/{code}/urge", json={}, headers=AUTH), 409)


async def test_notices_to_all_principals_and_to_named_units(
    client: TestClient, runtime: Runtime, org: dict[str, int]
) -> None:
    resp = await client.post("/api/v1/notices", json={"text": "本月督办事项按期办结率 95%。"}, headers=AUTH)
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {"recipients": 3}
    rows = await outbox(runtime)
    assert sorted(r for r, _, _ in rows) == sorted(org[n] for n in ("陈处长", "赵院长", "钱处长"))
    assert all(p["text"].startswith("【通报") and p["text"].endswith("】本月督办事项按期办结率 95%。") for _, _, p in rows)
    assert len({k for _, k, _ in rows}) == 3

    resp = await client.post("/api/v1/notices", json={"text": "科研院请加快进度。", "units": ["科研院"]}, headers=AUTH)
    assert await resp.json() == {"recipients": 1}
    rows = await outbox(runtime)
    assert [r for r, _, p in rows if "科研院请加快" in p["text"]] == [org["赵院长"]]

    before = await dump(runtime)
    for body, mentions in (
        ({"text": "通报", "units": ["科研院", "火星研究院"]}, "火星研究院"),
        ({"text": "   "}, "通报内容"),
        ({}, "通报内容"),
        ({"text": "通报", "units": "科研院"}, "单位"),
        ({"text": "通报", "to": ["科研院"]}, "to"),
        ({"text": "长" * 1501}, "过长"),
    ):
        await assert_error(await client.post("/api/v1/notices", json=body, headers=AUTH), 400, contains=mentions)
    assert await dump(runtime) == before


async def test_stats(client: TestClient, runtime: Runtime) -> None:
    resp = await client.get("/api/v1/stats", headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {"units": []}
    await create(client, "special")
    await create(client, "incoming")
    await create(client, "special", lead_unit="科研院")
    await create(client, "periodic", lead_unit="科研院")  # a draft is not yet the unit's workload
    cancelled = await create(client, "special", lead_unit="学生处")
    await client.post(f"/api/v1/items/{cancelled['code']}/urge", json={}, headers=AUTH)
    await client.post(f"/api/v1/items/{cancelled['code']}/cancel", json={"reason": "不再需要"}, headers=AUTH)
    await client.post("/api/v1/items/1/urge", json={}, headers=AUTH)
    rows = (await (await client.get("/api/v1/stats", headers=AUTH)).json())["units"]
    assert [r["unit"] for r in rows] == ["教务处", "科研院"]
    assert set(rows[0]) == set(COLUMNS)
    assert rows[0] == {"unit": "教务处", "total": 2, "in_progress": 2, "closed_on_time": 0, "closed_late": 0,
                       "overdue_now": 0, "urged": 1, "returned": 0}
    assert rows[1]["total"] == 1 and rows[1]["urged"] == 0


async def test_org_import_all_or_nothing(client: TestClient, runtime: Runtime) -> None:
    people = [
        {"unit": "图书馆", "name": "何馆长", "roles": ["principal"], "wecom_id": "he"},
        {"unit": "图书馆", "name": "许老师", "roles": "办理人", "dingtalk_id": "xu_dd", "preferred_channel": "dingtalk"},
        {"unit": "校领导", "name": "马副校长", "roles": ["校领导"], "wecom_id": "ma", "units_in_charge": ["图书馆"]},
    ]
    before = await dump(runtime)
    bad_lists = [
        ([*people[:1], {**people[1], "roles": ["科长"]}, people[2]], "第 2 人"),
        ([people[0], {k: v for k, v in people[1].items() if k != "dingtalk_id"}], "至少"),
        ([people[0], {**people[1], "name": ""}], "姓名"),
        ([people[0], {**people[1], "unit_name": "x"}], "unit_name"),
        ([people[0], "许老师"], "第 2 人"),
        ([people[0], {**people[1], "units_in_charge": ["图书馆"]}], "校领导"),
        ([people[0], {**people[1], "preferred_channel": "email"}], "首选渠道"),
        ([*people[:2], {**people[2], "units_in_charge": ["不存在的单位"]}], "不存在的单位"),
        ([], "people"),
    ]
    for bad, mentions in bad_lists:
        resp = await client.post("/api/v1/org", json={"people": bad}, headers=AUTH)
        await assert_error(resp, 400, contains=mentions)
        assert await dump(runtime) == before, f"something was imported from {bad}"
    await assert_error(await client.post("/api/v1/org", json={"persons": people}, headers=AUTH), 400)

    resp = await client.post("/api/v1/org", json={"people": people}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"imported": 3}
    async with runtime.svc.uow.reader() as uow:
        lib = await uow.units.by_name("图书馆")
        assert lib is not None
        (xu,) = await uow.people.by_name("许老师", lib.id)
        assert xu.dingtalk_id == "xu_dd" and xu.wecom_id is None and xu.preferred_channel.value == "dingtalk"
        (ma,) = await uow.people.by_name("马副校长")
        assert ma.units_in_charge == {lib.id}
    # the new people can act at once: the new unit can receive an item
    item = await create(client, "special", lead_unit="图书馆", handler="许老师")
    assert item["branches"][0]["handler"] == "许老师"
    # re-importing the same sheet is harmless
    resp = await client.post("/api/v1/org", json={"people": people}, headers=AUTH)
    assert (await resp.json()) == {"imported": 3}
    async with runtime.svc.uow.reader() as uow:
        assert len(await uow.people.by_name("许老师")) == 1


async def test_ledger(client: TestClient, runtime: Runtime) -> None:
    entry = {
        "unit": "教务处",
        "doc_title": "关于开展2026年教材建设工作的通知",
        "doc_number": "陕教〔2026〕12号",
        "responsible": "张老师",
        "deadline": "2026-05-31",
        "summary": "已转发各学院，正在汇总。",
    }
    resp = await client.post("/api/v1/ledger", json=entry, headers=AUTH)
    assert resp.status == 201, await resp.text()
    assert isinstance((await resp.json())["id"], int)
    resp = await client.get("/api/v1/ledger", params={"unit": "教务处"}, headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {"unit": "教务处", "entries": [{k: v for k, v in entry.items() if k != "unit"}]}
    assert (await (await client.get("/api/v1/ledger", params={"unit": "科研院"}, headers=AUTH)).json())["entries"] == []

    before = await dump(runtime)
    secret = "某涉密来文XJ-9"
    resp = await client.post("/api/v1/ledger", json={**entry, "doc_title": secret, "confidential": True}, headers=AUTH)
    await assert_error(resp, 422, contains="线下")
    assert secret not in repr(await dump(runtime))
    # the five columns of 《来文落实情况办理台账》 (第六条 2) are all required
    for column, label in (("doc_title", "来文名称"), ("doc_number", "文号"), ("responsible", "责任人"),
                          ("deadline", "办结时限"), ("summary", "办理情况摘要")):
        missing = {k: v for k, v in entry.items() if k != column}
        await assert_error(await client.post("/api/v1/ledger", json=missing, headers=AUTH), 400, contains=label)
        blank = {**entry, column: " "}
        await assert_error(await client.post("/api/v1/ledger", json=blank, headers=AUTH), 400, contains=label)
    await assert_error(await client.post("/api/v1/ledger", json={**entry, "unit": "火星研究院"}, headers=AUTH), 400,
                       contains="火星研究院")
    await assert_error(await client.post("/api/v1/ledger", json={**entry, "deadline": "2026-02-30"}, headers=AUTH), 400)
    await assert_error(await client.post("/api/v1/ledger", json={**entry, "extra": 1}, headers=AUTH), 400)
    assert await dump(runtime) == before
    await assert_error(await client.get("/api/v1/ledger", params={"unit": "火星研究院"}, headers=AUTH), 404)
    await assert_error(await client.get("/api/v1/ledger", headers=AUTH), 400, contains="unit")


# ---- the procedure, walked through (DESIGN §2) -----------------------------------------------------------


def timeline_kinds(item: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in item["timeline"] if e["kind"] != "refused"]


@pytest.mark.parametrize("kind", ["incoming", "special", "periodic"])
async def test_walk_through_every_state(
    kind: str, client: TestClient, runtime: Runtime, org: dict[str, int], chat: Chat
) -> None:
    created = await create(client, kind)
    code = created["code"]
    n = code.split("-")[1].lstrip("0")  # the short number people type

    async def expect(state: str) -> dict[str, Any]:
        item = await get_item(client, code)
        assert item["status"] == state, (state, item["timeline"][-3:])
        return item

    # 立项 (periodic only): the leader approves the task ledger entry
    if kind == "periodic":
        await expect("draft")
        reply = await chat(JW_PRINCIPAL, f"指派 {n} 张老师")
        assert "不能" in reply  # units cannot act on a draft
        await expect("draft")
        reply = await chat(LEADER2, f"同意 {n}")  # not the leader of this item
        await expect("draft")
        reply = await chat(LEADER, f"同意 {code}")
        assert "已同意" in reply, reply
    await expect("assigned")
    (new_notice,) = await outbox_for(runtime, org["陈处长"], code)
    assert "指派" in new_notice["text"]

    # 指派专人
    reply = await chat(JW_HANDLER, f"指派 {n} 张老师")  # a handler cannot designate
    assert "主要负责人" in reply
    await expect("assigned")
    reply = await chat(JW_PRINCIPAL, f"指派 {n} 张老师")
    assert "已指派" in reply, reply
    item = await expect("designated")
    assert item["branches"][0]["handler"] == "张老师"
    sign_cards = [p for p in await outbox_for(runtime, org["张老师"], code) if p.get("card_kind") == "sign"]
    assert len(sign_cards) == 1
    assert actions(sign_cards[0]) == ["sign"] and sign_cards[0]["item_code"] == code
    assert f"签收 {code}" in sign_cards[0]["text"]  # the text fallback carries the command

    # 签收
    reply = await chat(JW_HANDLER2, f"签收 {n}")  # not the designated handler
    assert "指定办理人" in reply
    await expect("designated")
    reply = await chat(JW_HANDLER, f"签收 {n}")
    assert "已签收" in reply, reply
    item = await expect("in_progress")
    assert item["branches"][0]["status"] == "signed"

    # 进展: pending until the principal agrees, then published; a second one returned
    reply = await chat(JW_HANDLER, f"进展 {n} 已召开专题会议，制定整改方案。")
    assert "已提交" in reply, reply
    item = await expect("in_progress")
    assert [(p["text"], p["status"]) for p in item["progress"]] == [("已召开专题会议，制定整改方案。", "pending")]
    progress_cards = [p for p in await outbox_for(runtime, org["陈处长"], code) if p.get("card_kind") == "progress"]
    assert len(progress_cards) == 1 and actions(progress_cards[0]) == ["approve", "return"]
    assert "已召开专题会议" in progress_cards[0]["text"]
    reply = await chat(JW_PRINCIPAL, f"同意 {n}")
    assert "已同意" in reply, reply
    item = await expect("in_progress")
    assert item["progress"][0]["status"] == "published"
    await chat(JW_HANDLER, f"进展 {n} 第二阶段：完成一半。")
    reply = await chat(JW_PRINCIPAL, f"退回 {n} 请补充具体数据")
    assert "已退回" in reply, reply
    item = await expect("in_progress")
    assert [p["status"] for p in item["progress"]] == ["published", "returned"]
    assert any("请补充具体数据" in p["text"] for p in await outbox_for(runtime, org["张老师"], code))

    # 延期: principal then office agree → the deadline moves
    reply = await chat(JW_HANDLER, f"延期 {n} 2026-05-29 需等待上级文件")
    assert "延期申请" in reply, reply
    item = await expect("in_progress")
    assert item["extensions"] == [{"new_deadline": "2026-05-29", "reason": "需等待上级文件", "status": "pending_principal"}]
    reply = await chat(OFFICE, f"同意 {n}")  # the office's turn has not come yet
    assert (await get_item(client, code))["extensions"][0]["status"] == "pending_principal"
    await chat(JW_PRINCIPAL, f"同意 {n}")
    item = await expect("in_progress")
    assert item["extensions"][0]["status"] == "pending_office"
    assert item["deadline"] == "2026-04-30"
    ext_cards = [p for p in await outbox_for(runtime, org["周督办"], code) if p.get("card_kind") == "extension"]
    assert len(ext_cards) == 1 and actions(ext_cards[0]) == ["approve", "return"]
    reply = await chat(OFFICE, f"同意 {code}")
    assert "已同意" in reply, reply
    item = await expect("in_progress")
    assert item["deadline"] == "2026-05-29"
    assert item["extensions"][0]["status"] == "approved"
    # another 延期 refused by 退回: the deadline stays
    await chat(JW_HANDLER, f"延期 {n} 2026-06-30 再延一个月")
    reply = await chat(JW_PRINCIPAL, f"退回 {n} 时间已很充裕")
    assert "已退回" in reply, reply
    item = await expect("in_progress")
    assert item["deadline"] == "2026-05-29"
    assert [e["status"] for e in item["extensions"]] == ["approved", "refused"]

    # 办结 → reviews, one 退回 at the leader's stage, then all the way through
    reply = await chat(JW_HANDLER, f"办结 {n} 已完成整改并形成报告。")
    assert "已提交" in reply, reply
    await expect("unit_review")
    reply = await chat(OFFICE, f"同意 {n}")  # not the office's stage yet
    await expect("unit_review")
    await chat(JW_PRINCIPAL, f"同意 {n}")
    if kind != "incoming":
        await expect("office_review")
        reply = await chat(LEADER, f"同意 {n}")  # not the leader's stage yet
        await expect("office_review")
        await chat(OFFICE, f"同意 {n}")
    await expect("leader_review")
    reply = await chat(LEADER, f"退回 {n} 需补充佐证材料")
    assert "已退回" in reply, reply
    item = await expect("in_progress")
    assert item["return_count"] == 1
    returned = [p for p in await outbox_for(runtime, org["张老师"], code) if "需补充佐证材料" in p["text"]]
    assert len(returned) == 1  # the reason reaches the handler

    await chat(JW_HANDLER, f"办结 {n} 已补充佐证材料。")
    await expect("unit_review")
    await chat(JW_PRINCIPAL, f"同意 {n}")
    if kind != "incoming":
        await expect("office_review")
        await chat(OFFICE, f"同意 {n}")
    await expect("leader_review")
    reply = await chat(LEADER, f"同意 {n}")
    assert "已办结" in reply, reply
    item = await expect("closed")
    assert item["closed_at"] is not None
    assert item["closure_result"] == "已补充佐证材料。"

    # 归档
    reply = await chat(JW_HANDLER2, f"归档 {n}")  # not this item's handler
    await expect("closed")
    reply = await chat(JW_HANDLER, f"归档 {n}")
    assert "已归档" in reply, reply
    item = await expect("archived")
    reply = await chat(JW_HANDLER, f"进展 {n} 归档后还想报进展")
    assert "不能" in reply
    await expect("archived")

    # the timeline: every step, in order, with who and how
    expected = ["created"]
    if kind == "periodic":
        expected.append("draft_approved")
    expected += [
        "designated", "signed",
        "progress_reported", "progress_published", "progress_reported", "progress_returned",
        "extension_requested", "extension_agreed_by_principal", "extension_approved",
        "extension_requested", "extension_refused",
        "closure_submitted", "closure_approved",
    ]
    expected += ["closure_approved"] if kind != "incoming" else []
    expected += ["closure_returned", "closure_submitted", "closure_approved"]
    expected += ["closure_approved"] if kind != "incoming" else []
    expected += ["closure_approved", "archived"]
    assert timeline_kinds(item) == expected
    events = [e for e in item["timeline"] if e["kind"] != "refused"]
    assert events[0]["channel"] == "api" and events[0]["actor"] == "系统"
    assert all(e["channel"] == "wecom" for e in events[1:])
    assert [e["at"] for e in item["timeline"]] == sorted(e["at"] for e in item["timeline"])
    actors = {e["kind"]: e["actor"] for e in events}
    assert actors["designated"] == "陈处长" and actors["signed"] == "张老师"
    assert actors["extension_approved"] == "周督办" and actors["archived"] == "张老师"
    assert actors["closure_returned"] == "李校长"
    stages = [e["payload"]["stage"] for e in events if e["kind"] == "closure_approved"]
    chain = ["unit_review", "leader_review"] if kind == "incoming" else ["unit_review", "office_review", "leader_review"]
    assert stages == chain[:-1] + chain
    # every refused attempt above is in the audit trail too
    refused = [e for e in item["timeline"] if e["kind"] == "refused"]
    assert len(refused) >= 5
    assert all(e["payload"]["reason"] for e in refused)

    # the outbox: the right cards reached the right people, nobody heard of their own action
    def cards(name: str, card_kind: str) -> list[dict[str, Any]]:
        return [p for rid, _, p in rows if rid == org[name] and p.get("card_kind") == card_kind and p["item_code"] == code]

    rows = await outbox(runtime)
    assert len(cards("陈处长", "progress")) == 2
    assert len(cards("陈处长", "extension")) == 2
    assert len(cards("陈处长", "closure")) == 2
    assert len(cards("周督办", "extension")) == 1
    assert len(cards("周督办", "closure")) == (0 if kind == "incoming" else 2)
    assert len(cards("李校长", "closure")) == 2
    assert len(cards("李校长", "draft")) == (1 if kind == "periodic" else 0)
    for name, card_kind in (("陈处长", "progress"), ("周督办", "extension"), ("李校长", "closure")):
        assert all(actions(p) == ["approve", "return"] for p in cards(name, card_kind))
    for card_kind in ("progress", "extension", "closure", "draft"):
        assert cards("张老师", card_kind) == []  # the handler never reviews his own work
    handler_texts = [p["text"] for rid, _, p in rows if rid == org["张老师"]]
    assert any("已审核发布" in t for t in handler_texts)
    assert any("2026-05-29" in t and "延期已批准" in t for t in handler_texts)
    assert any("时间已很充裕" in t for t in handler_texts)
    assert any("归档" in t and "已办结" in t for t in handler_texts)
    assert [rid for rid, _, _ in rows if rid in (org["刘老师"], org["孙老师"], org["王副校长"])] == []
    keys = [k for _, k, _ in rows]
    assert len(keys) == len(set(keys))


async def test_co_unit_reports_progress_but_cannot_close(
    client: TestClient, runtime: Runtime, org: dict[str, int], chat: Chat
) -> None:
    created = await create(client, "special", handler="张老师", co_units=["科研院"])
    code = created["code"]
    await chat(JW_HANDLER, f"签收 {code}")
    (notice,) = await outbox_for(runtime, org["赵院长"], code)
    assert "配合" in notice["text"]
    reply = await chat(JW_PRINCIPAL, f"指派 {code} 孙老师")  # another unit's person
    assert "孙老师" in reply
    reply = await chat(KY_PRINCIPAL, f"指派 {code} 孙老师")
    assert "已指派" in reply, reply
    assert any(p.get("card_kind") == "sign" for p in await outbox_for(runtime, org["孙老师"], code))
    await chat(KY_HANDLER, f"签收 {code}")
    item = await get_item(client, code)
    assert item["status"] == "in_progress"
    assert [(b["unit"], b["handler"], b["status"]) for b in item["branches"]] == [
        ("教务处", "张老师", "signed"), ("科研院", "孙老师", "signed")
    ]

    reply = await chat(KY_HANDLER, f"进展 {code} 科研院配合部分已完成。")
    assert "已提交" in reply, reply
    # the co-unit's own principal reviews it, not the lead unit's
    assert any(p.get("card_kind") == "progress" for p in await outbox_for(runtime, org["赵院长"], code))
    assert not any(p.get("card_kind") == "progress" for p in await outbox_for(runtime, org["陈处长"], code))
    reply = await chat(JW_PRINCIPAL, f"同意 {code}")
    assert (await get_item(client, code))["progress"][0]["status"] == "pending"
    await chat(KY_PRINCIPAL, f"同意 {code}")
    item = await get_item(client, code)
    assert item["progress"] == [{"unit": "科研院", "text": "科研院配合部分已完成。", "at": item["progress"][0]["at"],
                                 "status": "published"}]

    events_before = await count(runtime, EventRow)
    reply = await chat(KY_HANDLER, f"办结 {code} 我们做完了")
    assert "牵头" in reply, reply
    reply = await chat(KY_HANDLER, f"延期 {code} 2026-06-30 想延期")
    assert "牵头" in reply, reply
    item = await get_item(client, code)
    assert item["status"] == "in_progress" and item["closure_result"] is None and item["extensions"] == []
    assert timeline_kinds(item)[-1] == "progress_published"
    refusals = [e for e in item["timeline"] if e["kind"] == "refused"][-2:]
    assert [e["payload"]["action"] for e in refusals] == ["closure", "extension"]
    assert all(e["actor"] == "孙老师" and e["channel"] == "wecom" for e in refusals)
    assert await count(runtime, EventRow) == events_before + 2  # only the refusals were written

    await chat(JW_HANDLER, f"办结 {code} 牵头单位汇总完成。")
    assert await status(client, code) == "unit_review"
    reply = await chat(KY_PRINCIPAL, f"同意 {code}")  # a co-unit's principal does not review closure
    assert await status(client, code) == "unit_review"


async def test_office_can_cancel_in_chat_and_others_cannot(client: TestClient, chat: Chat) -> None:
    code = (await create(client, "special"))["code"]
    reply = await chat(JW_PRINCIPAL, f"撤销 {code} 不想办")
    assert "学校办公室" in reply
    assert await status(client, code) == "assigned"
    reply = await chat(OFFICE, f"撤销 {code}")
    assert "格式" in reply
    reply = await chat(OFFICE, f"撤销 {code} 议定事项已调整")
    assert "已撤销" in reply
    assert await status(client, code) == "cancelled"


# ---- concurrent approvals (optimistic locking) -----------------------------------------------------------


async def _to_unit_review(client: TestClient, chat: Chat) -> str:
    code = (await create(client, "special", handler="张老师"))["code"]
    await chat(JW_HANDLER, f"签收 {code}")
    await chat(JW_HANDLER, f"办结 {code} 已完成")
    assert await status(client, code) == "unit_review"
    return code


async def test_two_office_people_approve_at_once(
    client: TestClient, runtime: Runtime, chat: Chat
) -> None:
    resp = await client.post(
        "/api/v1/org",
        json={"people": [{"unit": "学校办公室", "name": "郑督办", "roles": ["office"], "wecom_id": "zheng"}]},
        headers=AUTH,
    )
    assert resp.status == 200
    code = await _to_unit_review(client, chat)
    await chat(JW_PRINCIPAL, f"同意 {code}")
    assert await status(client, code) == "office_review"

    replies = await asyncio.gather(chat(OFFICE, f"同意 {code}", tick=False), chat("zheng", f"同意 {code}", tick=False))
    won = [r for r in replies if r.startswith("已同意")]
    assert len(won) == 1, replies
    lost = next(r for r in replies if not r.startswith("已同意"))
    assert "没有待您审核" in lost or "刚被他人处理" in lost, lost
    item = await get_item(client, code)
    assert item["status"] == "leader_review"  # moved exactly one stage
    approvals = [e for e in item["timeline"] if e["kind"] == "closure_approved"]
    assert [e["payload"]["stage"] for e in approvals] == ["unit_review", "office_review"]
    leader_cards = [p for p in await outbox_for(runtime, (await _pid(runtime, "李校长")), code) if p.get("card_kind") == "closure"]
    assert len(leader_cards) == 1  # the leader is asked once


async def test_same_principal_approves_twice_at_once(client: TestClient, runtime: Runtime, chat: Chat) -> None:
    code = await _to_unit_review(client, chat)
    replies = await asyncio.gather(*(chat(JW_PRINCIPAL, f"同意 {code}", tick=False) for _ in range(2)))
    assert sum(r.startswith("已同意") for r in replies) == 1, replies
    item = await get_item(client, code)
    assert item["status"] == "office_review"
    assert [e["kind"] for e in item["timeline"] if e["kind"].startswith("closure_")] == [
        "closure_submitted", "closure_approved"
    ]
    async with runtime.svc.uow.reader() as uow:
        version = (await uow.items.get(code)).version  # type: ignore[union-attr]
    assert version == 3  # signed, submitted, approved once


async def test_concurrent_urges_both_count(client: TestClient, runtime: Runtime) -> None:
    """Two writers that do not conflict in meaning both succeed: the loser of the lock retries."""
    code = (await create(client, "special", handler="张老师"))["code"]
    resps = await asyncio.gather(
        *(client.post(f"/api/v1/items/{code}/urge", json={"note": f"第{i}次"}, headers=AUTH) for i in range(2))
    )
    assert sorted(r.status for r in resps) == [200, 200]
    assert (await get_item(client, code))["urge_count"] == 2


async def _pid(runtime: Runtime, name: str) -> int:
    async with runtime.svc.uow.reader() as uow:
        (p,) = await uow.people.by_name(name)
        return p.id


async def test_forced_race_is_settled_by_the_version_check(
    client: TestClient, runtime: Runtime, chat: Chat, db_url: str
) -> None:
    """Both approvals load the same version before either writes (PostgreSQL: a barrier makes sure of it);
    the second UPDATE … WHERE version = seen matches nothing, the service retries once against the fresh
    item, and the domain refuses the decision already taken. On SQLite write transactions start with
    BEGIN IMMEDIATE, so the second writer waits and reads the fresh item at once."""
    from domain.errors import InvalidTransition
    from domain.roles import Channel
    from handlers import actions as act

    code = await _to_unit_review(client, chat)
    chen = await runtime.svc.person_for(Channel.WECOM, JW_PRINCIPAL)
    assert chen is not None
    postgres = not db_url.startswith("sqlite")
    barrier = asyncio.Barrier(2)
    calls: list[int] = []

    async def gated(item: Any, actor: Any, now: Any, uow: Any) -> None:
        calls.append(item.version)
        if postgres and len(calls) <= 2:
            await asyncio.wait_for(barrier.wait(), timeout=10)
        await act.decide(True)(item, actor, now, uow)

    results = await asyncio.gather(
        *(runtime.svc.act(chen, code, gated, "wecom", what="approve") for _ in range(2)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], InvalidTransition), losers
    if postgres:
        assert calls == [2, 2, 3]  # both saw version 2; the loser retried against version 3
    else:
        assert calls == [2, 3]
    item = await get_item(client, code)
    assert item["status"] == "office_review"
    assert [e["payload"]["stage"] for e in item["timeline"] if e["kind"] == "closure_approved"] == ["unit_review"]
    assert item["timeline"][-1]["kind"] == "refused"


async def test_org_people_with_odd_values_are_refused_cleanly(client: TestClient, runtime: Runtime) -> None:
    ok = {"unit": "图书馆", "name": "何馆长", "roles": ["principal"], "wecom_id": "he"}
    before = await dump(runtime)
    for bad, mentions in (
        ({**ok, "roles": [1]}, "角色"),
        ({**ok, "roles": ["principal", None]}, "角色"),
        ({**ok, "roles": []}, "角色"),
        ({**ok, "unit": "   "}, "单位"),
        ({**ok, "name": " \u3000"}, "姓名"),
        ({**ok, "wecom_id": 12345}, "企业微信ID"),
    ):
        resp = await client.post("/api/v1/org", json={"people": [ok, bad]}, headers=AUTH)
        await assert_error(resp, 400, contains=mentions)
    assert await dump(runtime) == before


async def test_deeply_nested_json_is_a_clean_400(client: TestClient, runtime: Runtime) -> None:
    before = await dump(runtime)
    raw = b"[" * 200_000 + b"]" * 200_000
    resp = await client.post("/api/v1/items", data=raw, headers={**AUTH, "Content-Type": "application/json"})
    await assert_error(resp, 400, contains="JSON")
    assert await dump(runtime) == before
