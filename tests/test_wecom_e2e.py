"""The whole procedure through WeCom: API → cards → clicks → replies, against the strict emulator.

Every test runs on SQLite and on PostgreSQL (the `world` fixture takes `db_url`). People speak as
WeCom would: encrypted callbacks into the real aiohttp server, clicks only on cards the emulator really
delivered; what each person received is read from the emulator's delivery records, and the state of the
item from the JSON API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import aiohttp
import pytest

from bot.inbound import STALE
from handlers.chat import UNKNOWN_USER
from wecom_world import WeComWorld, world  # noqa: F401  (fixture)

# card titles (handlers/render.py): what the receiver sees at the top of each card
SIGN_CARD, DRAFT_CARD, PROGRESS_CARD, CLOSURE_CARD, EXTENSION_CARD = (
    "请签收督办事项", "立项审核", "进展待审核", "办结待审核", "延期申请",
)
SECOND_OFFICE = {"unit": "学校办公室", "name": "郑督办", "roles": ["office"], "wecom_id": "zheng"}


async def create(w: WeComWorld, kind: str = "special", **extra: object) -> str:
    body = {"kind": kind, "title": "推进一流本科课程建设", "lead_unit": "教务处", "deadline": "2026-04-30", **extra}
    if kind == "incoming":
        body.setdefault("source_title", "教育部关于一流课程建设的通知")
    status, data = await w.api("POST", "/api/v1/items", json=body)
    assert status == 201, data
    return str(data["code"])


async def status_of(w: WeComWorld, code: str) -> str:
    _, data = await w.api("GET", f"/api/v1/items/{code}")
    return str(data["status"])


async def in_progress(w: WeComWorld, kind: str = "special", **extra: object) -> str:
    """An item designated to 张老师 (by the office at creation) and signed by text; inboxes cleared."""
    code = await create(w, kind, handler="张老师", **extra)
    await w.drain()
    assert "已签收" in (await w.say("zhang", f"签收 {code}") or "")
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    w.news()
    return code


async def at_unit_review(w: WeComWorld, kind: str = "special") -> str:
    code = await in_progress(w, kind)
    assert "办结已提交" in (await w.say("zhang", f"办结 {code} 课程建设方案已印发") or "")
    await w.drain()
    w.expect_news({"chen": [f"card:{CLOSURE_CARD}"]})
    return code


# =====================================================================================================
# 1. The complete life of an item of each kind, driven by cards wherever a card exists


async def test_special_item_full_life_by_cards(world: WeComWorld) -> None:
    w = world
    code = await create(w, "special")
    await w.drain()
    assert any("请指派专人" in t for t in w.texts("chen")), w.texts("chen")

    assert "已指派张老师" in (await w.say("chen", f"指派 {code} 张老师") or "")
    await w.drain()
    await w.press_last("zhang", "签收")
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    assert w.emu.card_state("zhang", w.last_card("zhang")["task_id"])["replace_name"].startswith("已签收")
    assert any("已签收" in t for t in w.texts("zhang"))

    assert "进展已提交" in (await w.say("zhang", f"进展 {code} 完成课程摸底") or "")
    await w.drain()
    await w.press_last("chen", "同意")
    await w.drain()
    _, data = await w.api("GET", f"/api/v1/items/{code}")
    assert data["progress"][0]["status"] == "published"

    await w.say("zhang", f"办结 {code} 课程建设方案已印发")
    await w.drain()
    await w.press_last("chen", "同意")
    await w.drain()
    assert await status_of(w, code) == "office_review"
    await w.press_last("zhou", "同意")
    await w.drain()
    assert await status_of(w, code) == "leader_review"
    await w.press_last("li", "同意")
    await w.drain()
    assert await status_of(w, code) == "closed"
    assert any("已办结" in t for t in w.texts("zhang"))
    assert "已归档" in (await w.say("zhang", f"归档 {code}") or "")
    assert await status_of(w, code) == "archived"


@pytest.mark.parametrize("kind", ["incoming", "special", "periodic"])
async def test_complete_life_of_each_kind(world: WeComWorld, kind: str) -> None:
    """incoming: principal → leader; special/periodic: principal → office (two staff) → leader;
    periodic starts as a draft that 李校长 approves on the draft card."""
    w = world
    await w.add_people(SECOND_OFFICE)
    await w.drain()
    w.news()
    code = await create(w, kind)
    await w.drain()

    if kind == "periodic":
        assert await status_of(w, code) == "draft"
        w.expect_news({"li": [f"card:{DRAFT_CARD}"]})
        draft = w.last_card("li")
        assert w.card_outcome("li", draft) is None
        await w.press_last("li", "同意")
        await w.drain()
        assert await status_of(w, code) == "assigned"
        assert w.card_outcome("li", draft) == "已同意（李校长）"
        w.expect_news({"li": ["当前状态：待指派"], "chen": ["请指派专人"]})
    else:
        assert await status_of(w, code) == "assigned"
        w.expect_news({"chen": ["请指派专人"]})

    # principal designates by text
    reply = await w.say("chen", f"指派 {code} 张老师")
    assert reply is not None and "已指派张老师" in reply
    await w.drain()
    assert await status_of(w, code) == "designated"
    w.expect_news({"zhang": [f"card:{SIGN_CARD}"]})

    # handler signs on the card
    sign_card = w.last_card("zhang")
    await w.press_last("zhang", "签收")
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    assert w.card_outcome("zhang", sign_card) == "已签收（张老师）"
    w.expect_news({"zhang": [f"已签收 {code}"]})

    # progress by text, principal agrees on the card
    assert "进展已提交" in (await w.say("zhang", f"进展 {code} 完成课程摸底") or "")
    await w.drain()
    assert (await w.item(code))["progress"][0]["status"] == "pending"
    w.expect_news({"chen": [f"card:{PROGRESS_CARD}"]})
    progress_card = w.last_card("chen")
    await w.press_last("chen", "同意")
    await w.drain()
    data = await w.item(code)
    assert [p["status"] for p in data["progress"]] == ["published"]
    assert data["status"] == "in_progress"
    assert w.card_outcome("chen", progress_card) == "已同意（陈处长）"
    w.expect_news({"chen": ["已同意"], "zhang": ["进展已审核发布"]})

    # closure by text, then each review by card
    assert "办结已提交" in (await w.say("zhang", f"办结 {code} 课程建设方案已印发") or "")
    await w.drain()
    assert await status_of(w, code) == "unit_review"
    w.expect_news({"chen": [f"card:{CLOSURE_CARD}"]})
    unit_card = w.last_card("chen")
    await w.press_last("chen", "同意")
    await w.drain()
    assert w.card_outcome("chen", unit_card) == "已同意（陈处长）"

    if kind == "incoming":  # 第六条 3: no office review
        assert await status_of(w, code) == "leader_review"
        w.expect_news({"chen": ["待校领导审批"], "li": [f"card:{CLOSURE_CARD}"]})
    else:
        assert await status_of(w, code) == "office_review"
        w.expect_news({"chen": ["待学校办公室审核"], "zhou": [f"card:{CLOSURE_CARD}"],
                       "zheng": [f"card:{CLOSURE_CARD}"]})
        zhou_card, zheng_card = w.last_card("zhou"), w.last_card("zheng")
        await w.press_last("zheng", "同意")
        await w.drain()
        assert await status_of(w, code) == "leader_review"
        assert w.card_outcome("zheng", zheng_card) == "已同意（郑督办）"
        assert w.card_outcome("zhou", zhou_card) == "已同意（郑督办）"  # the sibling card too
        w.expect_news({"zheng": ["待校领导审批"], "li": [f"card:{CLOSURE_CARD}"]})

    leader_card = w.last_card("li")
    await w.press_last("li", "同意")
    await w.drain()
    assert await status_of(w, code) == "closed"
    assert w.card_outcome("li", leader_card) == "已同意（李校长）"
    w.expect_news({"li": ["已办结"], "zhang": ["归档"], "chen": ["已办结"]})

    reply = await w.say("zhang", f"归档 {code}")
    assert reply is not None and "已归档" in reply
    await w.drain()
    assert await status_of(w, code) == "archived"
    w.expect_news({})

    kinds = await w.event_kinds(code)
    reviews = 2 if kind == "incoming" else 3
    assert kinds == (
        ["created"] + (["draft_approved"] if kind == "periodic" else [])
        + ["designated", "signed", "progress_reported", "progress_published", "closure_submitted"]
        + ["closure_approved"] * reviews + ["archived"]
    )


# =====================================================================================================
# 2. 退回 by card: the reason is asked for in chat; a stale request lapses after 10 minutes


async def test_return_by_card_asks_for_the_reason(world: WeComWorld) -> None:
    w = world
    code = await at_unit_review(w)
    card = w.last_card("chen")

    await w.press_last("chen", "退回")
    await w.drain()
    w.expect_news({"chen": [f"请直接回复退回 {code} 的理由"]})
    assert await status_of(w, code) == "unit_review"
    assert w.card_outcome("chen", card) is None  # nothing decided yet

    reply = await w.say("chen", "佐证材料不全，请补充会议纪要")
    assert reply is not None and f"已退回 {code}" in reply and "办理中" in reply
    await w.drain()
    data = await w.item(code)
    assert data["status"] == "in_progress" and data["return_count"] == 1
    assert w.card_outcome("chen", card) == "已退回（陈处长）"
    w.expect_news({"zhang": ["办结被退回：佐证材料不全，请补充会议纪要"]})
    returned = [e for e in data["timeline"] if e["kind"] == "closure_returned"]
    assert len(returned) == 1 and returned[0]["actor"] == "陈处长"
    assert returned[0]["payload"]["reason"] == "佐证材料不全，请补充会议纪要"


async def test_return_by_card_at_office_stage_updates_the_sibling_card(world: WeComWorld) -> None:
    w = world
    await w.add_people(SECOND_OFFICE)
    code = await at_unit_review(w)
    await w.press_last("chen", "同意")
    await w.drain()
    w.news()
    zhou_card, zheng_card = w.last_card("zhou"), w.last_card("zheng")

    await w.press_last("zhou", "退回")
    await w.drain()
    w.expect_news({"zhou": ["请直接回复退回"]})
    reply = await w.say("zhou", "请补充经费使用情况")
    assert reply is not None and f"已退回 {code}" in reply
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    assert w.card_outcome("zhou", zhou_card) == "已退回（周督办）"
    assert w.card_outcome("zheng", zheng_card) == "已退回（周督办）"
    # the handler and (above the unit stage) the principal hear the reason
    w.expect_news({"zhang": ["办结被退回：请补充经费使用情况"], "chen": ["办结被退回：请补充经费使用情况"]})


async def test_progress_returned_by_card(world: WeComWorld) -> None:
    w = world
    code = await in_progress(w)
    await w.say("zhang", f"进展 {code} 完成课程摸底")
    await w.drain()
    w.news()
    card = w.last_card("chen")
    await w.press_last("chen", "退回")
    await w.drain()
    w.expect_news({"chen": ["请直接回复退回"]})
    reply = await w.say("chen", "请写明已摸底的课程门数")
    assert reply is not None and f"已退回 {code}" in reply
    await w.drain()
    data = await w.item(code)
    assert [p["status"] for p in data["progress"]] == ["returned"] and data["status"] == "in_progress"
    assert w.card_outcome("chen", card) == "已退回（陈处长）"
    w.expect_news({"zhang": ["进展被退回：请写明已摸底的课程门数"]})


async def test_draft_returned_by_the_leader_on_the_card(world: WeComWorld) -> None:
    w = world
    code = await create(w, "periodic")
    await w.drain()
    card = w.last_card("li")
    await w.press_last("li", "退回")
    await w.drain()
    w.news()
    reply = await w.say("li", "完成时限过紧，请与教务处商定")
    assert reply is not None and f"已退回 {code}" in reply
    await w.drain()
    assert await status_of(w, code) == "draft"
    assert w.card_outcome("li", card) == "已退回（李校长）"
    w.expect_news({"zhou": ["被校领导退回：完成时限过紧，请与教务处商定"]})


async def test_stale_return_request_lapses_after_ten_minutes(world: WeComWorld) -> None:
    w = world
    code = await at_unit_review(w)
    card = w.last_card("chen")
    await w.press_last("chen", "退回")
    await w.drain()
    w.news()
    before = await w.event_kinds(code)

    w.clock.advance(minutes=10, seconds=1)
    reply = await w.say("chen", "待办")
    assert reply is not None
    assert reply.startswith(f"（您此前对 {code} 的退回已超时作废")
    assert code in reply and "项督办事项" in reply  # the text was handled as the 待办 command
    await w.drain()
    assert await status_of(w, code) == "unit_review"
    assert await w.event_kinds(code) == before
    w.expect_news({})

    # the lapsed request is gone for good: the next text is a command again, and the card still works
    reply = await w.say("chen", "材料不全")
    assert reply is not None and "没有“材料不全”这个指令" in reply
    await w.press_last("chen", "同意")
    await w.drain()
    assert await status_of(w, code) == "office_review"
    assert w.card_outcome("chen", card) == "已同意（陈处长）"


# =====================================================================================================
# 3. 延期: principal then office agree on cards; a refusal leaves the deadline alone; bad dates


async def test_extension_agreed_by_principal_and_office_moves_the_deadline(world: WeComWorld) -> None:
    w = world
    code = await in_progress(w)
    reply = await w.say("zhang", f"延期 {code} 2026-05-31 需补充开展学生问卷调研")
    assert reply is not None and "延至 2026-05-31" in reply
    await w.drain()
    w.expect_news({"chen": [f"card:{EXTENSION_CARD}"]})
    principal_card = w.last_card("chen")

    await w.press_last("chen", "同意")
    await w.drain()
    assert (await w.item(code))["deadline"] == "2026-04-30"  # not before the office agrees
    assert w.card_outcome("chen", principal_card) == "已同意（陈处长）"
    w.expect_news({"chen": ["已同意"], "zhou": [f"card:{EXTENSION_CARD}"]})
    assert "单位已同意" in w.last_card("zhou")["sub_title_text"]
    office_card = w.last_card("zhou")

    await w.press_last("zhou", "同意")
    await w.drain()
    data = await w.item(code)
    assert data["deadline"] == "2026-05-31"
    assert data["extensions"][-1]["status"] == "approved"
    assert w.card_outcome("zhou", office_card) == "已同意（周督办）"
    w.expect_news({"zhou": ["已同意"], "zhang": ["新的办结时限为 2026-05-31"], "chen": ["新的办结时限为 2026-05-31"]})


async def test_extension_refused_by_card_leaves_the_deadline(world: WeComWorld) -> None:
    w = world
    code = await in_progress(w)
    await w.say("zhang", f"延期 {code} 2026-06-30 工作量大")
    await w.drain()
    card = w.last_card("chen")
    await w.press_last("chen", "退回")
    await w.drain()
    w.expect_news({"chen": [f"card:{EXTENSION_CARD}", "请直接回复退回"]})
    reply = await w.say("chen", "时限不能再推迟")
    assert reply is not None and f"已退回 {code}" in reply
    await w.drain()
    data = await w.item(code)
    assert data["deadline"] == "2026-04-30" and data["status"] == "in_progress"
    assert data["extensions"][-1]["status"] == "refused"
    assert w.card_outcome("chen", card) == "已退回（陈处长）"
    w.expect_news({"zhang": ["延期申请未获同意：时限不能再推迟。原办结时限 2026-04-30 不变"]})


@pytest.mark.parametrize(
    ("date", "error"),
    [("2026-02-30", "日期“2026-02-30”不存在"), ("2026-13-01", "不存在"), ("下个月底", "不是日期，请写成 YYYY-MM-DD")],
)
async def test_extension_with_an_impossible_date_changes_nothing(world: WeComWorld, date: str, error: str) -> None:
    w = world
    code = await in_progress(w)
    before, counts = await w.item(code), await w.counts()
    reply = await w.say("zhang", f"延期 {code} {date} 理由充分")
    assert reply is not None and error in reply
    await w.drain()
    after = await w.item(code)
    assert after["deadline"] == before["deadline"] and after["extensions"] == []
    assert after["timeline"] == before["timeline"]
    now = await w.counts()
    assert (now["events"], now["outbox"]) == (counts["events"], counts["outbox"])
    w.expect_news({})


# =====================================================================================================
# 4. WeCom retries: the same callback three times at once has exactly one effect


async def triple(w: WeComWorld, params: dict[str, str], body: bytes) -> list[tuple[int, bytes]]:
    """Deliver identical bytes (same signature, timestamp, nonce) three times concurrently."""
    return list(await asyncio.gather(*(w.post_raw(params, body) for _ in range(3))))


async def test_same_text_callback_three_times_at_once_has_one_effect(world: WeComWorld) -> None:
    w = world
    code = await create(w, handler="张老师")
    await w.drain()
    w.news()
    counts = await w.counts()

    params, body = w.wecom.encrypt_post(w.wecom.text_xml("zhang", f"签收 {code}", 7_000_001))
    answers = await triple(w, params, body)
    assert [s for s, _ in answers] == [200, 200, 200]
    replies = [w.wecom.decrypt_reply(raw) for _, raw in answers]
    assert sorted(r is None for r in replies) == [False, True, True], replies
    assert f"已签收 {code}" in next(r for r in replies if r)
    assert (await w.event_kinds(code)).count("signed") == 1
    assert (await w.counts())["inbox"] == counts["inbox"] + 1

    params, body = w.wecom.encrypt_post(w.wecom.text_xml("zhang", f"进展 {code} 完成课程摸底", 7_000_002))
    answers = await triple(w, params, body)
    assert [s for s, _ in answers] == [200, 200, 200]
    assert sum(raw != b"" for _, raw in answers) == 1
    await w.drain()
    data = await w.item(code)
    assert [p["text"] for p in data["progress"]] == ["完成课程摸底"]
    assert [e["kind"] for e in data["timeline"]].count("progress_reported") == 1
    w.expect_news({"chen": [f"card:{PROGRESS_CARD}"]})  # one notification, not three


async def test_same_card_click_three_times_at_once_has_one_effect(world: WeComWorld) -> None:
    w = world
    code = await in_progress(w)
    await w.say("zhang", f"进展 {code} 完成课程摸底")
    await w.drain()
    w.news()
    card = w.last_card("chen")
    event = w.emu.click("chen", card["task_id"], w.button_key(card, "同意"))
    params, body = w.wecom.encrypt_post(w.wecom.event_xml(event))

    answers = await triple(w, params, body)
    assert answers == [(200, b"")] * 3
    await w.drain()
    data = await w.item(code)
    assert [p["status"] for p in data["progress"]] == ["published"]
    assert [e["kind"] for e in data["timeline"]].count("progress_published") == 1
    w.expect_news({"chen": ["已同意"], "zhang": ["进展已审核发布"]})
    assert [u["replace_name"] for u in w.emu.updates if u["task_id"] == card["task_id"]] == ["已同意（陈处长）"]


# =====================================================================================================
# 5. Bad input: answered 4xx, nothing recorded

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""


def _bad_requests(w: WeComWorld, code: str) -> list[tuple[str, int, dict[str, str], bytes]]:
    """(what, expected status, query, body) of callbacks that must be refused."""
    text = w.wecom.text_xml("zhang", f"签收 {code}", 8_000_001)
    forged = w.wecom.encrypt_post(text, forge_signature=True)
    wrong_corp = w.wecom.encrypt_post(text, receive_id="wx0000000000000000")
    good_params, _ = w.wecom.encrypt_post(text)
    # the envelope itself is a bomb (refused before any signature work)
    bomb_envelope = (BOMB + "<xml><Encrypt>&lol9;</Encrypt></xml>").encode()
    # a correctly signed envelope whose decrypted plaintext is a bomb
    inner = BOMB + "<xml><FromUserName>zhang</FromUserName><MsgType>text</MsgType><Content>&lol9;</Content></xml>"
    bomb_inside = w.wecom.encrypt_post(inner)
    big_params, big_body = w.wecom.encrypt_post(text)
    huge = big_body.replace(b"</xml>", b"<Pad>" + b"A" * (2 * 1024 * 1024) + b"</Pad></xml>")
    return [
        ("forged signature", 403, *forged),
        ("wrong corp id", 403, *wrong_corp),
        ("malformed xml", 400, good_params, b"<xml><Encrypt>abc</Encrypt"),
        ("not xml at all", 400, good_params, b"hello"),
        ("2 MB body", 413, big_params, huge),
        ("entity bomb in the envelope", 400, good_params, bomb_envelope),
        ("entity bomb in the plaintext", 400, *bomb_inside),
        ("no signature", 400, {}, forged[1]),
    ]


async def test_bad_callbacks_are_refused_and_record_nothing(world: WeComWorld) -> None:
    w = world
    code = await create(w, handler="张老师")
    await w.drain()
    w.news()
    before = await w.counts()
    for what, expected, params, body in _bad_requests(w, code):
        status, raw = await w.post_raw(params, body)
        assert (what, status) == (what, expected)
        assert raw == b"", what
        assert await w.counts() == before, what

    # the same 2 MB without a Content-Length (chunked): refused once 64 KB have been read
    params, body = w.wecom.encrypt_post(w.wecom.text_xml("zhang", f"签收 {code}", 8_000_002))

    async def chunks() -> Any:
        yield body.replace(b"</xml>", b"<Pad>")
        for _ in range(64):
            yield b"A" * 32768
        yield b"</Pad></xml>"

    async with w.http.post(w.url, params=params, data=chunks()) as resp:
        assert (resp.status, await resp.read()) == (413, b"")
    assert await w.counts() == before
    assert await status_of(w, code) == "designated"
    await w.drain()
    w.expect_news({})


async def test_url_verification(world: WeComWorld) -> None:
    w = world
    echo = "1616140317555161061"
    async with w.http.get(w.url, params=w.wecom.verify_url_params(echo, forge_signature=True)) as resp:
        assert resp.status == 403
    async with w.http.get(w.url, params=w.wecom.verify_url_params(echo, receive_id="wx0000000000000000")) as resp:
        assert resp.status == 403
    async with w.http.get(w.url, params=w.wecom.verify_url_params(echo)) as resp:
        assert resp.status == 200
        assert await resp.read() == echo.encode()  # exactly the echo: no quotes, no newline
    assert (await w.counts())["inbox"] == 0


# =====================================================================================================
# 6. Strangers, unknown commands, and a press by the wrong person


async def test_unknown_user_gets_a_polite_reply(world: WeComWorld) -> None:
    w = world
    w.emu.add_user("stranger")
    assert await w.say("stranger", "待办") == UNKNOWN_USER
    assert "尚未登记" in UNKNOWN_USER
    await w.drain()
    w.expect_news({})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("你好", "抱歉，没有“你好”这个指令。\n可用指令："), ("签收", "格式：签收 编号"), ("进展 1", "格式：进展 编号 内容"),
     ("查看 abc", "编号"), ("延期 1 2026-05-31", "格式：延期 编号 YYYY-MM-DD 理由")],
)
async def test_unknown_or_malformed_command_gets_a_usage_line(world: WeComWorld, text: str, expected: str) -> None:
    reply = await world.say("zhang", text)
    assert reply is not None and expected in reply
    assert "Traceback" not in reply


async def test_handler_pressing_the_principals_button_is_refused(world: WeComWorld) -> None:
    w = world
    code = await in_progress(w)
    await w.say("zhang", f"进展 {code} 完成课程摸底")
    await w.drain()
    w.news()
    card = w.last_card("chen")
    # a real click code for the principal's card, but the event claims to come from the handler
    event = w.emu.click("chen", card["task_id"], w.button_key(card, "同意"))
    event["FromUserName"] = "zhang"
    before = await w.item(code)
    status, raw = await w.post_raw(*w.wecom.encrypt_post(w.wecom.event_xml(event)))
    assert (status, raw) == (200, b"")
    await w.drain()

    after = await w.item(code)
    assert after["progress"] == before["progress"] and after["status"] == "in_progress"
    refused = [e for e in after["timeline"] if e["kind"] == "refused"]
    assert len(refused) == 1 and refused[0]["actor"] == "张老师" and refused[0]["payload"]["action"] == "approve"
    news = w.expect_news({"zhang": ["无权"]})
    assert "主要负责人" in news["zhang"][0]
    # the principal's card is untouched and still works
    assert w.card_outcome("chen", card) is None
    await w.press_last("chen", "同意")
    await w.drain()
    assert [p["status"] for p in (await w.item(code))["progress"]] == ["published"]
    assert w.card_outcome("chen", card) == "已同意（陈处长）"


# =====================================================================================================
# 7. Stale cards and races between reviewers


async def test_click_on_a_stale_card_changes_nothing_and_says_why(world: WeComWorld) -> None:
    w = world
    code = await in_progress(w)
    await w.say("zhang", f"进展 {code} 完成课程摸底")
    await w.drain()
    w.news()
    card = w.last_card("chen")
    reply = await w.say("chen", f"同意 {code}")
    assert reply is not None and "已同意" in reply
    await w.drain()
    w.expect_news({"zhang": ["进展已审核发布"]})
    before = await w.item(code)

    await w.press_last("chen", "同意")
    await w.drain()
    after = await w.item(code)
    assert after["progress"] == before["progress"] and after["status"] == before["status"]
    assert [e["kind"] for e in after["timeline"]][len(before["timeline"]):] == ["refused"]
    w.expect_news({"chen": ["该进展已审核过"]})
    assert w.card_outcome("chen", card) == STALE


async def test_two_office_staff_pressing_at_once_decide_once(world: WeComWorld) -> None:
    w = world
    await w.add_people(SECOND_OFFICE)
    code = await at_unit_review(w)
    await w.press_last("chen", "同意")
    await w.drain()
    w.news()
    zhou_card, zheng_card = w.last_card("zhou"), w.last_card("zheng")
    clicks = [w.emu.click(user, card["task_id"], w.button_key(card, "同意"))
              for user, card in (("zhou", zhou_card), ("zheng", zheng_card))]
    answers = await asyncio.gather(*(w.post_raw(*w.wecom.encrypt_post(w.wecom.event_xml(e))) for e in clicks))
    assert list(answers) == [(200, b"")] * 2
    await w.drain()
    data = await w.item(code)
    assert data["status"] == "leader_review"
    assert [e["kind"] for e in data["timeline"]].count("closure_approved") == 2  # unit + office, once each
    news = w.news()
    assert news["li"] == [f"card:{CLOSURE_CARD}"]  # the leader hears it once
    # one of them decided; both cards show it was decided, neither is left clickable
    assert w.card_outcome("zhou", zhou_card) is not None and w.card_outcome("zheng", zheng_card) is not None


async def test_return_reason_after_a_sibling_approved_changes_nothing(world: WeComWorld) -> None:
    w = world
    await w.add_people(SECOND_OFFICE)
    code = await at_unit_review(w)
    await w.press_last("chen", "同意")
    await w.drain()
    zhou_card = w.last_card("zhou")
    await w.press_last("zhou", "退回")  # 周督办 is asked for the reason …
    await w.press_last("zheng", "同意")  # … while 郑督办 approves
    await w.drain()
    assert await status_of(w, code) == "leader_review"
    assert w.card_outcome("zhou", zhou_card) == "已同意（郑督办）"
    w.news()
    before = await w.item(code)

    reply = await w.say("zhou", "请补充经费使用情况")
    assert reply is not None and "已退回" not in reply
    await w.drain()
    after = await w.item(code)
    assert after["status"] == "leader_review" and after["return_count"] == 0
    assert [e["kind"] for e in after["timeline"]][len(before["timeline"]):] == ["refused"]
    assert "zhang" not in w.news()


async def test_stale_card_does_not_act_on_a_newer_decision_of_the_same_kind(world: WeComWorld) -> None:
    w = world
    code = await in_progress(w)
    await w.say("zhang", f"进展 {code} 完成课程摸底")
    await w.drain()
    old_card = w.last_card("chen")
    await w.say("chen", f"同意 {code}")  # the first report is approved by text
    await w.say("zhang", f"进展 {code} 形成建设方案初稿")  # a second report arrives with its own card
    await w.drain()
    w.news()

    await w.press("chen", old_card["task_id"], w.button_key(old_card, "同意"))  # the OLD card
    await w.drain()
    progress = (await w.item(code))["progress"]
    assert [p["status"] for p in progress] == ["published", "pending"]  # the new report was not approved unseen
    assert w.card_outcome("chen", old_card) == STALE


# =====================================================================================================
# 8. Sending faults, through the real client against the emulator


async def outbox_rows(w: WeComWorld, status: str) -> list[dict[str, Any]]:
    code, data = await w.api("GET", "/api/v1/outbox", params={"status": status})
    assert code == 200, data
    return list(data["rows"])


async def drain_until_quiet(w: WeComWorld, step: dt.timedelta, rounds: int = 10) -> int:
    """Move the clock past each retry's available_at and send again, until nothing is left to send."""
    for n in range(rounds):
        if not await outbox_rows(w, "pending"):
            return n
        w.clock.advance(seconds=step.total_seconds())
        await w.drain()
    raise AssertionError("outbox never emptied")


