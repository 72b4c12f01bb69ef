"""`GET|POST /callback/wecom`: verify, decrypt, parse, hand a neutral event to the dispatcher, and
answer inside WeCom's 5 s — with the encrypted reply if it is ready, else an empty 200 (wecom.md §1.4)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.adapters.wecom.crypto import CallbackCrypto, CallbackRejected
from bot.adapters.wecom.parse import envelope, fields, reply_xml, to_incoming
from bot.messages import Incoming, Reply

log = logging.getLogger("duban.wecom")

MAX_CALLBACK_BYTES = 64 * 1024  # a WeCom callback is a few hundred bytes; anything near this is not one

Dispatch = Callable[[Incoming], Awaitable[Reply | None]]


class WeComReceiver:
    def __init__(self, crypto: CallbackCrypto, agent_id: int, dispatch: Dispatch) -> None:
        self.crypto = crypto
        self.agent_id = str(agent_id)
        self.dispatch = dispatch

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/callback/wecom", self.verify)
        app.router.add_post("/callback/wecom", self.receive)

    async def verify(self, request: web.Request) -> web.Response:
        q = request.query  # already URL-decoded by aiohttp: do not decode again
        try:
            echo = self.crypto.verify_url(q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), q.get("echostr", ""))
        except CallbackRejected as exc:
            log.warning("wecom url verification refused", extra={"reason": exc.reason})
            return web.Response(status=exc.status, text="")
        return web.Response(text=echo)  # the bare message: no quotes, no newline

    async def receive(self, request: web.Request) -> web.Response:
        try:
            body = await self._read(request)
            q = request.query
            sig, ts, nonce = q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", "")
            plain = self.crypto.decrypt(sig, ts, nonce, envelope(body))
            agent = fields(plain).get("AgentID", self.agent_id)
            if agent and agent != self.agent_id:
                log.warning("wecom callback for another agent ignored", extra={"agent": agent})
                return web.Response(text="")
            inc = to_incoming(plain)
        except CallbackRejected as exc:
            log.warning("wecom callback refused", extra={"reason": exc.reason, "remote": request.remote})
            return web.Response(status=exc.status, text="")
        if inc is None:
            return web.Response(text="")
        reply = await self.dispatch(inc)
        if reply is None:
            return web.Response(text="")
        xml = reply_xml(inc.user_id, self.crypto.corp_id, reply.text)
        return web.Response(text=self.crypto.encrypt_reply(xml, nonce, str(int(time.time()))), content_type="text/xml")

    async def _read(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > MAX_CALLBACK_BYTES:
            raise CallbackRejected("callback body too large", 413)
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(16 * 1024):
            size += len(chunk)
            if size > MAX_CALLBACK_BYTES:
                raise CallbackRejected("callback body too large", 413)
            chunks.append(chunk)
        return b"".join(chunks)
