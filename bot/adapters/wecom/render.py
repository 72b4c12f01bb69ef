"""Neutral messages → WeCom message/send bodies (wecom.md §2.2, §3.1), within the platform's limits."""

from __future__ import annotations

from typing import Any

from bot.messages import CardPress, OutMessage

TEXT_LIMIT = 2048  # bytes
STYLE = {"sign": 1, "approve": 1, "return": 2}


def clip_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def text_body(msg: OutMessage) -> dict[str, Any]:
    """Identical requests within 30 minutes are not delivered twice by WeCom, which makes a retry after
    an uncertain timeout safe; our wording varies wherever a repeat is meant to arrive."""
    kind = "markdown" if msg.markdown else "text"
    return {
        "msgtype": kind,
        kind: {"content": clip_bytes(msg.text, TEXT_LIMIT)},
        "enable_duplicate_check": 1,
        "duplicate_check_interval": 1800,
    }


def card_body(msg: OutMessage, card_id: str) -> dict[str, Any]:
    assert msg.item_code is not None
    body_text = msg.text.split("\n", 1)[0]
    return {
        "msgtype": "template_card",
        "template_card": {
            "card_type": "button_interaction",
            "source": {"desc": "督办", "desc_color": 1},
            "main_title": {"title": clip(msg.title or "督办事项", 26), "desc": msg.item_code},
            "sub_title_text": clip(body_text, 100),
            "horizontal_content_list": [
                {"keyname": clip(k, 5), "value": clip(v, 26)} for k, v in msg.fields[:6]
            ],
            "task_id": card_id,
            "button_list": [
                {"text": b.label, "style": STYLE.get(b.action, 1), "key": CardPress(b.action, msg.item_code).pack()}
                for b in msg.buttons[:6]
            ],
        },
    }