async def impatient_client(w: WeComWorld) -> aiohttp.ClientTimeout:
    """Give the runtime's WeCom client a 0.5 s timeout (returns the old one). The token is fetched first,
    with the normal timeout, so only the message/send that the emulator holds back can time out."""
    client = w.runtime.wecom_client
    assert client is not None
    await client.token()
    saved, client.timeout = client.timeout, aiohttp.ClientTimeout(total=0.5)
    return saved


async def wait_for_emulator(w: WeComWorld, accepted: int) -> None:
    """A send whose answer the client gave up on still lands (real time, since that is what it takes)."""
    deadline = asyncio.get_running_loop().time() + 10
    while len(w.emu.sent) < accepted:
        assert asyncio.get_running_loop().time() < deadline, "the delayed send never landed"
        await asyncio.sleep(0.05)


async def test_token_expiry_between_sends_refreshes_once(world: WeComWorld) -> None:
    w = world
    code = await create(w)
    await w.drain()
    assert w.emu.gettoken_calls == 1
    w.expect_news({"chen": ["请指派专人"]})

    w.emu.expire_tokens()
    await w.say("chen", f"指派 {code} 张老师")
    await create(w, title="修订本科专业培养方案", handler="张老师", co_units=["科研院", "学生处"])
    await w.drain()
    assert w.emu.gettoken_calls == 2  # one refresh, however many messages were waiting
    w.expect_news({"zhang": [f"card:{SIGN_CARD}", f"card:{SIGN_CARD}"], "zhao": ["配合办理"], "qian": ["配合办理"]})
    assert await outbox_rows(w, "pending") == [] and await outbox_rows(w, "dead") == []


