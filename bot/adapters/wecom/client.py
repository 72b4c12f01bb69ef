"""An async WeCom API client on the app's shared aiohttp session (wechatpy's client blocks the loop).

Error handling follows wecom.md §3.3/§3.4: one token fetch at a time however many callers wait; on
40014/42001 refresh once and retry once, never in a loop; 45009, 45033 and -1 (and HTTP 5xx, timeouts)
are transient and left to the outbox's backoff; everything else is permanent and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import aiohttp

log = logging.getLogger("duban.wecom")

TOKEN_ERRORS = {40014, 42001}
TRANSIENT = {-1, 45009, 45033}
EARLY_REFRESH = 300.0
USER_AGENT = {"User-Agent": f"duban/0.1 pid/{os.getpid()}"}  # tells replicas apart in platform-side logs


class WeComError(Exception):
    def __init__(self, errcode: int, errmsg: str, *, transient: bool = False, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.transient = transient
        self.body = body or {}


class WeComClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base: str,
        corp_id: str,
        secret: str,
        agent_id: int,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.base = base.rstrip("/") + "/cgi-bin/"
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = agent_id
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.token_fetches = 0

    async def token(self, *, stale: str | None = None) -> str:
        """The cached token, fetched once however many callers arrive together. `stale` is a token a
        caller saw rejected: refresh only if nobody has replaced it meanwhile."""
        if self._token and self._token != stale and self.clock() < self._expires:
            return self._token
        async with self._lock:
            if self._token and self._token != stale and self.clock() < self._expires:
                return self._token
            data = await self._raw("GET", "gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret})
            self.token_fetches += 1
            self._token = str(data["access_token"])
            self._expires = self.clock() + max(60.0, float(data.get("expires_in", 7200)) - EARLY_REFRESH)
            log.info("wecom token fetched", extra={"expires_in": data.get("expires_in")})
            return self._token

    async def _raw(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            async with self.session.request(
                method, self.base + path, timeout=self.timeout, headers=USER_AGENT, **kw
            ) as resp:
                if resp.status >= 500:
                    raise WeComError(-2, f"http {resp.status}", transient=True)
                if resp.status != 200:
                    raise WeComError(-3, f"http {resp.status}")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise WeComError(-2, f"network: {type(exc).__name__}", transient=True) from None
        if not isinstance(data, dict):
            raise WeComError(-3, "response is not a JSON object")
        code = int(data.get("errcode", 0))
        if code != 0:
            raise WeComError(code, str(data.get("errmsg", "")), transient=code in TRANSIENT, body=data)
        return data

    async def call(self, path: str, *, json: Any = None, data: Any = None, params: dict[str, str] | None = None) -> dict[str, Any]:
        """POST with the token; one refresh-and-retry on a rejected token, never more."""
        token = await self.token()
        for attempt in (1, 2):
            try:
                body = data() if callable(data) else data  # a multipart form is consumed by each attempt
                return await self._raw("POST", path, params={**(params or {}), "access_token": token}, json=json, data=body)
            except WeComError as err:
                if err.errcode in TOKEN_ERRORS and attempt == 1:
                    log.info("wecom token rejected; refreshing once", extra={"errcode": err.errcode})
                    token = await self.token(stale=token)
                    continue
                raise
        raise AssertionError("unreachable")

    async def send(self, user_ids: list[str], message: dict[str, Any]) -> dict[str, Any]:
        if not 1 <= len(user_ids) <= 1000:
            raise ValueError("message/send takes 1..1000 users")
        body = {"touser": "|".join(user_ids), "agentid": self.agent_id, **message}
        return await self.call("message/send", json=body)

    async def update_card(
        self, user_ids: list[str], response_code: str, *, replace_name: str | None = None, card: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"userids": user_ids, "agentid": self.agent_id, "response_code": response_code}
        if card is not None:
            body["template_card"] = card
        else:
            body["button"] = {"replace_name": replace_name or "已处理"}
        return await self.call("message/update_template_card", json=body)

    async def upload(self, kind: str, filename: str, content: bytes, content_type: str) -> str:
        def form() -> aiohttp.FormData:
            f = aiohttp.FormData()
            f.add_field("media", content, filename=filename, content_type=content_type)
            return f

        data = await self.call("media/upload", data=form, params={"type": kind})
        return str(data["media_id"])
