"""An async DingTalk API client on the app's shared aiohttp session (dingtalk.md §3, §4, §5).

The official SDKs block the loop or open a session per call, so we call the handful of endpoints
ourselves: one cached v1.0 token fetched by one caller at a time, refreshed once on a rejected token,
never in a loop; throttling and 5xx are transient and left to the outbox's backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

log = logging.getLogger("duban.dingtalk")

EARLY_REFRESH = 300.0
OAPI_TOKEN_ERRORS = {40014, 42001, 88}
OAPI_TRANSIENT = {-1, 15, 90002, 1430003}


class DingTalkError(Exception):
    def __init__(self, code: str, message: str, *, transient: bool = False, status: int = 0) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.transient = transient
        self.status = status


class DingTalkClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_base: str,
        oapi_base: str,
        client_id: str,
        client_secret: str,
        robot_code: str,
        agent_id: int,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.api = api_base.rstrip("/")
        self.oapi = oapi_base.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.robot_code = robot_code or client_id  # an internal app's robot code is normally its AppKey
        self.agent_id = agent_id
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.token_fetches = 0

    async def _request(self, method: str, url: str, **kw: Any) -> tuple[int, Any]:
        try:
            async with self.session.request(method, url, timeout=self.timeout, **kw) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise DingTalkError("network", type(exc).__name__, transient=True) from None
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            data = {"message": text[:200]}
        return status, data

    async def token(self, *, stale: str | None = None) -> str:
        if self._token and self._token != stale and self.clock() < self._expires:
            return self._token
        async with self._lock:
            if self._token and self._token != stale and self.clock() < self._expires:
                return self._token
            status, data = await self._request(
                "POST", f"{self.api}/v1.0/oauth2/accessToken", json={"appKey": self.client_id, "appSecret": self.client_secret}
            )
            if status != 200 or "accessToken" not in data:
                raise DingTalkError(str(data.get("code", status)), str(data.get("message", "")), transient=status >= 500)
            self.token_fetches += 1
            self._token = str(data["accessToken"])
            self._expires = self.clock() + max(60.0, float(data.get("expireIn", 7200)) - EARLY_REFRESH)
            return self._token

    async def v1(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A v1.0 call with the token header; 400/401 naming the token → refresh once and retry once."""
        token = await self.token()
        for attempt in (1, 2):
            status, data = await self._request(
                method, f"{self.api}{path}", json=body, headers={"x-acs-dingtalk-access-token": token}
            )
            if status == 200:
                return data if isinstance(data, dict) else {}
            message = str(data.get("message", "")) if isinstance(data, dict) else ""
            code = str(data.get("code", status)) if isinstance(data, dict) else str(status)
            if status in (400, 401) and ("access_token" in message or code == "InvalidAuthentication") and attempt == 1:
                token = await self.token(stale=token)
                continue
            raise DingTalkError(code, message, transient=status >= 500 or status == 429 or "Throttling" in code, status=status)
        raise AssertionError("unreachable")

    async def oapi_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        token = await self.token()
        for attempt in (1, 2):
            status, data = await self._request("POST", f"{self.oapi}{path}", params={"access_token": token}, json=body)
            if status >= 500:
                raise DingTalkError(str(status), "server error", transient=True, status=status)
            code = int(data.get("errcode", 0)) if isinstance(data, dict) else -1
            if code == 0:
                return data
            if code in OAPI_TOKEN_ERRORS and attempt == 1:
                token = await self.token(stale=token)
                continue
            raise DingTalkError(str(code), str(data.get("errmsg", "")), transient=code in OAPI_TRANSIENT, status=status)
        raise AssertionError("unreachable")

    # ---- endpoints ----------------------------------------------------------------------------------

    async def open_connection(self, subscriptions: list[dict[str, str]]) -> tuple[str, str]:
        """Stream mode step 1: a single-use ticket (90 s) for the websocket; no token needed."""
        status, data = await self._request(
            "POST",
            f"{self.api}/v1.0/gateway/connections/open",
            json={"clientId": self.client_id, "clientSecret": self.client_secret, "subscriptions": subscriptions,
                  "ua": "duban/0.1", "localIp": "127.0.0.1"},
        )
        if status != 200 or "endpoint" not in data or "ticket" not in data:
            raise DingTalkError(str(data.get("code", status)), str(data.get("message", "")), transient=True, status=status)
        return str(data["endpoint"]), str(data["ticket"])

    async def robot_send(self, user_ids: list[str], msg_key: str, msg_param: dict[str, Any]) -> dict[str, Any]:
        if not 1 <= len(user_ids) <= 20:
            raise ValueError("oToMessages/batchSend takes 1..20 users")
        return await self.v1(
            "POST",
            "/v1.0/robot/oToMessages/batchSend",
            {"robotCode": self.robot_code, "userIds": user_ids, "msgKey": msg_key,
             "msgParam": json.dumps(msg_param, ensure_ascii=False)},
        )

    async def work_notice(self, user_ids: list[str], msg: dict[str, Any]) -> dict[str, Any]:
        return await self.oapi_post(
            "/topapi/message/corpconversation/asyncsend_v2",
            {"agent_id": self.agent_id, "userid_list": ",".join(user_ids), "msg": msg},
        )

    async def card_create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.v1("POST", "/v1.0/card/instances/createAndDeliver", body)

    async def card_update(self, out_track_id: str, params: dict[str, str]) -> dict[str, Any]:
        return await self.v1(
            "PUT",
            "/v1.0/card/instances",
            {"outTrackId": out_track_id, "cardData": {"cardParamMap": params},
             "cardUpdateOptions": {"updateCardDataByKey": True}, "userIdType": 1},
        )