async def test_rate_limit_storm_is_retried_with_backoff_and_nothing_doubles(world: WeComWorld) -> None:
    w = world
    w.emu.rate_limit("message/send", times=5)
    code = await create(w, handler="张老师", co_units=["科研院", "学生处"])  # a card and one batched text
    await w.drain()
    assert w.emu.sent == [] and w.news() == {}
    pending = await outbox_rows(w, "pending")
    assert len(pending) == 3 and all("45009" in (r["last_error"] or "") for r in pending)

    await w.drain()  # not yet due
    w.clock.advance(seconds=30)
    await w.drain()
    assert w.emu.sent == []

    await drain_until_quiet(w, dt.timedelta(seconds=61))
    w.expect_news({"zhang": [f"card:{SIGN_CARD}"], "zhao": ["配合办理"], "qian": ["配合办理"]})
    assert len(w.emu.sent) == 2 and w.emu.duplicates == []
    assert len(w.sends()) == 2 + 5
    assert await outbox_rows(w, "dead") == []
    # the card that finally went out is recorded with its code: pressing it works and updates it
    card = w.last_card("zhang")
    await w.press_last("zhang", "签收")
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    assert w.card_outcome("zhang", card) == "已签收（张老师）"


async def test_bad_gateway_and_timeout_are_retried_and_delivered_once(world: WeComWorld) -> None:
    w = world
    saved = await impatient_client(w)
    w.emu.http_error_next("message/send", 502)
    await create(w)
    await w.drain()
    assert w.emu.sent == []
    [row] = await outbox_rows(w, "pending")
    assert "502" in row["last_error"]

    w.emu.delay_next("message/send", 1.0)  # the answer comes after the client gave up
    w.clock.advance(seconds=11)
    await w.drain()
    [row] = await outbox_rows(w, "pending")
    assert "Timeout" in row["last_error"] and row["attempts"] == 2
    await wait_for_emulator(w, accepted=1)
    assert w.runtime.wecom_client is not None
    w.runtime.wecom_client.timeout = saved  # the retry itself is answered in time

    await drain_until_quiet(w, dt.timedelta(seconds=61))
    # the retry was identical, so WeCom's duplicate check kept it from arriving twice
    assert len(w.emu.duplicates) == 1
    w.expect_news({"chen": ["请指派专人"]})
    assert await outbox_rows(w, "dead") == []


