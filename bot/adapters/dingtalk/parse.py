"""DingTalk payloads → neutral events. Robot messages and card clicks have the same shape whether they
came over Stream or over HTTP; only the envelope differs."""

from __future__ import annotations

import json
from typing import Any

from bot.messages import CardPress, Incoming

TOPIC_ROBOT = "/v1.0/im/bot/messages/get"
TOPIC_CARD = "/v1.0/card/instances/callback"


class BadPayload(Exception):
    pass


def robot_message(data: dict[str, Any], event_key: str | None = None) -> Incoming | None:
    """A message to the robot. In a group the @mention leaves a leading space, which we strip."""
    staff = data.get("senderStaffId")
    if not staff:
        return None  # someone outside the organisation: nothing we can act on
    if data.get("msgtype") != "text":
        return Incoming("dingtalk", str(staff), event_key or f"msg:{data.get('msgId', '')}", text="帮助")
    text = str((data.get("text") or {}).get("content", "")).strip()
    return Incoming("dingtalk", str(staff), event_key or f"msg:{data.get('msgId', '')}", text=text)


def card_callback(data: dict[str, Any], event_key: str | None = None) -> Incoming | None:
    """A press on our interactive card: `cardPrivateData.params` carries `action` and `code`."""
    user = data.get("userId")
    track = data.get("outTrackId")
    if not user or not track:
        raise BadPayload("card callback without userId or outTrackId")
    content = data.get("content") or data.get("value") or "{}"
    try:
        parsed = json.loads(content) if isinstance(content, str) else content
    except json.JSONDecodeError:
        raise BadPayload("card callback content is not JSON") from None
    params = ((parsed or {}).get("cardPrivateData") or {}).get("params") or {}
    action, code = str(params.get("action", "")), str(params.get("code", ""))
    try:
        press = CardPress.unpack(f"{action}:{code}", str(track))
    except ValueError:
        return None
    key = event_key or f"card:{track}:{user}:{action}"
    return Incoming("dingtalk", str(user), key, press=press)


def frame_data(frame: dict[str, Any]) -> dict[str, Any]:
    raw = frame.get("data") or "{}"
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise BadPayload("frame data is not JSON") from None
    if not isinstance(data, dict):
        raise BadPayload("frame data is not an object")
    return data
