"""Tests of the DingTalk emulator itself, over real HTTP and websockets (plain aiohttp client), so the
fixture can be trusted by adapter tests."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import pytest
import pytest_asyncio

from .dingtalk import SHANGHAI, TOPIC_CARD, TOPIC_ROBOT, DingTalkEmulator, ManualClock

pytestmark = pytest.mark.asyncio

APP_KEY, APP_SECRET, ROBOT, AGENT = "dingappkey123", "appsecret456", "dingappkey123", 3_100_000_001
TEMPLATE = "duban-review.schema"
SUBS = [{"type": "EVENT", "topic": "*"}, {"type": "CALLBACK", "topic": TOPIC_ROBOT},
        {"type": "CALLBACK", "topic": TOPIC_CARD}]
REDELIVER = 0.3


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def emu(clock: ManualClock):
    async with DingTalkEmulator(APP_KEY, APP_SECRET, ROBOT, AGENT, users={"alice": "爱丽丝", "bob": "鲍勃"},
                                clock=clock, card_template_id=TEMPLATE, redeliver_after=REDELIVER,
                                max_redeliveries=2) as e:
        yield e


@pytest_asyncio.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


# ------------------------------------------------------------------------------------------ helpers
async def token(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> str:
    async with http.post(f"{emu.api_base}/v1.0/oauth2/accessToken",
                         json={"appKey": APP_KEY, "appSecret": APP_SECRET}) as r:
        assert r.status == 200
        data = await r.json()
    assert data["expireIn"] == 7200
    return data["accessToken"]


async def v1(http: aiohttp.ClientSession, emu: DingTalkEmulator, method: str, path: str, body: Any,
             tok: str | None, **kw: Any) -> tuple[int, dict[str, Any]]:
    headers = {} if tok is None else {"x-acs-dingtalk-access-token": tok}
    async with http.request(method, f"{emu.api_base}{path}", json=body, headers=headers, **kw) as r:
        return r.status, await r.json()


async def oapi(http: aiohttp.ClientSession, emu: DingTalkEmulator, path: str, body: Any,
               tok: str | None) -> dict[str, Any]:
    params = {} if tok is None else {"access_token": tok}
    async with http.post(f"{emu.oapi_base}{path}", params=params, json=body) as r:
        assert r.status == 200
        return await r.json()


def batch(users: list[str], key: str = "sampleText", param: Any = None, **over: Any) -> dict[str, Any]:
    param = {"content": "你有一条督办待签收"} if param is None else param
    return {"robotCode": ROBOT, "userIds": users, "msgKey": key,
            "msgParam": param if isinstance(param, str) else json.dumps(param, ensure_ascii=False), **over}


def work(users: str, content: str = "督办提醒", **over: Any) -> dict[str, Any]:
    return {"agent_id": AGENT, "userid_list": users, "msg": {"msgtype": "text", "text": {"content": content}},
            **over}


def card(user: str, otid: str, params: dict[str, Any] | None = None, **over: Any) -> dict[str, Any]:
    body = {"cardTemplateId": TEMPLATE, "outTrackId": otid,
            "cardData": {"cardParamMap": params if params is not None else
                         {"title": "督办 2026-0042", "status": "pending", "code": "2026-0042"}},
            "callbackType": "STREAM", "userIdType": 1, "openSpaceId": f"dtv1.card//IM_ROBOT.{user}",
            "imRobotOpenSpaceModel": {"supportForward": False},
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": ROBOT}}
    body.update(over)
    return body


class Stream:
    """A minimal Stream client written straight from reference §1.1."""

    def __init__(self, http: aiohttp.ClientSession, emu: DingTalkEmulator) -> None:
        self.http, self.emu = http, emu
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self, subs: list[dict[str, str]] = SUBS, secret: str = APP_SECRET) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{self.emu.api_base}/v1.0/gateway/connections/open",
                                  json={"clientId": APP_KEY, "clientSecret": secret, "subscriptions": subs,
                                        "ua": "duban-test/1.0", "localIp": "127.0.0.1"}) as r:
            return r.status, await r.json()

    async def connect(self, subs: list[dict[str, str]] = SUBS) -> Stream:
        status, conn = await self.open(subs)
        assert status == 200, conn
        before = self.emu.websockets_accepted
        self.ws = await self.http.ws_connect(f"{conn['endpoint']}?ticket={quote_plus(conn['ticket'])}")
        await self.emu.wait_connected(count=before + 1)
        return self

    async def recv(self, timeout: float = 2.0) -> dict[str, Any]:
        assert self.ws is not None
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)

    async def no_frame(self, within: float) -> None:
        assert self.ws is not None
        with pytest.raises(asyncio.TimeoutError):
            msg = await self.ws.receive(timeout=within)
            raise AssertionError(f"unexpected frame {msg}")

    async def ack(self, frame: dict[str, Any], data: Any = None, code: int = 200) -> None:
        assert self.ws is not None
        await self.ws.send_json({"code": code, "headers": {"messageId": frame["headers"]["messageId"],
                                                           "contentType": "application/json"},
                                 "message": "OK", "data": json.dumps(data, ensure_ascii=False)})

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


# ------------------------------------------------------------------------------------------ tokens
async def test_token_flow_and_expiry(emu: DingTalkEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    async with http.post(f"{emu.api_base}/v1.0/oauth2/accessToken",
                         json={"appKey": APP_KEY, "appSecret": "wrong"}) as r:
        assert r.status == 400 and (await r.json())["code"] == "invalidClientIdOrSecret"
    tok = await token(emu, http)
    assert emu.token_calls == 2
    path = "/v1.0/robot/oToMessages/batchSend"
    assert (await v1(http, emu, "POST", path, batch(["alice"]), tok))[0] == 200
    for bad in (None, "nope"):
        status, body = await v1(http, emu, "POST", path, batch(["alice"]), bad)
        assert status == 401 and body == {"code": "InvalidAuthentication", "message": "不合法的access_token",
                                          "requestid": body["requestid"]}
    assert (await oapi(http, emu, "/topapi/message/corpconversation/asyncsend_v2", work("alice"), "nope")
            )["errcode"] == 40014
    clock.advance(7199)
    assert (await v1(http, emu, "POST", path, batch(["alice"], param={"content": "2"}), tok))[0] == 200
    clock.advance(1)
    assert (await v1(http, emu, "POST", path, batch(["alice"]), tok))[0] == 401
    assert (await oapi(http, emu, "/topapi/message/corpconversation/asyncsend_v2", work("alice"), tok)
            )["errcode"] == 40014
    tok2 = await token(emu, http)
    assert tok2 != tok
    assert (await oapi(http, emu, "/topapi/message/corpconversation/asyncsend_v2", work("alice"), tok2)
            )["errcode"] == 0  # the v1.0 token works on oapi (§3.1)
    emu.expire_tokens()
    assert (await v1(http, emu, "POST", path, batch(["alice"]), tok2))[0] == 401
    assert emu.robot_texts("alice") == ["你有一条督办待签收", "2"]


async def test_old_gettoken(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{emu.oapi_base}/gettoken", params={"appkey": APP_KEY, "appsecret": APP_SECRET}) as r:
        data = await r.json()
    assert data["errcode"] == 0 and data["expires_in"] == 7200
    assert (await v1(http, emu, "POST", "/v1.0/robot/oToMessages/batchSend", batch(["bob"]),
                     data["access_token"]))[0] == 200
    async with http.get(f"{emu.oapi_base}/gettoken", params={"appkey": APP_KEY, "appsecret": "x"}) as r:
        assert (await r.json())["errcode"] == 40089


# ------------------------------------------------------------------------------------------ gateway
async def test_gateway_open_checks(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    s = Stream(http, emu)
    status, body = await s.open(secret="wrong")
    assert status == 400 and body["code"] == "invalidClientIdOrSecret"
    for subs in ([], "*", [{"type": "CALLBACK"}], [{"type": "BOGUS", "topic": "x"}], [{"type": "EVENT", "topic": "x"}]):
        status, body = await s.open(subs)  # type: ignore[arg-type]
        assert (status, body["code"]) == (400, "param.error"), subs
    assert emu.connections_opened == 0
    status, body = await s.open()
    assert status == 200 and body["endpoint"] == emu.base_url.replace("http", "ws") + "/connect" and body["ticket"]
    assert emu.connections_opened == 1 and emu.subscriptions == SUBS
    assert emu.last_open is not None and emu.last_open["ua"] == "duban-test/1.0"


async def test_ticket_single_use_and_expiry(emu: DingTalkEmulator, http: aiohttp.ClientSession,
                                            clock: ManualClock) -> None:
    s = Stream(http, emu)
    _, conn = await s.open()
    url = f"{conn['endpoint']}?ticket={quote_plus(conn['ticket'])}"
    async with http.get(url) as r:  # no upgrade: refused, ticket not burnt
        assert r.status == 400
    ws = await http.ws_connect(url)
    assert await emu.wait_connected() == emu.connection_ids[0]
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await http.ws_connect(url)  # single use
    assert e.value.status == 403
    _, conn2 = await s.open()
    clock.advance(90)
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await http.ws_connect(f"{conn2['endpoint']}?ticket={quote_plus(conn2['ticket'])}")
    assert e.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await http.ws_connect(f"{conn2['endpoint']}?ticket=made-up")
    assert e.value.status == 403
    _, conn3 = await s.open()
    clock.advance(89)
    ws3 = await http.ws_connect(f"{conn3['endpoint']}?ticket={quote_plus(conn3['ticket'])}")
    assert emu.websockets_accepted == 2 and emu.connections_opened == 3
    await ws.close()
    await ws3.close()


# ------------------------------------------------------------------------------------------ frames
async def test_robot_frame_pushed_and_acked(emu: DingTalkEmulator, http: aiohttp.ClientSession,
                                            clock: ManualClock) -> None:
    s = await Stream(http, emu).connect()
    mid = await emu.push_robot_text("alice", "待办", msg_id="msgABC")
    f = await s.recv()
    assert f["specVersion"] == "1.0" and f["type"] == "CALLBACK"
    h = f["headers"]
    assert set(h) == {"appId", "connectionId", "contentType", "messageId", "time", "topic"}
    assert h["messageId"] == mid and h["topic"] == TOPIC_ROBOT and h["contentType"] == "application/json"
    assert h["connectionId"] == emu.current_connection_id and h["time"] == str(int(clock() * 1000))
    assert isinstance(f["data"], str)
    d = json.loads(f["data"])
    assert d["msgtype"] == "text" and d["text"] == {"content": "待办"} and d["msgId"] == "msgABC"
    assert d["senderStaffId"] == "alice" and d["senderNick"] == "爱丽丝" and d["conversationType"] == "1"
    assert d["robotCode"] == ROBOT and d["conversationId"].startswith("cid")
    assert d["sessionWebhook"].startswith(f"{emu.oapi_base}/robot/sendBySession?session=")
    assert d["sessionWebhookExpiredTime"] - d["createAt"] == 5400 * 1000
    await s.ack(f, {"response": None})
    assert await emu.wait_for_ack(mid) == {"response": None}
    await s.no_frame(REDELIVER * 2)  # ACKed: never redelivered
    assert emu.deliveries[mid] == 1 and emu.bad_acks == []
    # group message: leading space kept where the @mention was (§2a)
    await emu.push_robot_text("bob", "统计", conversation_type="2", conversation_id="cidGroup1")
    g = json.loads((await s.recv())["data"])
    assert g["text"]["content"] == " 统计" and g["conversationId"] == "cidGroup1" and g["isInAtList"] is True
    await s.close()


async def test_unacked_frame_redelivered_with_same_message_id(emu: DingTalkEmulator,
                                                              http: aiohttp.ClientSession) -> None:
    s = await Stream(http, emu).connect()
    mid = await emu.push_robot_text("alice", "一")
    first = await s.recv()
    again = await s.recv(timeout=REDELIVER * 4)
    third = await s.recv(timeout=REDELIVER * 4)
    assert first["headers"]["messageId"] == again["headers"]["messageId"] == third["headers"]["messageId"] == mid
    assert first["data"] == again["data"] == third["data"]
    await s.no_frame(REDELIVER * 2)  # max_redeliveries=2 -> 3 deliveries, then given up
    assert emu.deliveries[mid] == 3 and emu.given_up == [mid] and mid not in emu.acks
    # ACKing the redelivered copy settles it
    mid2 = await emu.push_robot_text("alice", "二")
    await s.recv()
    copy2 = await s.recv(timeout=REDELIVER * 4)
    await s.ack(copy2, {"response": None})
    await emu.wait_for_ack(mid2)
    await s.no_frame(REDELIVER * 2)
    assert emu.deliveries[mid2] == 2
    # a late ACK of the first copy is not an error
    await s.ack(first, {"response": None})
    await s.no_frame(0.1)
    assert emu.bad_acks == []
    await s.close()


async def test_redelivery_on_next_connection_after_drop(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    s = await Stream(http, emu).connect()
    old_conn = emu.current_connection_id
    mid = await emu.push_robot_text("alice", "掉线前")
    await s.recv()
    await emu.drop_connection()
    assert s.ws is not None
    msg = await s.ws.receive(timeout=2)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
    assert not emu.connected
    await asyncio.sleep(REDELIVER * 1.5)  # the redelivery timer fires with no socket: it waits
    mid_new = await emu.push_robot_text("bob", "断线中")  # queued too
    assert emu.deliveries[mid] == 1 and emu.deliveries[mid_new] == 0
    s2 = await Stream(http, emu).connect()
    frames = [await s2.recv(), await s2.recv()]
    assert [f["headers"]["messageId"] for f in frames] == [mid, mid_new]
    assert all(f["headers"]["connectionId"] == emu.current_connection_id != old_conn for f in frames)
    for f in frames:
        await s2.ack(f, {"response": None})
    await emu.wait_for_ack(mid)
    await emu.wait_for_ack(mid_new)
    assert emu.deliveries[mid] == 2 and emu.deliveries[mid_new] == 1
    await s2.close()


async def test_ping_and_disconnect(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    s = await Stream(http, emu).connect()
    mid = await emu.push_ping()
    f = await s.recv()
    assert f["type"] == "SYSTEM" and f["headers"]["topic"] == "ping"
    data = json.loads(f["data"])
    assert set(data) == {"opaque"}
    await s.ack(f, data)
    assert await emu.wait_for_ack(mid) == data
    mid2 = await emu.push_ping()
    f2 = await s.recv()
    await s.ack(f2, {"opaque": "wrong"})
    await emu.wait_until(lambda: emu.bad_acks, what="bad ping ack")
    assert "echo" in emu.bad_acks[0]["reason"] and mid2 not in emu.acks
    await s.no_frame(REDELIVER * 2)  # SYSTEM frames are not redelivered

    dmid = await emu.push_disconnect()
    d = await s.recv()
    assert d["type"] == "SYSTEM" and d["headers"]["topic"] == "disconnect" and d["headers"]["messageId"] == dmid
    assert json.loads(d["data"]) == {"reason": "connection is expired"}
    assert not emu.connected  # draining: no new frames go there
    held = await emu.push_robot_text("alice", "切换中")
    assert s.ws is not None
    closing = await s.ws.receive(timeout=2)  # closed ~0.2 s later, nothing else sent first
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    s2 = await Stream(http, emu).connect()
    f3 = await s2.recv()
    assert f3["headers"]["messageId"] == held
    await s2.close()


async def test_bad_acks_recorded_and_frame_redelivered(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    s = await Stream(http, emu).connect()
    mid = await emu.push_robot_text("alice", "x")
    f = await s.recv()
    assert s.ws is not None
    await s.ws.send_str("not json")
    await s.ws.send_json({"code": 200, "headers": {"messageId": "nope", "contentType": "application/json"},
                          "message": "OK", "data": "{}"})
    await s.ws.send_json({"code": 200, "headers": {"messageId": mid, "contentType": "application/json"},
                          "message": "OK", "data": {"response": None}})  # data not a string
    await s.ws.send_json({"code": 200, "headers": {"messageId": mid}, "message": "OK", "data": "{}"})
    await emu.wait_until(lambda: len(emu.bad_acks) == 4, what="4 bad acks")
    reasons = [b["reason"] for b in emu.bad_acks]
    assert reasons[0] == "not JSON" and "unknown messageId" in reasons[1]
    assert "string" in reasons[2] and "contentType" in reasons[3]
    await s.ack(f, {"response": None}, code=500)  # not handled -> redelivered (emulator's choice)
    again = await s.recv(timeout=REDELIVER * 4)
    assert again["headers"]["messageId"] == mid and emu.nacks[mid]
    await s.ack(again, {"response": None})
    await emu.wait_for_ack(mid)
    await s.close()


async def test_subscriptions_and_events(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    s = await Stream(http, emu).connect(subs=[{"type": "CALLBACK", "topic": TOPIC_ROBOT}])
    mid = await emu.push_event("bpms_task_change", {"processInstanceId": "p1"})
    await s.no_frame(0.2)
    assert emu.not_subscribed[0]["messageId"] == mid
    await s.close()
    s2 = await Stream(http, emu).connect()
    emid = await emu.push_event("bpms_task_change", {"processInstanceId": "p1"})
    f = await s2.recv()
    assert f["type"] == "EVENT" and f["headers"]["eventType"] == "bpms_task_change"
    assert {"eventId", "eventCorpId", "eventBornTime", "eventUnifiedAppId"} <= set(f["headers"])
    await s2.ack(f, json.loads(f["data"]))  # the SDK 0.24.3 echo form: not the documented ACK
    f = await s2.recv(timeout=REDELIVER * 4)
    assert "status" in emu.bad_acks[-1]["reason"]
    await s2.ack(f, {"status": "LATER", "message": "busy"})
    f = await s2.recv(timeout=REDELIVER * 4)
    await s2.ack(f, {"status": "SUCCESS", "message": "ok"})
    assert await emu.wait_for_ack(emid) == {"status": "SUCCESS", "message": "ok"}
    assert emu.deliveries[emid] == 3
    await s2.close()


# ------------------------------------------------------------------------------------------ robot 1:1
async def test_batch_send_limits_and_lists(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    tok = await token(emu, http)
    path = "/v1.0/robot/oToMessages/batchSend"
    status, res = await v1(http, emu, "POST", path, batch(["alice", "ghost", "bob"]), tok)
    assert status == 200 and res["processQueryKey"]
    assert res["invalidStaffIdList"] == ["ghost"] and res["flowControlledStaffIdList"] == []
    assert emu.robot_texts("alice") == emu.robot_texts("bob") == ["你有一条督办待签收"]
    bad_bodies = [
        batch([f"u{i}" for i in range(21)]),
        batch([]),
        batch(["alice"], param={"content": "x"}) | {"msgParam": {"content": "x"}},  # object, not string
        batch(["alice"], param="{not json"),
        batch(["alice"], key="sampleMarkdown", param={"text": "no title"}),
        batch(["alice"], key="sampleText", param={"content": ""}),
        batch(["alice"], key="sampleHTML"),
        batch(["alice"], robotCode="other"),
    ]
    for b in bad_bodies:
        status, res = await v1(http, emu, "POST", path, b, tok)
        assert (status, res["code"]) == (400, "param.error"), (b, res)
    status, _ = await v1(http, emu, "POST", path, batch([f"u{i}" for i in range(20)]), tok)
    assert status == 200
    md = {"title": "督办", "text": "### 2026-0042\n请签收"}
    assert (await v1(http, emu, "POST", path, batch(["alice"], key="sampleMarkdown", param=md), tok))[0] == 200
    emu.flow_control("alice", 2)
    for _ in range(2):
        _, res = await v1(http, emu, "POST", path, batch(["alice", "bob"], param={"content": "限流"}), tok)
        assert res["flowControlledStaffIdList"] == ["alice"] and res["invalidStaffIdList"] == []
    _, res = await v1(http, emu, "POST", path, batch(["alice"], param={"content": "恢复"}), tok)
    assert res["flowControlledStaffIdList"] == []
    assert emu.robot_texts("alice") == ["你有一条督办待签收", "### 2026-0042\n请签收", "恢复"]
    assert len(emu.robot_flow_controlled["alice"]) == 2 and emu.robot_texts("bob")[-2:] == ["限流", "限流"]


# ------------------------------------------------------------------------------------------ work notice
async def test_work_notice_same_content_per_day_dropped(emu: DingTalkEmulator, http: aiohttp.ClientSession,
                                                        clock: ManualClock) -> None:
    clock.now = datetime(2026, 3, 2, 23, 58, tzinfo=SHANGHAI).timestamp()  # 15:58 UTC
    tok = await token(emu, http)
    path = "/topapi/message/corpconversation/asyncsend_v2"
    res = await oapi(http, emu, path, work("alice,bob"), tok)
    assert res["errcode"] == 0 and isinstance(res["task_id"], int) and res["request_id"]
    res2 = await oapi(http, emu, path, work("alice"), tok)  # same content, same day: silently dropped
    assert res2["errcode"] == 0
    assert emu.work_texts("alice") == ["督办提醒"] and emu.work_dropped["alice"][0]["reason"] == "143106"
    assert (await oapi(http, emu, path, work("alice", "另一条"), tok))["errcode"] == 0
    assert emu.work_texts("alice") == ["督办提醒", "另一条"]
    result = await oapi(http, emu, "/topapi/message/corpconversation/getsendresult",
                        {"agent_id": AGENT, "task_id": res2["task_id"]}, tok)
    assert result["send_result"]["forbidden_list"] == [{"code": "143106", "count": 1, "userid": "alice"}]
    clock.advance(180)  # 00:01 in Shanghai, still the same UTC day: a new DingTalk day
    assert (await oapi(http, emu, path, work("alice"), tok))["errcode"] == 0
    assert emu.work_texts("alice") == ["督办提醒", "另一条", "督办提醒"]
    # envelope errors
    assert (await oapi(http, emu, path, work("alice", agent_id=1), tok))["errcode"] == 40056
    assert (await oapi(http, emu, path, work("alice") | {"userid_list": ["alice"]}, tok))["errcode"] == 40035
    too_many = ",".join(f"u{i}" for i in range(5001))
    assert (await oapi(http, emu, path, work(too_many), tok))["errcode"] == 40035
    assert (await oapi(http, emu, path, work("alice", "长" * 1000), tok))["errcode"] == 40035  # > 2048 bytes
    bad_card = {"msgtype": "action_card", "action_card": {"title": "督办", "markdown": "请处理"}}
    assert (await oapi(http, emu, path, work("alice") | {"msg": bad_card}, tok))["errcode"] == 40035
    good_card = {"msgtype": "action_card", "action_card": {"title": "督办", "markdown": "请处理",
                                                           "single_title": "查看", "single_url": "https://x"}}
    assert (await oapi(http, emu, path, work("alice") | {"msg": good_card}, tok))["errcode"] == 0


async def test_work_notice_500_per_user_per_day(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    tok = await token(emu, http)
    path = "/topapi/message/corpconversation/asyncsend_v2"
    for i in range(500):
        assert (await oapi(http, emu, path, work("alice", f"第{i}条"), tok))["errcode"] == 0
    res = await oapi(http, emu, path, work("alice,bob", "第501条"), tok)
    assert res["errcode"] == 0
    assert len(emu.work_notices["alice"]) == 500 and emu.work_dropped["alice"][0]["reason"] == "143105"
    assert emu.work_texts("bob") == ["第501条"]


# ------------------------------------------------------------------------------------------ cards
async def test_card_create_checks(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    tok = await token(emu, http)
    path = "/v1.0/card/instances/createAndDeliver"
    status, res = await v1(http, emu, "POST", path, card("alice", "task-42-v1"), tok)
    assert status == 200 and res["success"] is True
    dr = res["result"]["deliverResults"]
    assert res["result"]["outTrackId"] == "task-42-v1" and len(dr) == 1
    assert dr[0]["spaceType"] == "IM_ROBOT" and dr[0]["spaceId"] == "alice" and dr[0]["success"] is True
    assert dr[0]["carrierId"]
    c = emu.cards["task-42-v1"]
    assert (c.template, c.user, c.delivered, c.callback_type) == (TEMPLATE, "alice", True, "STREAM")
    assert c.params["status"] == "pending" and [h["source"] for h in c.history] == ["create"]
    status, res = await v1(http, emu, "POST", path, card("ghost", "task-42-ghost"), tok)
    assert status == 200 and res["result"]["deliverResults"][0]["success"] is False
    assert res["result"]["deliverResults"][0]["errorMsg"] and emu.cards_for("ghost") == []
    bad = [
        card("alice", "t1", {"title": "x", "count": 3}),  # non-string value
        card("alice", "t2", {"items": ["a"]}),
        card("alice", "t3", cardTemplateId="other.schema"),
        card("alice", "x" * 65),
        card("alice", ""),
        card("alice", "t4", openSpaceId="dtv1.card//IM_GROUP.cid123"),
        card("alice", "t5", imRobotOpenDeliverModel={"spaceType": "IM_ROBOT", "robotCode": "other"}),
        card("alice", "t6", imRobotOpenDeliverModel={"robotCode": ROBOT}),
        card("alice", "t7", callbackType="WEBSOCKET"),
        card("alice", "t7b", callbackType="HTTP", callbackRouteKey="k"),  # strict: STREAM only
        {k: v for k, v in card("alice", "t7c").items() if k != "callbackType"},
        card("alice", "t8", userIdType=2),
    ]
    for b in bad:
        status, res = await v1(http, emu, "POST", path, b, tok)
        assert (status, res["code"]) == (400, "param.error"), (b, res)
    assert (await v1(http, emu, "POST", path, card("alice", "y" * 64), tok))[0] == 200
    status, res = await v1(http, emu, "POST", path, card("bob", "task-42-v1"), tok)
    assert (status, res["code"]) == (400, "duplicatedOutTrackId")
    assert (await v1(http, emu, "POST", path, card("alice", "t9"), None))[0] == 401
    assert sorted(emu.cards) == ["task-42-ghost", "task-42-v1", "y" * 64]


async def test_card_update_merge_vs_replace(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    tok = await token(emu, http)
    await v1(http, emu, "POST", "/v1.0/card/instances/createAndDeliver", card("alice", "c1"), tok)
    status, res = await v1(http, emu, "PUT", "/v1.0/card/instances",
                           {"outTrackId": "c1", "cardData": {"cardParamMap": {"status": "approved"}},
                            "cardUpdateOptions": {"updateCardDataByKey": True}, "userIdType": 1}, tok)
    assert status == 200 and res["success"] is True
    assert emu.cards["c1"].params == {"title": "督办 2026-0042", "status": "approved", "code": "2026-0042"}
    status, _ = await v1(http, emu, "PUT", "/v1.0/card/instances",
                         {"outTrackId": "c1", "cardData": {"cardParamMap": {"status": "returned"}},
                          "privateData": {"alice": {"cardParamMap": {"acted": "true"}}}}, tok)
    assert status == 200
    assert emu.cards["c1"].params == {"status": "returned"}  # no updateCardDataByKey: replaced
    assert emu.cards["c1"].private == {"alice": {"acted": "true"}}
    for body, code in [({"outTrackId": "nope", "cardData": {"cardParamMap": {}}}, "cardInstanceNotExist"),
                       ({"outTrackId": "c1", "cardData": {"cardParamMap": {"n": 1}}}, "param.error"),
                       ({"outTrackId": "c1"}, "param.error")]:
        status, res = await v1(http, emu, "PUT", "/v1.0/card/instances", body, tok)
        assert (status, res["code"]) == (400, code)
    assert emu.cards["c1"].params == {"status": "returned"}  # rejected updates change nothing
    assert [h["source"] for h in emu.cards["c1"].history] == ["create", "api", "api"]
    assert [u["merge"] for u in emu.card_updates] == [True, False]
    assert (await v1(http, emu, "PUT", "/v1.0/card/instances", {"outTrackId": "c1", "cardData": {
        "cardParamMap": {}}}, "bad"))[0] == 401


async def test_card_callback_only_for_delivered_cards(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    tok = await token(emu, http)
    path = "/v1.0/card/instances/createAndDeliver"
    await v1(http, emu, "POST", path, card("alice", "c-ok"), tok)
    await v1(http, emu, "POST", path, card("ghost", "c-ghost"), tok)
    nocb = card("alice", "c-nocb")
    del nocb["callbackType"]
    assert (await v1(http, emu, "POST", path, nocb, tok))[0] == 400
    emu.require_stream_callback = False  # like real DingTalk: accepted, but no callbacks ever
    assert (await v1(http, emu, "POST", path, nocb, tok))[0] == 200
    s = await Stream(http, emu).connect()
    params = {"action": "approve", "code": "2026-0042"}
    with pytest.raises(AssertionError, match="no card"):
        await emu.push_card_callback("c-missing", "alice", params)
    with pytest.raises(AssertionError, match="not delivered"):
        await emu.push_card_callback("c-ghost", "ghost", params)
    with pytest.raises(AssertionError, match="not delivered"):
        await emu.push_card_callback("c-ok", "bob", params)
    with pytest.raises(AssertionError, match="callbackType"):
        await emu.push_card_callback("c-nocb", "alice", params)
    mid = await emu.push_card_callback("c-ok", "alice", params)
    f = await s.recv()
    assert f["type"] == "CALLBACK" and f["headers"]["topic"] == TOPIC_CARD and f["headers"]["messageId"] == mid
    d = json.loads(f["data"])
    assert (d["outTrackId"], d["userId"], d["corpId"], d["type"]) == ("c-ok", "alice", emu.corp_id, "actionCallback")
    assert json.loads(d["content"]) == {"cardPrivateData": {"actionIds": ["approve"], "params": params}}
    # bad synchronous update in the ACK: recorded, click still ACKed, card unchanged
    await s.ack(f, {"response": {"cardData": {"cardParamMap": {"status": 1}}}})
    await emu.wait_for_ack(mid)
    assert "rejected" in emu.bad_acks[-1]["reason"] and emu.cards["c-ok"].params["status"] == "pending"
    mid2 = await emu.push_card_callback("c-ok", "alice", {"action": "return", "code": "2026-0042"}, "btn_return")
    f2 = await s.recv()
    assert json.loads(json.loads(f2["data"])["content"])["cardPrivateData"]["actionIds"] == ["btn_return"]
    await s.ack(f2, {"response": {"cardUpdateOptions": {"updateCardDataByKey": True,
                                                        "updatePrivateDataByKey": True},
                                  "cardData": {"cardParamMap": {"status": "已退回"}},
                                  "userPrivateData": {"cardParamMap": {"mine": "yes"}}}})
    await emu.wait_for_ack(mid2)
    c = emu.cards["c-ok"]
    assert c.params == {"title": "督办 2026-0042", "status": "已退回", "code": "2026-0042"}
    assert c.private == {"alice": {"mine": "yes"}} and c.history[-1]["source"] == "ack"
    assert emu.card_updates[-1]["source"] == "ack" and emu.card_updates[-1]["user"] == "alice"
    await s.close()


# ------------------------------------------------------------------------------------------ sessionWebhook
async def test_session_webhook(emu: DingTalkEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    s = await Stream(http, emu).connect()
    await emu.push_robot_text("alice", "待办")
    hook = json.loads((await s.recv())["data"])["sessionWebhook"]
    async with http.post(hook, json={"msgtype": "text", "text": {"content": "你有 2 项待办"},
                                     "at": {"atUserIds": ["alice"]}}) as r:
        assert r.status == 200 and (await r.json())["errcode"] == 0
    async with http.post(hook, json={"msgtype": "markdown", "markdown": {"title": "待办", "text": "**2**"}}) as r:
        assert (await r.json())["errcode"] == 0
    async with http.post(hook, json={"msgtype": "actionCard", "actionCard": {"title": "x"}}) as r:
        assert (await r.json())["errcode"] == 40035
    assert emu.session_texts("alice") == ["你有 2 项待办", "**2**"]
    clock.advance(5400)
    async with http.post(hook, json={"msgtype": "text", "text": {"content": "晚了"}}) as r:
        assert r.status == 500
    async with http.post(f"{emu.oapi_base}/robot/sendBySession?session=nope",
                         json={"msgtype": "text", "text": {"content": "x"}}) as r:
        assert r.status == 500
    assert len(emu.session_replies) == 2
    await s.close()


async def test_robot_payload_for_http_mode(emu: DingTalkEmulator) -> None:
    p = emu.robot_text_payload("bob", "查看 42")
    assert p["senderStaffId"] == "bob" and p["text"]["content"] == "查看 42"
    h = emu.http_callback_headers(1_700_000_000_000)
    assert h["timestamp"] == "1700000000000" and len(h["sign"]) == 44
    with pytest.raises(AssertionError):
        emu.robot_text_payload("stranger", "hi")


# ------------------------------------------------------------------------------------------ faults
async def test_fault_injection(emu: DingTalkEmulator, http: aiohttp.ClientSession) -> None:
    tok = await token(emu, http)
    path = "/v1.0/robot/oToMessages/batchSend"
    emu.fail_next("v1.0/robot/oToMessages/batchSend", status=503, times=2)
    emu.fail_next(path, status=400, body={"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "qps"})
    for status, code in [(503, "ServiceUnavailable"), (503, "ServiceUnavailable"),
                         (400, "Forbidden.AccessDenied.QpsLimitForApi")]:
        got_status, body = await v1(http, emu, "POST", path, batch(["alice"]), tok)
        assert (got_status, body["code"]) == (status, code)
    assert emu.robot_texts("alice") == []
    emu.fail_next("/topapi/message/corpconversation/asyncsend_v2", status=200,
                  body={"errcode": 90002, "errmsg": "limit"})
    assert (await oapi(http, emu, "/topapi/message/corpconversation/asyncsend_v2", work("alice"), tok)
            )["errcode"] == 90002
    emu.delay_next(path, 0.5)
    with pytest.raises(asyncio.TimeoutError):
        await v1(http, emu, "POST", path, batch(["alice"], param={"content": "late"}), tok,
                 timeout=aiohttp.ClientTimeout(total=0.1))
    await emu.wait_until(lambda: emu.robot_texts("alice") == ["late"], 2, "delayed send")  # executed anyway
    assert [p for p, _ in emu.requests].count(path) == 4
    emu.fail_next("/connect", status=502)
    s = Stream(http, emu)
    _, conn = await s.open()
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await http.ws_connect(f"{conn['endpoint']}?ticket={conn['ticket']}")
    assert e.value.status == 502
    ws = await http.ws_connect(f"{conn['endpoint']}?ticket={conn['ticket']}")  # ticket was not burnt
    await ws.close()


async def test_stop_closes_sockets_and_does_not_hang(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    e = DingTalkEmulator(APP_KEY, APP_SECRET, ROBOT, AGENT, users=["alice"], clock=clock, redeliver_after=30)
    await e.start()
    s = await Stream(http, e).connect()
    await e.push_robot_text("alice", "x")
    await s.recv()
    e.delay_next("/v1.0/oauth2/accessToken", 30)
    task = asyncio.create_task(http.post(f"{e.api_base}/v1.0/oauth2/accessToken", json={}))
    await asyncio.sleep(0.1)
    await asyncio.wait_for(e.stop(), 5)
    assert s.ws is not None
    msg = await s.ws.receive(timeout=2)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
    task.cancel()