async def test_card_retried_after_an_uncertain_timeout_arrives_once_and_still_works(world: WeComWorld) -> None:
    w = world
    saved = await impatient_client(w)
    w.emu.delay_next("message/send", 1.0)
    code = await create(w, handler="张老师")
    await w.drain()
    assert "Timeout" in (await outbox_rows(w, "pending"))[0]["last_error"]
    await wait_for_emulator(w, accepted=1)
    assert w.runtime.wecom_client is not None
    w.runtime.wecom_client.timeout = saved
    await drain_until_quiet(w, dt.timedelta(seconds=61))
    w.expect_news({"zhang": [f"card:{SIGN_CARD}"]})  # the retry met 42014: the card was already there
    assert await outbox_rows(w, "dead") == []

    card = w.last_card("zhang")
    await w.press_last("zhang", "签收")
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    assert w.card_outcome("zhang", card) == "已签收（张老师）"


async def test_invalid_user_becomes_a_dead_letter_and_can_be_requeued(world: WeComWorld) -> None:
    w = world
    # registered in duban, but the WeCom id is wrong (not in WeCom's directory)
    status, data = await w.api("POST", "/api/v1/org", json={"people": [
        {"unit": "教务处", "name": "郑老师", "roles": ["handler"], "wecom_id": "ghost"},
        {"unit": "国际处", "name": "冯处长", "roles": ["principal"], "wecom_id": "ghost2"},
    ]})
    assert status == 200, data
    await create(w, handler="郑老师")
    await w.say("zhou", "通报 请各单位本周五前报送课程建设进展")
    await w.drain()
    # the others in the same batched notice got it; only the wrong ids are dead letters
    w.expect_news({p: ["请各单位本周五前报送课程建设进展"] for p in ("chen", "zhao", "qian")})
    dead = await outbox_rows(w, "dead")
    assert len(dead) == 2, dead
    assert any("81013" in (r["last_error"] or "") for r in dead)
    assert {r["text"][:3] for r in dead} == {"【请签", "【通报"}

    w.emu.add_user("ghost")
    w.emu.add_user("ghost2")
    status, data = await w.api("POST", "/api/v1/outbox/requeue", json={"ids": [r["id"] for r in dead]})
    assert (status, data["requeued"]) == (200, 2)
    await w.drain()
    w.expect_news({"ghost": [f"card:{SIGN_CARD}"], "ghost2": ["请各单位本周五前报送课程建设进展"]})
    assert await outbox_rows(w, "dead") == []
    status, data = await w.api("POST", "/api/v1/outbox/requeue", json={"ids": [r["id"] for r in dead]})
    assert (status, data["requeued"]) == (200, 0)  # sent rows are not requeued


