"""Inbound DingTalk, both ways it can arrive: Stream frames and HTTP-mode POSTs to /callback/dingtalk.

HTTP mode is checked with the robot callback signature (dingtalk.md §2a): `sign` must equal
base64(HMAC-SHA256(appSecret, f"{timestamp}\\n{appSecret}")) and `timestamp` be within an hour.
Either way the event is handed to the dispatcher, and the reply goes out through the outbox (DingTalk
takes no reply on the socket, and we do not rely on the HTTP response body).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.adapters.dingtalk.parse import TOPIC_CARD, TOPIC_ROBOT, BadPayload, card_callback, frame_data, robot_message
from bot.messages import Incoming

log = logging.getLogger("duban.dingtalk")

MAX_BODY = 64 * 1024
WINDOW_MS = 3600 * 1000

Dispatch = Callable[[Incoming], Awaitable[object]]


def sign(timestamp: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class DingTalkReceiver:
    def __init__(self, app_secret: str, dispatch: Dispatch, clock: Callable[[], float] = time.time) -> None:
        self.secret = app_secret
        self.dispatch = dispatch
        self.clock = clock

    async def on_frame(self, topic: str, message_id: str, frame: dict[str, Any]) -> None:
        """A Stream frame, already ACKed: the messageId is the dedup key across redeliveries."""
        try:
            data = frame_data(frame)
            inc = self._incoming(topic, data, f"stream:{message_id}")
        except BadPayload as exc:
            log.warning("stream frame refused", extra={"reason": str(exc), "topic": topic})
            return
        if inc is not None:
            await self.dispatch(inc)

    def _incoming(self, topic: str, data: dict[str, Any], key: str | None) -> Incoming | None:
        if topic == TOPIC_CARD:
            return card_callback(data, key)
        if topic == TOPIC_ROBOT:
            # the payload's msgId names the message itself, so a redelivery under a new frame id, or the
            # same message arriving over HTTP and Stream, is still recognised (dingtalk.md §0.5)
            return robot_message(data, f"msg:{data['msgId']}" if data.get("msgId") else key)
        return None

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/callback/dingtalk", self.http)

    async def http(self, request: web.Request) -> web.Response:
        ts, given = request.headers.get("timestamp", ""), request.headers.get("sign", "")
        if not ts.isdigit() or abs(self.clock() * 1000 - int(ts)) > WINDOW_MS:
            log.warning("dingtalk callback refused", extra={"reason": "timestamp missing or outside one hour"})
            return web.json_response({"error": "forbidden", "message": "签名时间无效。"}, status=403)
        if not hmac.compare_digest(sign(ts, self.secret), given):
            log.warning("dingtalk callback refused", extra={"reason": "bad sign", "remote": request.remote})
            return web.json_response({"error": "forbidden", "message": "签名校验失败。"}, status=403)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "too_large", "message": "请求内容过大。"}, status=413)
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return web.json_response({"error": "too_large", "message": "请求内容过大。"}, status=413)
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise BadPayload("not an object")
            topic = TOPIC_CARD if "outTrackId" in data else TOPIC_ROBOT
            key = None if topic == TOPIC_CARD else f"msg:{data.get('msgId', '')}"
            if topic == TOPIC_ROBOT and not data.get("msgId"):
                raise BadPayload("robot message without msgId")
            inc = self._incoming(topic, data, key)
        except (UnicodeDecodeError, json.JSONDecodeError, BadPayload) as exc:
            log.warning("dingtalk callback malformed", extra={"reason": str(exc)})
            return web.json_response({"error": "malformed", "message": "请求内容无法解析。"}, status=400)
        if inc is not None:
            await self.dispatch(inc)
        return web.json_response({})
