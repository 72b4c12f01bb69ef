"""Tests of the WeCom emulator itself, over real HTTP, so the fixture can be trusted by adapter tests."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import xmltodict
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from .wecom import (
    CallbackVerificationError,
    ManualClock,
    WeComCallbackClient,
    WeComEmulator,
    xml_fields,
)

pytestmark = pytest.mark.asyncio

CORP, SECRET, AGENT = "wx5823bf96d3bd56c7", "s3cret", 1000002
TOKEN, AES_KEY = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def emu(clock: ManualClock):
    async with WeComEmulator(CORP, SECRET, AGENT, clock, users=["alice", "bob", "Carol"]) as e:
        yield e


@pytest_asyncio.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


async def get_token(emu: WeComEmulator, http: aiohttp.ClientSession) -> str:
    async with http.get(f"{emu.base_url}/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": SECRET}) as r:
        data = await r.json()
    assert data["errcode"] == 0, data
    return data["access_token"]


async def call(http: aiohttp.ClientSession, emu: WeComEmulator, api: str, body: Any, token: str | None,
               **kw: Any) -> dict[str, Any]:
    params = {} if token is None else {"access_token": token}
    async with http.post(f"{emu.base_url}/cgi-bin/{api}", params=params, json=body, **kw) as r:
        return await r.json()


def text(to: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"touser": to, "msgtype": "text", "agentid": AGENT, "text": {"content": content}, **extra}


def card(to: str, task_id: str, buttons: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    tc = {"card_type": "button_interaction", "main_title": {"title": "督办事项"}, "task_id": task_id,
          "button_list": buttons if buttons is not None else [
              {"text": "已完成", "style": 1, "key": "done:1"}, {"text": "延期", "key": "delay:1"},
              {"type": 1, "text": "详情", "url": "https://example.org/t/1"}]}
    tc.update(fields)
    return {"touser": to, "msgtype": "template_card", "agentid": AGENT, "template_card": tc}


# ------------------------------------------------------------------------------------------ tokens
async def test_gettoken_ok_and_errors(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    url = f"{emu.base_url}/cgi-bin/gettoken"
    async with http.get(url, params={"corpid": CORP, "corpsecret": SECRET}) as r:
        ok = await r.json()
    assert ok["errcode"] == 0 and ok["errmsg"] == "ok" and ok["expires_in"] == 7200 and ok["access_token"]
    async with http.get(url, params={"corpid": CORP, "corpsecret": "nope"}) as r:
        assert (await r.json())["errcode"] == 40001
    async with http.get(url, params={"corpid": "wrong", "corpsecret": SECRET}) as r:
        assert (await r.json())["errcode"] == 40013
    assert emu.gettoken_calls == 3
    assert emu.requests[0] == ("/cgi-bin/gettoken", {"corpid": CORP, "corpsecret": SECRET})


async def test_token_missing_unknown_expired(emu: WeComEmulator, http: aiohttp.ClientSession,
                                             clock: ManualClock) -> None:
    assert (await call(http, emu, "message/send", text("alice", "x"), None))["errcode"] == 41001
    assert (await call(http, emu, "message/send", text("alice", "x"), "bogus"))["errcode"] == 40014
    tok = await get_token(emu, http)
    clock.advance(7199)
    assert (await call(http, emu, "message/send", text("alice", "x"), tok))["errcode"] == 0
    clock.advance(1)
    assert (await call(http, emu, "message/send", text("alice", "x"), tok))["errcode"] == 42001
    tok2 = await get_token(emu, http)
    assert tok2 != tok and (await call(http, emu, "message/send", text("alice", "x"), tok2))["errcode"] == 0


async def test_expire_tokens_early(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    t1, t2 = await get_token(emu, http), await get_token(emu, http)
    assert (await call(http, emu, "message/send", text("alice", "x"), t1))["errcode"] == 0  # refetch kept t1
    emu.expire_tokens()
    for t in (t1, t2):
        assert (await call(http, emu, "message/send", text("alice", "x"), t))["errcode"] == 42001
    assert (await call(http, emu, "message/send", text("alice", "x"), await get_token(emu, http)))["errcode"] == 0


async def test_same_token_within_ttl(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    async with WeComEmulator(CORP, SECRET, AGENT, clock, same_token_within_ttl=True) as e:
        t1 = await get_token(e, http)
        clock.advance(7000)
        assert await get_token(e, http) == t1  # still says expires_in 7200, but dies in 200 s
        clock.advance(200)
        assert await get_token(e, http) != t1


# ------------------------------------------------------------------------------------------ send
async def test_send_text_ok(emu: WeComEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    res = await call(http, emu, "message/send", text("alice|CAROL", "你好"), await get_token(emu, http))
    assert res == {"errcode": 0, "errmsg": "ok", "invaliduser": "", "invalidparty": "", "invalidtag": "",
                   "unlicenseduser": "", "msgid": res["msgid"]}
    assert emu.texts_for("alice") == ["你好"] and emu.texts_for("carol") == ["你好"]
    assert emu.delivered["Carol"][0]["msgid"] == res["msgid"] and emu.delivered["Carol"][0]["time"] == clock()
    res2 = await call(http, emu, "message/send", text("bob", "x"), await get_token(emu, http))
    assert res2["msgid"] != res["msgid"]
    assert emu.requests[-1] == ("/cgi-bin/message/send", text("bob", "x"))


async def test_content_limits(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    tok = await get_token(emu, http)
    exact = "中" * 682 + "ab"  # 2046 + 2 = 2048 bytes
    assert (await call(http, emu, "message/send", text("alice", exact), tok))["errcode"] == 0
    assert (await call(http, emu, "message/send", text("alice", exact + "x"), tok))["errcode"] == 40058
    assert (await call(http, emu, "message/send", text("alice", ""), tok))["errcode"] == 40058
    md = {"touser": "alice", "msgtype": "markdown", "agentid": AGENT, "markdown": {"content": "a" * 2049}}
    assert (await call(http, emu, "message/send", md, tok))["errcode"] == 40058
    md["markdown"]["content"] = "**a**"
    assert (await call(http, emu, "message/send", md, tok))["errcode"] == 0
    assert emu.texts_for("alice") == [exact, "**a**"]
    tc = {"touser": "alice", "msgtype": "textcard", "agentid": AGENT,
          "textcard": {"title": "t" * 129, "description": "d", "url": "https://x"}}
    assert (await call(http, emu, "message/send", tc, tok))["errcode"] == 40058


async def test_envelope_errors(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    tok = await get_token(emu, http)
    assert (await call(http, emu, "message/send", text("alice", "x", agentid=1), tok))["errcode"] == 40056
    assert (await call(http, emu, "message/send", {**text("alice", "x"), "msgtype": "news"}, tok))["errcode"] == 40008
    assert (await call(http, emu, "message/send", [1, 2], tok))["errcode"] == 47001
    async with http.post(f"{emu.base_url}/cgi-bin/message/send", params={"access_token": tok},
                         data=b"not json") as r:
        assert (await r.json())["errcode"] == 47001
    assert (await call(http, emu, "message/send", text(["alice"], "x"), tok))["errcode"] == 40058  # type: ignore[arg-type]
    async with http.get(f"{emu.base_url}/cgi-bin/user/get", params={"access_token": tok}) as r:
        assert r.status == 404 and (await r.json())["errcode"] == 40000
    assert emu.delivered == {}


async def test_recipients(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    tok = await get_token(emu, http)
    res = await call(http, emu, "message/send", text("alice|Ghost|BOB|bob", "x", toparty="2"), tok)
    assert res["errcode"] == 0 and res["invaliduser"] == "ghost" and res["invalidparty"] == "2"
    assert emu.texts_for("bob") == ["x"]  # case-insensitive, de-duplicated
    res = await call(http, emu, "message/send", text("ghost|Nobody", "x"), tok)
    assert res["errcode"] == 81013 and res["invaliduser"] == "ghost|nobody"
    res = await call(http, emu, "message/send", text("@all", "all"), tok)
    assert res["errcode"] == 0 and all(emu.texts_for(u)[-1] == "all" for u in ("alice", "bob", "carol"))


async def test_touser_limit_1000(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    for i in range(1001):
        emu.add_user(f"u{i}")
    tok = await get_token(emu, http)
    ids = [f"u{i}" for i in range(1001)]
    assert (await call(http, emu, "message/send", text("|".join(ids[:1000]), "x"), tok))["errcode"] == 0
    assert (await call(http, emu, "message/send", text("|".join(ids), "x"), tok))["errcode"] == 40058
    assert emu.texts_for("u999") == ["x"] and emu.texts_for("u1000") == []


# ------------------------------------------------------------------------------------------ cards
async def test_card_send_and_limits(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    tok = await get_token(emu, http)
    res = await call(http, emu, "message/send", card("alice|bob", "dbt_1"), tok)
    assert res["errcode"] == 0 and res["response_code"] and res["msgid"]
    assert emu.cards_for("alice")[0]["task_id"] == "dbt_1" and emu.cards_for("bob")[0]["task_id"] == "dbt_1"

    btn = [{"text": f"b{i}", "key": f"k{i}"} for i in range(7)]
    bad_cards = [
        card("alice", "t2", btn),  # 7 buttons
        card("alice", "t3", []),  # no button
        card("alice", "t4", [{"text": "a", "key": "k"}, {"text": "b", "key": "k"}]),  # duplicate key
        card("alice", "t5", [{"text": "a", "key": "k" * 1025}]),  # key > 1024 bytes
        card("alice", "t6", [{"text": "a"}]),  # callback button without key
        card("alice", "t7", main_title={}),  # no title
        card("alice", "t8", horizontal_content_list=[{"keyname": "k", "value": "v"}] * 7),
    ]
    for body in bad_cards:
        assert (await call(http, emu, "message/send", body, tok))["errcode"] == 40058, body
    ok = card("alice", "t9", btn[:6], horizontal_content_list=[{"keyname": "k", "value": "v"}] * 6)
    ok["template_card"]["button_list"][0]["key"] = "k" * 1024
    assert (await call(http, emu, "message/send", ok, tok))["errcode"] == 0


async def test_task_id_rules(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    tok = await get_token(emu, http)
    for bad in ("a b", "任务1", "x" * 129, "", "a/b"):
        assert (await call(http, emu, "message/send", card("alice", bad), tok))["errcode"] == 42014, bad
    no_id = card("alice", "x")
    del no_id["template_card"]["task_id"]
    assert (await call(http, emu, "message/send", no_id, tok))["errcode"] == 42014
    assert (await call(http, emu, "message/send", card("alice", "A-z_0@" + "x" * 122), tok))["errcode"] == 0
    # A send rejected for another reason (81013) does not burn the task_id; an accepted one does, forever.
    assert (await call(http, emu, "message/send", card("ghost", "once"), tok))["errcode"] == 81013
    assert (await call(http, emu, "message/send", card("alice", "once"), tok))["errcode"] == 0
    assert (await call(http, emu, "message/send", card("bob", "once"), tok))["errcode"] == 42014
    assert emu.cards_for("bob") == []


async def test_silent_drop_per_member(emu: WeComEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    tok = await get_token(emu, http)
    for i in range(31):
        assert (await call(http, emu, "message/send", text("alice", f"m{i}"), tok))["errcode"] == 0
    assert len(emu.delivered["alice"]) == 30 and [m["content"] for m in emu.dropped["alice"]] == ["m30"]
    assert (await call(http, emu, "message/send", text("bob", "b"), tok))["errcode"] == 0
    assert emu.texts_for("bob") == ["b"]  # limit is per member
    clock.advance(59.9)
    await call(http, emu, "message/send", text("alice", "still blocked"), tok)
    assert emu.dropped["alice"][-1]["content"] == "still blocked"
    clock.advance(0.1)  # the first 30 leave the sliding minute
    await call(http, emu, "message/send", text("alice", "ok again"), tok)
    assert emu.texts_for("alice")[-1] == "ok again"


async def test_hourly_drop_per_member(emu: WeComEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    tok = await get_token(emu, http)
    for i in range(1001):
        if i and i % 30 == 0:
            clock.advance(60)
        await call(http, emu, "message/send", text("alice", str(i)), tok)
    assert len(emu.delivered["alice"]) == 1000 and emu.dropped["alice"][0]["content"] == "1000"


async def test_update_button_and_response_code_rules(emu: WeComEmulator, http: aiohttp.ClientSession,
                                                      clock: ManualClock) -> None:
    tok = await get_token(emu, http)
    rc = (await call(http, emu, "message/send", card("alice|bob", "u1"), tok))["response_code"]
    upd = {"userids": ["alice", "ghost"], "agentid": AGENT, "response_code": rc, "button": {"replace_name": "已处理"}}
    assert (await call(http, emu, "message/update_template_card", {**upd, "response_code": "nope"}, tok))[
        "errcode"] == 93101
    assert (await call(http, emu, "message/update_template_card", {**upd, "agentid": 9}, tok))["errcode"] == 40056
    res = await call(http, emu, "message/update_template_card", upd, tok)
    assert res["errcode"] == 0 and res["invaliduser"] == ["ghost"]
    assert emu.updates[-1]["task_id"] == "u1" and emu.updates[-1]["replace_name"] == "已处理"
    assert emu.updates[-1]["userids"] == ["alice"]
    assert emu.card_state("alice", "u1")["replace_name"] == "已处理"  # type: ignore[index]
    assert emu.card_state("bob", "u1")["replace_name"] is None  # type: ignore[index]
    assert (await call(http, emu, "message/update_template_card", upd, tok))["errcode"] == 93102  # single use
    with pytest.raises(AssertionError, match="disabled"):
        emu.click("alice", "u1", "done:1")

    rc2 = (await call(http, emu, "message/send", card("alice", "u2"), tok))["response_code"]
    rc3 = (await call(http, emu, "message/send", card("alice", "u3"), tok))["response_code"]
    clock.advance(72 * 3600 - 1)
    tok = await get_token(emu, http)
    assert (await call(http, emu, "message/update_template_card", {**upd, "response_code": rc2}, tok))[
        "errcode"] == 0
    clock.advance(1)
    assert (await call(http, emu, "message/update_template_card", {**upd, "response_code": rc3}, tok))[
        "errcode"] == 93103


async def test_click_and_card_replace(emu: WeComEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    tok = await get_token(emu, http)
    await call(http, emu, "message/send", card("alice", "c1"), tok)
    with pytest.raises(AssertionError, match="no card"):
        emu.click("bob", "c1", "done:1")  # not delivered to bob
    with pytest.raises(AssertionError, match="no callback button"):
        emu.click("alice", "c1", "nokey")
    ev = emu.click("alice", "c1", "delay:1")
    assert ev == {"ToUserName": CORP, "FromUserName": "alice", "CreateTime": int(clock()), "MsgType": "event",
                  "Event": "template_card_event", "EventKey": "delay:1", "TaskId": "c1",
                  "CardType": "button_interaction", "ResponseCode": ev["ResponseCode"], "AgentID": AGENT}
    new = {"card_type": "button_interaction", "main_title": {"title": "已延期"}, "task_id": "c1",
           "button_list": [{"text": "确认", "key": "ack"}]}
    upd = {"userids": ["alice"], "agentid": AGENT, "response_code": ev["ResponseCode"], "template_card": new}
    assert (await call(http, emu, "message/update_template_card", upd, tok))["errcode"] == 0
    assert emu.updates[-1]["template_card"] == new and emu.updates[-1]["source"] == "click"
    assert emu.card_state("alice", "c1") == {"card": new, "replace_name": None}
    assert emu.click("alice", "c1", "ack")["ResponseCode"] != ev["ResponseCode"]
    with pytest.raises(AssertionError):
        emu.click("alice", "c1", "done:1")  # old button is gone


async def test_dropped_card_cannot_be_clicked(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    tok = await get_token(emu, http)
    for i in range(30):
        await call(http, emu, "message/send", text("alice", str(i)), tok)
    assert (await call(http, emu, "message/send", card("alice", "late"), tok))["errcode"] == 0
    assert emu.cards_for("alice") == [] and emu.dropped["alice"][-1]["card"]["task_id"] == "late"
    with pytest.raises(AssertionError):
        emu.click("alice", "late", "done:1")


# ------------------------------------------------------------------------------------------ media
async def upload(http: aiohttp.ClientSession, emu: WeComEmulator, tok: str, mtype: str, data: bytes) -> dict:
    form = aiohttp.FormData()
    form.add_field("media", io.BytesIO(data), filename="报告.pdf", content_type="application/octet-stream")
    async with http.post(f"{emu.base_url}/cgi-bin/media/upload", params={"access_token": tok, "type": mtype},
                         data=form) as r:
        return await r.json()


async def test_media_upload_and_send(emu: WeComEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    tok = await get_token(emu, http)
    res = await upload(http, emu, tok, "file", b"%PDF-1.4 hello")
    assert res["errcode"] == 0 and res["type"] == "file" and res["created_at"] == str(int(clock()))
    assert emu.media[res["media_id"]]["data"] == b"%PDF-1.4 hello"
    # Stored as sent: aiohttp's FormData percent-encodes non-ASCII names in plain filename="...".
    assert emu.media[res["media_id"]]["filename"] == "%E6%8A%A5%E5%91%8A.pdf"
    assert 'name="media"' in emu.media[res["media_id"]]["content_disposition"]
    assert (await upload(http, emu, tok, "file", b"1234"))["errcode"] == 40006
    assert (await upload(http, emu, tok, "image", b"\0" * (10 * 1024 * 1024 + 1)))["errcode"] == 40006
    assert (await upload(http, emu, tok, "file", b"\0" * (10 * 1024 * 1024 + 1)))["errcode"] == 0
    assert (await upload(http, emu, tok, "voice", b"123456"))["errcode"] == 40004
    body = {"touser": "alice", "msgtype": "file", "agentid": AGENT, "file": {"media_id": res["media_id"]}}
    assert (await call(http, emu, "message/send", body, tok))["errcode"] == 0
    assert emu.delivered["alice"][0]["payload"] == {"media_id": res["media_id"]}
    body["file"]["media_id"] = "unknown"
    assert (await call(http, emu, "message/send", body, tok))["errcode"] == 40007


# ------------------------------------------------------------------------------------------ faults
async def test_fault_injection(emu: WeComEmulator, http: aiohttp.ClientSession) -> None:
    tok = await get_token(emu, http)
    emu.fail_next("message/send", 45009, times=2)
    emu.rate_limit("/cgi-bin/message/send", errcode=45033)
    emu.fail_next("message/send", -1)
    for code in (45009, 45009, 45033, -1, 0):
        assert (await call(http, emu, "message/send", text("alice", "x"), tok))["errcode"] == code
    assert emu.texts_for("alice") == ["x"]
    emu.http_error_next("message/send", 502)
    async with http.post(f"{emu.base_url}/cgi-bin/message/send", params={"access_token": tok},
                         json=text("alice", "y")) as r:
        assert r.status == 502
    emu.fail_next("gettoken", 42001)
    async with http.get(f"{emu.base_url}/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": SECRET}) as r:
        assert (await r.json())["errcode"] == 42001
    emu.delay_next("message/send", 0.5)
    with pytest.raises(asyncio.TimeoutError):
        await call(http, emu, "message/send", text("alice", "late"), tok, timeout=aiohttp.ClientTimeout(total=0.1))
    await asyncio.sleep(0.6)
    assert emu.texts_for("alice") == ["x", "late"]  # executed although the client gave up
    assert [p for p, _ in emu.requests].count("/cgi-bin/message/send") == 7


async def test_stop_does_not_hang_on_delay(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    e = WeComEmulator(CORP, SECRET, AGENT, clock)
    await e.start()
    e.delay_next("gettoken", 30)
    task = asyncio.create_task(http.get(f"{e.base_url}/cgi-bin/gettoken"))
    await asyncio.sleep(0.1)
    await asyncio.wait_for(e.stop(), 5)
    task.cancel()


# ------------------------------------------------------------------------------------------ crypto
@pytest.fixture
def cb() -> WeComCallbackClient:
    return WeComCallbackClient(TOKEN, AES_KEY, CORP, AGENT)


@pytest.fixture
def wx() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, AES_KEY, CORP)


async def test_encrypt_post_roundtrip_with_wechatpy(cb: WeComCallbackClient, wx: WeChatCrypto) -> None:
    plain = cb.text_xml("zhangsan", "督办 ]]> <&> 完成", 1234567890123456, create_time=1700000000)
    params, body = cb.encrypt_post(plain, timestamp=1700000000, nonce="1372623149")
    assert set(params) == {"msg_signature", "timestamp", "nonce"}
    assert b"<ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>" in body
    out = wx.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"])
    assert out == plain
    d = xmltodict.parse(out)["xml"]
    assert d["Content"] == "督办 ]]> <&> 完成" and d["MsgId"] == "1234567890123456" and d["AgentID"] == str(AGENT)


async def test_click_event_roundtrip(emu: WeComEmulator, http: aiohttp.ClientSession, cb: WeComCallbackClient,
                                     wx: WeChatCrypto) -> None:
    await call(http, emu, "message/send", card("alice", "e1"), await get_token(emu, http))
    plain = cb.event_xml(emu.click("alice", "e1", "done:1"))
    params, body = cb.encrypt_post(plain)
    d = xmltodict.parse(wx.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"]))["xml"]
    assert (d["Event"], d["EventKey"], d["TaskId"], d["FromUserName"]) == ("template_card_event", "done:1", "e1",
                                                                           "alice")
    assert d["ResponseCode"] == emu.clicks[-1]["ResponseCode"]
    nested = cb.event_xml({"SelectedItems": {"SelectedItem": [{"QuestionKey": "q", "OptionIds": {"OptionId": ["a"]}}]}})
    assert nested == ("<xml><SelectedItems><SelectedItem><QuestionKey><![CDATA[q]]></QuestionKey><OptionIds>"
                      "<OptionId><![CDATA[a]]></OptionId></OptionIds></SelectedItem></SelectedItems></xml>")


async def test_forgeries_rejected_by_wechatpy(cb: WeComCallbackClient, wx: WeChatCrypto) -> None:
    plain = cb.text_xml("zhangsan", "hi", 1)
    params, body = cb.encrypt_post(plain, forge_signature=True)
    with pytest.raises(InvalidSignatureException):
        wx.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"])
    params, body = cb.encrypt_post(plain, receive_id="wx_other_corp")
    with pytest.raises(InvalidCorpIdException):
        wx.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"])


async def test_url_verification_params(cb: WeComCallbackClient, wx: WeChatCrypto) -> None:
    q = cb.verify_url_params("1616140317555161061")
    assert wx.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]) == "1616140317555161061"
    bad = cb.verify_url_params("x", forge_signature=True)
    with pytest.raises(InvalidSignatureException):
        wx.check_signature(bad["msg_signature"], bad["timestamp"], bad["nonce"], bad["echostr"])


async def test_decrypt_reply_of_wechatpy(cb: WeComCallbackClient, wx: WeChatCrypto) -> None:
    reply = ("<xml><ToUserName><![CDATA[alice]]></ToUserName><FromUserName><![CDATA[wx5823bf96d3bd56c7]]>"
             "</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[update_button]]></MsgType>"
             "<Button><ReplaceName><![CDATA[已处理]]></ReplaceName></Button></xml>")
    envelope = wx.encrypt_message(reply, "5551234", "1700000000")
    assert cb.decrypt_reply(envelope.encode()) == reply
    assert xml_fields(reply)["MsgType"] == "update_button"
    assert cb.decrypt_reply(b"") is None
    with pytest.raises(CallbackVerificationError, match="MsgSignature"):
        cb.decrypt_reply(envelope.replace("5551234", "5551235"))
    other = WeChatCrypto(TOKEN, AES_KEY, "wx_other_corp").encrypt_message(reply, "1", "1700000000")
    with pytest.raises(CallbackVerificationError, match="receiveid"):
        cb.decrypt_reply(other)
    with pytest.raises(CallbackVerificationError):
        cb.decrypt_reply(b"success")