# =====================================================================================================
# 9. 通报: one message/send for all principals; only the office may send it


async def test_notice_to_all_principals_is_one_send(world: WeComWorld) -> None:
    w = world
    reply = await w.say("zhou", "通报 请各单位本周五前报送课程建设进展")
    assert reply is not None and "3 位" in reply
    await w.drain()
    [send] = w.sends()
    assert send["msgtype"] == "text"
    assert sorted(send["touser"].split("|")) == ["chen", "qian", "zhao"]
    news = w.expect_news({p: ["请各单位本周五前报送课程建设进展"] for p in ("chen", "zhao", "qian")})
    assert all(v[0].startswith("【通报") for v in news.values())


async def test_notice_to_more_than_a_thousand_principals_is_split_in_batches(world: WeComWorld) -> None:
    w = world
    await w.add_people(*({"unit": "各学院", "name": f"院长{i:04d}", "roles": ["principal"], "wecom_id": f"dean{i:04d}"}
                         for i in range(1001)))
    reply = await w.say("zhou", "通报 请各单位做好期末考试安排")
    assert reply is not None and "1004 位" in reply
    # one pass that claims every row (drain() claims 200 at a time, which caps batches at 200)
    await w.runtime.sender.run_once(limit=2000)
    assert sorted(len(s["touser"].split("|")) for s in w.sends()) == [4, 1000]
    news = w.news()
    assert len(news) == 1004
    assert all(len(v) == 1 and v[0].startswith("【通报") and v[0].endswith("】请各单位做好期末考试安排")
               for v in news.values())


async def test_notice_from_a_non_office_person_is_refused(world: WeComWorld) -> None:
    w = world
    before = await w.refusals()
    reply = await w.say("chen", "通报 明天放假")
    assert reply is not None and "只有学校办公室督办人员可以发布通报" in reply
    await w.drain()
    assert w.sends() == []
    assert await w.refusals() == before + 1  # written to the audit trail (DESIGN §1)


# =====================================================================================================
# 10. Pacing: at most 25 a minute to one person, nothing dropped by WeCom


async def test_pacing_keeps_each_person_under_the_silent_drop_limit(world: WeComWorld) -> None:
    w = world
    for i in range(40):
        status, _ = await w.api("POST", "/api/v1/notices", json={"text": f"第{i + 1}号通报", "units": ["教务处"]})
        assert status == 201
    await w.drain()
    assert len(w.texts("chen")) == 25
    w.clock.advance(seconds=30)
    await w.drain()
    assert len(w.texts("chen")) == 25  # still inside the same minute
    w.clock.advance(seconds=31)
    await w.drain()
    texts = w.texts("chen")
    assert len(texts) == 40 and len(set(texts)) == 40
    assert sorted(t.split("】", 1)[1] for t in texts) == sorted(f"第{i + 1}号通报" for i in range(40))
    assert w.emu.dropped.get("chen", []) == []


# =====================================================================================================
# 11. The 3 s budget: work that outlives it answers empty and replies through the outbox


async def test_work_beyond_the_budget_replies_through_the_outbox(world: WeComWorld) -> None:
    w = world
    code = await create(w, handler="张老师")
    await w.drain()
    w.news()
    w.runtime.inbound.budget = 0.0

    params, body = w.wecom.encrypt_post(w.wecom.text_xml("zhang", f"签收 {code}", 9_000_001))
    assert await w.post_raw(params, body) == (200, b"")
    await w.drain()
    assert await status_of(w, code) == "in_progress"
    w.expect_news({"zhang": [f"已签收 {code}"]})
    # WeCom retrying it changes nothing and sends nothing more
    assert await w.post_raw(params, body) == (200, b"")
    await w.drain()
    w.expect_news({})
    assert (await w.event_kinds(code)).count("signed") == 1

    assert await w.say("zhang", f"进展 {code} 完成课程摸底") is None
    await w.drain()
    w.expect_news({"zhang": ["进展已提交"], "chen": [f"card:{PROGRESS_CARD}"]})
    card = w.last_card("chen")
    await w.press_last("chen", "同意")
    await w.drain()
    w.expect_news({"chen": ["已同意"], "zhang": ["进展已审核发布"]})
    assert w.card_outcome("chen", card) == "已同意（陈处长）"


# =====================================================================================================
# 12. 待办 with 🟢/🟡/🔴


async def test_todo_marks_due_soon_and_overdue_items(world: WeComWorld) -> None:
    w = world
    later = await create(w, title="长期任务", deadline="2026-04-30")
    soon = await create(w, title="近期任务", deadline="2026-03-10")
    late = await create(w, title="紧急任务", deadline="2026-03-05")
    w.clock.set(dt.datetime(2026, 3, 6, 9, 0, tzinfo=w.clock.now.tzinfo))  # Friday

    reply = await w.say("chen", "待办")
    assert reply is not None and "陈处长，您有 3 项督办事项" in reply
    rows = [line for line in reply.splitlines() if any(c in line for c in (later, soon, late))]
    assert [row.split()[1] for row in rows] == [late, soon, later]  # by deadline: most urgent first
    by_code = {row.split()[1]: row for row in rows}
    assert by_code[later].startswith("🟢 ") and "长期任务" in by_code[later]
    assert by_code[soon].startswith("🟡 ") and "剩 2 个工作日" in by_code[soon]
    assert by_code[late].startswith("🔴 ") and "已逾期 1 个工作日" in by_code[late]
    assert reply.splitlines()[-1].startswith("🟢正常 🟡临近或待审 🔴逾期")
    for code, mark in ((later, "🟢"), (soon, "🟡"), (late, "🔴")):
        assert (await w.item(code))["mark"] == mark

    reply = await w.say("wu", "我的督办")
    assert reply is not None and "没有待办" in reply
