"""Strict DingTalk (钉钉) server emulator for tests: Stream gateway, OpenAPI (api + oapi hosts), cards.

Why this exists: DingTalk cannot be reached from CI, and a lenient fake hides the bugs that hurt in
production: a late ACK that makes the gateway push the same messageId again, a dropped socket, a
single-use 90 s ticket, card values that are not strings, users in ``flowControlledStaffIdList``, work
notifications that "succeed" but are silently dropped. Every rule comes from
/work/shared/reference/dingtalk.md (section numbers in comments). Where the reference gives no error
code, or says "unverified", the behaviour is marked "emulator's choice" so nobody mistakes it for a
documented DingTalk value. Client code should only rely on what the reference documents.

One aiohttp server on 127.0.0.1 (random port) plays both hosts: ``api_base`` stands for
https://api.dingtalk.com, ``oapi_base`` for https://oapi.dingtalk.com (the paths do not collide), and
``/connect`` is the Stream websocket endpoint (wss-open-connection.dingtalk.com).

Real time vs. clock: expiry rules (token 7200 s, ticket 90 s, sessionWebhook 90 min, work notices per
Asia/Shanghai day) follow ``clock`` (give a ``ManualClock``); Stream redelivery and the close after a
``disconnect`` frame use real seconds (``redeliver_after``, ``disconnect_close_after``), set small in tests.

Independence: only stdlib and aiohttp (no project code, no dingtalk-stream SDK), so these fixtures
check the project's code instead of sharing its mistakes.

Not emulated: groups (IM_GROUP spaces, groupMessages/send), departments, HTTP-mode card callbacks,
custom-robot webhooks, the 5000-recipients-per-minute work-notification cap, media upload.
"""

from __future__ import annotations

from .clock import ManualClock  # noqa: F401  (re-exported for tests)

import asyncio
import base64
import copy
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable, Mapping

from aiohttp import WSMsgType, web

# ---------------------------------------------------------------------------------------------------
# Stream topics (§1.1).
TOPIC_ROBOT = "/v1.0/im/bot/messages/get"
TOPIC_CARD = "/v1.0/card/instances/callback"
TOPIC_DELEGATE = "/v1.0/im/bot/messages/delegate"
TOPIC_PING, TOPIC_DISCONNECT = "ping", "disconnect"
FRAME_TYPES = frozenset({"CALLBACK", "EVENT", "SYSTEM"})

# api.dingtalk.com (v1.0) errors: HTTP status + {"code", "message", "requestid"}.
CODE_PARAM = "param.error"  # brief (HTTP 400); used for every field/limit violation
CODE_BAD_CREDENTIALS = "invalidClientIdOrSecret"  # emulator's choice (HTTP 400); real code unverified
CODE_AUTH = "InvalidAuthentication"  # brief (HTTP 401); §3.1 says the exact string is unverified
MSG_AUTH = "不合法的access_token"  # §3.1 / §6.6
CODE_DUPLICATE_TRACK_ID = "duplicatedOutTrackId"  # emulator's choice (HTTP 400)
CODE_NO_CARD = "cardInstanceNotExist"  # emulator's choice (HTTP 400)
CODE_NOT_FOUND = "InvalidAction.NotFound"  # emulator's choice (HTTP 404): path/method not emulated
CODE_INJECTED = "ServiceUnavailable"  # default body of fail_next on v1.0 paths

# oapi.dingtalk.com errors: HTTP 200 + {"errcode", "errmsg"}.
ERR_TOKEN = 40014  # §3.1 "不合法的access_token" (also used for a missing token: emulator's choice)
ERR_PARAM = 40035  # emulator's choice for every field/limit violation on oapi
ERR_AGENT = 40056  # emulator's choice: agent_id is not this app's
ERR_BAD_CREDENTIALS = 40089  # emulator's choice: /gettoken with a wrong appkey/appsecret
ERR_SYSTEM_BUSY = -1  # §3.6; default body of fail_next on oapi paths
ERR_SESSION = 300001  # emulator's choice, sent with HTTP 500 (§2a: expired sessionWebhook -> 500)
FORBIDDEN_DAILY_LIMIT = "143105"  # §3.2 500/user/day (in getsendresult.forbidden_list)
FORBIDDEN_DUPLICATE = "143106"  # §3.2 same content to the same user on the same day

# Limits.
TOKEN_TTL = 7200  # §3.1 expireIn
TICKET_TTL = 90  # §1.1 single use, 90 s
SESSION_TTL = 5400  # §2a sessionWebhookExpiredTime - createAt ~= 90 min
BATCH_MAX_USERS = 20  # §3.3
WORK_MAX_USERS = 5000  # §3.2
WORK_MAX_PER_USER_DAY = 500  # §3.2 internal app
WORK_MSG_MAX_BYTES = 2048  # §3.2 "msg ≤2048 bytes per one SDK doc" (JSON of msg, UTF-8)
WORK_RESULT_TTL = 24 * 3600  # §3.2 getsendresult covers the last 24 h
OUT_TRACK_ID_MAX = 64  # emulator's choice (the reference gives no limit)
SHANGHAI = timezone(timedelta(hours=8))  # China has no DST, so a fixed offset is the Asia/Shanghai day

# §3.3 msgKey -> msgParam fields that must be non-empty strings (2..6 only need title/text here:
# the button field names of those variants are not pinned down in the reference).
ROBOT_MSG_KEYS: dict[str, tuple[str, ...]] = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleImageMsg": ("photoURL",),
    "sampleLink": ("text", "title", "picUrl", "messageUrl"),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
    **{f"sampleActionCard{i}": ("title", "text") for i in range(2, 7)},
    "sampleAudio": ("mediaId",),
    "sampleFile": ("mediaId", "fileName", "fileType"),
    "sampleVideo": (),
}
# §3.2 msgtype -> required non-empty string fields.
WORK_MSG_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("content",),
    "markdown": ("title", "text"),
    "image": ("media_id",),
    "voice": ("media_id",),
    "file": ("media_id",),
    "link": ("messageUrl", "picUrl", "title", "text"),
    "oa": ("message_url",),
    "action_card": ("title", "markdown"),
}


class ApiError(Exception):
    """v1.0 error: HTTP ``status`` with ``{"code", "message", "requestid"}``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{status} {code} {message}")
        self.code, self.message, self.status = code, message, status


class OapiError(Exception):
    """oapi error: HTTP 200 (unless ``status``) with ``{"errcode", "errmsg"}``."""

    def __init__(self, errcode: int, errmsg: str, status: int = 200) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode, self.errmsg, self.status = errcode, errmsg, status


def _need(cond: bool, hint: str) -> None:
    if not cond:
        raise ApiError(CODE_PARAM, f"[emulator] {hint}")


def _oneed(cond: bool, hint: str, errcode: int = ERR_PARAM) -> None:
    if not cond:
        raise OapiError(errcode, f"invalid parameter, hint: [emulator] {hint}")


def _nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _ms(t: float) -> int:
    return int(round(t * 1000))


def _param_map(obj: Any, where: str) -> dict[str, str]:
    """``{"cardParamMap": {str: str}}`` -> the map. Card values must be STRINGS (§4.2)."""
    _need(isinstance(obj, dict) and isinstance(obj.get("cardParamMap"), dict),
          f"{where}.cardParamMap must be an object")
    pm = obj["cardParamMap"]
    bad = {k: type(v).__name__ for k, v in pm.items() if not isinstance(k, str) or not isinstance(v, str)}
    _need(not bad, f"{where}.cardParamMap values must all be strings (JSON-encode non-strings): {bad}")
    return dict(pm)


# ---------------------------------------------------------------------------------------------------
@dataclass
class _Fault:
    kind: str  # "http" | "delay"
    status: int = 500
    body: Any = None
    seconds: float = 0.0


@dataclass
class _Call:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: dict[str, Any] | None  # None -> not a JSON object
    request: web.Request


@dataclass
class _Ticket:
    issued_at: float
    subscriptions: list[dict[str, str]]
    used: bool = False


@dataclass
class _Conn:
    id: str
    ws: web.WebSocketResponse
    request: web.Request
    subscriptions: list[dict[str, str]]
    opened_at: float
    draining: bool = False  # got a "disconnect" frame: no new frames, closes soon
    closed: bool = False

    def subscribed(self, ftype: str, topic: str) -> bool:
        if ftype == "SYSTEM":  # connection management needs no subscription
            return True
        return any(s["type"] == ftype and (s["topic"] == topic or (ftype == "EVENT" and s["topic"] == "*"))
                   for s in self.subscriptions)


@dataclass
class _Frame:
    """One downstream message; its messageId never changes across redeliveries."""

    message_id: str
    type: str
    topic: str
    data: str  # JSON string, exactly as in §1.1
    time_ms: int
    kind: str  # "robot" | "card" | "event" | "ping" | "disconnect"
    redeliver: bool
    extra_headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    settled: bool = False  # ACKed, given up or undeliverable
    timer: asyncio.Task[None] | None = None


@dataclass
class CardInstance:
    """State of one card (outTrackId) as its receiver would see it."""

    out_track_id: str
    template: str
    user: str  # the receiver (IM_ROBOT space)
    params: dict[str, str]  # public cardParamMap
    private: dict[str, dict[str, str]]  # userId -> private cardParamMap
    callback_type: str | None  # "STREAM" | "HTTP" | None (no callbacks at all)
    delivered: bool
    created_at: float
    history: list[dict[str, Any]] = field(default_factory=list)  # snapshots: create, api, ack


# ---------------------------------------------------------------------------------------------------
class DingTalkEmulator:
    """Strict fake of DingTalk for one internal app (client_id = AppKey, robot_code, agent_id).

    State is public so tests can assert on what a user would really see: ``robot_messages`` vs
    ``robot_flow_controlled``, ``work_notices`` vs ``work_dropped``, ``cards``, ``session_replies``,
    and, for the Stream side, ``deliveries``/``acks``/``bad_acks``.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        robot_code: str,
        agent_id: int,
        *,
        users: Iterable[str] | Mapping[str, str] = (),
        clock: Callable[[], float] = time.time,
        card_template_id: str = "duban-card.schema",
        corp_id: str = "dingemulatorcorp",
        redeliver_after: float = 60.0,
        max_redeliveries: int = 3,
        disconnect_close_after: float = 0.2,
        token_ttl: float = TOKEN_TTL,
        same_token_within_ttl: bool = False,
        require_stream_callback: bool = True,
    ) -> None:
        """``users``: userIds (staffIds), or a mapping userId -> nick.

        ``redeliver_after`` (real seconds, §1.1 Node SDK: 60 s) and ``max_redeliveries`` (emulator's
        choice: 3) govern Stream redelivery. ``disconnect_close_after``: the gateway closes the socket
        10 s after a ``disconnect`` frame (§1.1); shorter by default for tests.
        ``same_token_within_ttl`` mimics the [3P] note in §3.1: a refetch returns the still valid token
        and extends it. By default every fetch issues a new token and older ones stay valid until expiry.
        ``require_stream_callback`` (default True): createAndDeliver rejects a card whose callbackType is
        not "STREAM" with 400 param.error (emulator's choice: real DingTalk accepts such a card but never
        sends its clicks over Stream, §1.1/§6.4). With False such cards are accepted like the real
        service and ``push_card_callback`` refuses to click them.
        """
        self.client_id, self.client_secret = client_id, client_secret
        self.robot_code, self.agent_id, self.card_template_id = robot_code, agent_id, card_template_id
        self.corp_id, self.clock = corp_id, clock
        self.redeliver_after, self.max_redeliveries = redeliver_after, max_redeliveries
        self.disconnect_close_after = disconnect_close_after
        self.token_ttl, self.same_token_within_ttl = token_ttl, same_token_within_ttl
        self.require_stream_callback = require_stream_callback
        self.app_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dingtalk-emulator:{client_id}"))
        self.api_base = self.oapi_base = self.base_url = ""
        self.users: dict[str, str] = {}  # userId -> nick

        # HTTP side
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (path, JSON body or query)
        self.token_calls = 0
        self.robot_messages: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.robot_flow_controlled: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.work_notices: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.work_dropped: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.work_tasks: dict[int, dict[str, Any]] = {}
        self.cards: dict[str, CardInstance] = {}
        self.card_updates: list[dict[str, Any]] = []
        self.session_replies: list[dict[str, Any]] = []

        # Stream side
        self.connections_opened = 0  # successful POST /v1.0/gateway/connections/open (tickets issued)
        self.websockets_accepted = 0  # successful upgrades on /connect
        self.subscriptions: list[dict[str, str]] = []  # of the last successful open
        self.last_open: dict[str, Any] | None = None  # body of the last successful open
        self.connection_ids: list[str] = []
        self.deliveries: defaultdict[str, int] = defaultdict(int)  # messageId -> times sent on a socket
        self.acks: dict[str, Any] = {}  # messageId -> parsed ``data`` of the accepted ACK
        self.ack_frames: dict[str, list[dict[str, Any]]] = defaultdict(list)  # messageId -> every ACK frame
        self.nacks: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)  # ACK frames with code != 200
        self.bad_acks: list[dict[str, Any]] = []  # {"raw", "reason", "connection_id"}
        self.given_up: list[str] = []  # messageIds that exhausted max_redeliveries without an ACK
        self.not_subscribed: list[dict[str, Any]] = []  # frames the connection had not subscribed to
        self.sent_frames: list[dict[str, Any]] = []  # every frame as sent, in order

        self._tokens: dict[str, float] = {}  # token -> expires_at
        self._tickets: dict[str, _Ticket] = {}
        self._conns: list[_Conn] = []
        self._frames: dict[str, _Frame] = {}
        self._waiting: deque[_Frame] = deque()  # to send on the next connection
        self._flow: defaultdict[str, int] = defaultdict(int)
        self._sessions: dict[str, dict[str, Any]] = {}
        self._work_seen: dict[tuple[str, date], set[str]] = defaultdict(set)  # (user, day) -> msg digests
        self._work_count: defaultdict[tuple[str, date], int] = defaultdict(int)
        self._task_ids = itertools.count(256_000_000_001)
        self._msg_seq = itertools.count(1)
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._routes: dict[tuple[str, str], Callable[[_Call], Awaitable[Any]]] = {
            ("POST", "/v1.0/oauth2/accessToken"): self._access_token,
            ("GET", "/gettoken"): self._gettoken,
            ("POST", "/v1.0/gateway/connections/open"): self._open_connection,
            ("GET", "/connect"): self._connect,
            ("POST", "/v1.0/robot/oToMessages/batchSend"): self._batch_send,
            ("POST", "/topapi/message/corpconversation/asyncsend_v2"): self._work_send,
            ("POST", "/topapi/message/corpconversation/getsendresult"): self._work_result,
            ("POST", "/v1.0/card/instances/createAndDeliver"): self._card_create,
            ("PUT", "/v1.0/card/instances"): self._card_update,
            ("POST", "/robot/sendBySession"): self._session_send,
        }
        if isinstance(users, Mapping):
            for uid, nick in users.items():
                self.add_user(uid, nick)
        else:
            for uid in users:
                self.add_user(uid)

    # ----------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self.api_base = self.oapi_base = self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # wakes handlers held by delay_next
        for f in self._frames.values():
            if f.timer is not None:
                f.timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        for c in list(self._conns):
            await self._abort(c)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DingTalkEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------------------- directory / knobs
    def add_user(self, user_id: str, nick: str | None = None) -> None:
        self.users[user_id] = nick or user_id

    def flow_control(self, user_id: str, n: int = 1) -> None:
        """The next ``n`` batchSend deliveries to ``user_id`` come back in flowControlledStaffIdList
        and are NOT delivered (§3.3)."""
        self._flow[user_id] += n

    def expire_tokens(self) -> None:
        """Every issued token is invalid from now on (both hosts)."""
        for t in self._tokens:
            self._tokens[t] = float("-inf")

    @staticmethod
    def _norm(path: str) -> str:
        path = path.split("?", 1)[0]
        if "://" in path:
            path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
        return path if path.startswith("/") else "/" + path

    def fail_next(self, path: str, status: int = 500, body: Any = None, times: int = 1) -> None:
        """Next ``times`` calls to ``path`` answer HTTP ``status`` with ``body`` (dict -> JSON, str -> text)
        and do nothing. Default body: ``{"code": "ServiceUnavailable", ...}`` on v1.0 paths,
        ``{"errcode": -1, "errmsg": "系统繁忙"}`` on oapi paths. Works on ``/connect`` too (no upgrade)."""
        self._faults[self._norm(path)].extend(_Fault("http", status=status, body=body) for _ in range(times))

    def delay_next(self, path: str, seconds: float, times: int = 1) -> None:
        """Hold the answer ``seconds`` (real time); the call is still executed afterwards, like a server
        whose reply arrives after the client gave up: a blind retry may deliver twice."""
        self._faults[self._norm(path)].extend(_Fault("delay", seconds=seconds) for _ in range(times))

    # ----------------------------------------------------------------------------- inspection
    def robot_texts(self, user_id: str) -> list[str]:
        """sampleText content / sampleMarkdown text the user really received via batchSend."""
        out = []
        for m in self.robot_messages.get(user_id, []):
            p = m["msgParam"]
            out.append(p.get("content") if m["msgKey"] == "sampleText" else p.get("text", p.get("title", "")))
        return out

    def work_texts(self, user_id: str) -> list[str]:
        """text.content / markdown.text of work notifications really delivered (not dropped ones)."""
        out = []
        for m in self.work_notices.get(user_id, []):
            msg = m["msg"]
            body = msg.get(msg.get("msgtype"), {})
            out.append(body.get("content") or body.get("text") or body.get("markdown") or "")
        return out

    def session_texts(self, user_id: str) -> list[str]:
        return [r["text"] for r in self.session_replies if r["user"] == user_id]

    def cards_for(self, user_id: str) -> list[CardInstance]:
        return [c for c in self.cards.values() if c.user == user_id and c.delivered]

    @property
    def connected(self) -> bool:
        return self._current() is not None

    @property
    def current_connection_id(self) -> str | None:
        c = self._current()
        return c.id if c else None

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
        """Wait (real time) until ``predicate()`` is truthy; AssertionError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            ev = self._changed
            try:
                await asyncio.wait_for(ev.wait(), min(remaining, 0.05))
            except asyncio.TimeoutError:
                pass

    async def wait_connected(self, timeout: float = 5.0, count: int = 1) -> str:
        """Wait until at least ``count`` websockets were accepted and one is live; return its id."""
        await self.wait_until(lambda: self.websockets_accepted >= count and self._current() is not None,
                              timeout, f"websocket connection #{count}")
        cid = self.current_connection_id
        assert cid is not None
        return cid

    async def wait_for_ack(self, message_id: str, timeout: float = 5.0) -> Any:
        """Return the parsed ``data`` of the ACK of ``message_id``; AssertionError (with what the
        emulator saw) on timeout."""
        try:
            await self.wait_until(lambda: message_id in self.acks, timeout, f"ACK of {message_id}")
        except AssertionError as e:
            raise AssertionError(f"{e}; deliveries={self.deliveries.get(message_id, 0)}, "
                                 f"nacks={self.nacks.get(message_id)}, bad_acks={self.bad_acks[-3:]}, "
                                 f"connected={self.connected}") from None
        return self.acks[message_id]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ----------------------------------------------------------------------------- HTTP plumbing
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path, query = request.path, dict(request.query)
        handler = self._routes.get((request.method, path))
        is_oapi = not path.startswith("/v1.0/") and path != "/connect"
        body: dict[str, Any] | None = None
        logged: dict[str, Any] = query
        if request.method in ("POST", "PUT"):
            raw = await request.read()
            try:
                parsed = json.loads(raw.decode("utf-8")) if raw else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
            logged = body if body is not None else {"_raw": raw[:2000].decode("utf-8", "replace")}
        self.requests.append((path, logged))
        self._notify()
        if handler is None:
            return web.json_response({"code": CODE_NOT_FOUND, "requestid": uuid.uuid4().hex,
                                      "message": f"emulator: {request.method} {path} not implemented"}, status=404)
        if path in ("/v1.0/oauth2/accessToken", "/gettoken"):
            self.token_calls += 1

        queue = self._faults.get(path)
        if queue:
            fault = queue.popleft()
            if fault.kind == "http":
                b = fault.body
                if b is None:
                    b = ({"errcode": ERR_SYSTEM_BUSY, "errmsg": "系统繁忙"} if is_oapi else
                         {"code": CODE_INJECTED, "message": "emulated failure", "requestid": uuid.uuid4().hex})
                if isinstance(b, (dict, list)):
                    return web.json_response(b, status=fault.status)
                return web.Response(status=fault.status, text=str(b))
            try:  # "delay": cancellable by stop() so teardown never hangs
                await asyncio.wait_for(self._stopping.wait(), fault.seconds)
                return web.Response(status=503, text="emulator stopping")
            except asyncio.TimeoutError:
                pass

        call = _Call(request.method, path, query, request.headers, body, request)
        try:
            if request.method in ("POST", "PUT") and body is None:
                if is_oapi:
                    raise OapiError(ERR_PARAM, "invalid parameter, hint: [emulator] body must be a JSON object")
                raise ApiError(CODE_PARAM, "[emulator] body must be a JSON object")
            result = await handler(call)
            if isinstance(result, web.StreamResponse):
                return result
            return web.json_response(result)
        except ApiError as e:
            return web.json_response({"code": e.code, "message": e.message, "requestid": uuid.uuid4().hex},
                                     status=e.status)
        except OapiError as e:
            return web.json_response({"errcode": e.errcode, "errmsg": e.errmsg, "request_id": uuid.uuid4().hex},
                                     status=e.status)

    # ----------------------------------------------------------------------------- tokens (§3.1)
    def _issue_token(self) -> str:
        now = self.clock()
        if self.same_token_within_ttl:
            valid = [t for t, exp in self._tokens.items() if now < exp]
            if valid:
                tok = valid[-1]
                self._tokens[tok] = now + self.token_ttl
                return tok
        tok = secrets.token_hex(16)
        self._tokens[tok] = now + self.token_ttl
        return tok

    def _token_ok(self, token: str | None) -> bool:
        return bool(token) and self.clock() < self._tokens.get(token or "", float("-inf"))

    def _check_v1_token(self, call: _Call) -> None:
        # The brief fixes HTTP 401 (the SDK resets its cache only on 401); §3.1 notes that logs also show
        # a 400 with the same message, so clients should handle both.
        if not self._token_ok(call.headers.get("x-acs-dingtalk-access-token")):
            raise ApiError(CODE_AUTH, MSG_AUTH, status=401)

    def _check_oapi_token(self, call: _Call) -> None:
        if not self._token_ok(call.query.get("access_token")):
            raise OapiError(ERR_TOKEN, MSG_AUTH)

    async def _access_token(self, call: _Call) -> dict[str, Any]:
        body = call.body or {}
        _need(_nonempty_str(body.get("appKey")) and _nonempty_str(body.get("appSecret")),
              "appKey and appSecret are required")
        if body["appKey"] != self.client_id or body["appSecret"] != self.client_secret:
            raise ApiError(CODE_BAD_CREDENTIALS, "无效的clientId或者clientSecret")
        return {"accessToken": self._issue_token(), "expireIn": int(self.token_ttl)}

    async def _gettoken(self, call: _Call) -> dict[str, Any]:
        """Old ``GET /gettoken?appkey&appsecret`` (§3.1). Tokens work on both hosts (the reverse,
        old token on v1.0, is unverified: emulator's choice)."""
        if call.query.get("appkey") != self.client_id or call.query.get("appsecret") != self.client_secret:
            raise OapiError(ERR_BAD_CREDENTIALS, "不合法的appKey或appSecret")
        return {"errcode": 0, "errmsg": "ok", "access_token": self._issue_token(), "expires_in": int(self.token_ttl)}

    # ----------------------------------------------------------------------------- Stream gateway (§1.1)
    async def _open_connection(self, call: _Call) -> dict[str, Any]:
        body = call.body or {}
        _need(_nonempty_str(body.get("clientId")) and _nonempty_str(body.get("clientSecret")),
              "clientId and clientSecret are required")
        if body["clientId"] != self.client_id or body["clientSecret"] != self.client_secret:
            raise ApiError(CODE_BAD_CREDENTIALS, "无效的clientId或者clientSecret")
        subs = body.get("subscriptions")
        # A connection without subscriptions receives nothing: rejected (emulator's choice).
        _need(isinstance(subs, list) and len(subs) > 0, "subscriptions must be a non-empty list")
        assert isinstance(subs, list)
        for i, s in enumerate(subs):
            _need(isinstance(s, dict) and s.get("type") in FRAME_TYPES and _nonempty_str(s.get("topic")),
                  f"subscriptions[{i}] must be {{type: EVENT|CALLBACK|SYSTEM, topic: str}}, got {s!r}")
            if s["type"] == "EVENT":  # §1.1: "EVENT | `*` only"
                _need(s["topic"] == "*", f"subscriptions[{i}]: EVENT topic must be '*'")
        if "ua" in body:
            _need(isinstance(body["ua"], str), "ua must be a string")
        ticket = str(uuid.uuid4())
        clean = [{"type": s["type"], "topic": s["topic"]} for s in subs]
        self._tickets[ticket] = _Ticket(self.clock(), clean)
        self.connections_opened += 1
        self.subscriptions, self.last_open = clean, copy.deepcopy(body)
        ws_base = self.base_url.replace("http://", "ws://", 1)
        return {"endpoint": f"{ws_base}/connect", "ticket": ticket}

    async def _connect(self, call: _Call) -> web.StreamResponse:
        request = call.request
        ws = web.WebSocketResponse(autoping=True, timeout=1.0)
        if not ws.can_prepare(request).ok:  # checked first so a plain GET does not burn the ticket
            return web.Response(status=400, text="emulator: websocket upgrade expected")
        t = self._tickets.get(call.query.get("ticket", ""))
        if t is None or t.used or self.clock() >= t.issued_at + TICKET_TTL:
            why = "unknown" if t is None else "already used" if t.used else "expired (90 s)"
            return web.Response(status=403, text=f"emulator: ticket {why}")
        t.used = True
        await ws.prepare(request)
        conn = _Conn("conn-" + secrets.token_hex(8), ws, request, t.subscriptions, self.clock())
        self._conns.append(conn)
        self.connection_ids.append(conn.id)
        self.websockets_accepted += 1
        self._notify()
        waiting = [f for f in self._waiting if not f.settled]
        self._waiting.clear()
        for f in waiting:
            await self._send_frame(f)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_upstream(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._bad_ack(conn, repr(msg.data[:200]), "binary frame (ACKs are JSON text)")
        except ConnectionError:
            pass
        finally:
            conn.closed = True
            if conn in self._conns:
                self._conns.remove(conn)
            self._notify()
        return ws

    def _current(self) -> _Conn | None:
        """Frames go to the newest live connection. The real gateway picks one at random (§1.1):
        deterministic here (emulator's choice)."""
        for c in reversed(self._conns):
            if not c.closed and not c.draining and not c.ws.closed:
                return c
        return None

    async def _abort(self, conn: _Conn) -> None:
        conn.closed = True
        tr = conn.request.transport
        if tr is not None:
            tr.abort()
        if conn in self._conns:
            self._conns.remove(conn)
        self._notify()

    # ---- downstream
    def _new_message_id(self) -> str:
        return f"{secrets.token_hex(4)}_{next(self._msg_seq)}_{secrets.token_hex(8)}"

    def _make_frame(self, ftype: str, topic: str, data: dict[str, Any], kind: str, redeliver: bool,
                    extra_headers: dict[str, str] | None = None, **meta: Any) -> _Frame:
        f = _Frame(self._new_message_id(), ftype, topic, json.dumps(data, ensure_ascii=False),
                   _ms(self.clock()), kind, redeliver, extra_headers or {}, meta)
        self._frames[f.message_id] = f
        return f

    def _wire(self, f: _Frame, conn: _Conn) -> dict[str, Any]:
        headers = {"appId": self.app_id, "connectionId": conn.id, "contentType": "application/json",
                   "messageId": f.message_id, "time": str(f.time_ms), "topic": f.topic, **f.extra_headers}
        return {"specVersion": "1.0", "type": f.type, "headers": headers, "data": f.data}

    async def _send_frame(self, f: _Frame) -> bool:
        """Send once on the current connection; without one, wait for the next connection."""
        conn = self._current()
        if conn is None:
            if f not in self._waiting:
                self._waiting.append(f)
            return False
        if not conn.subscribed(f.type, f.topic):
            f.settled = True
            self.not_subscribed.append({"messageId": f.message_id, "type": f.type, "topic": f.topic,
                                        "connection_id": conn.id})
            self._notify()
            return False
        wire = self._wire(f, conn)
        try:
            await conn.ws.send_str(json.dumps(wire, ensure_ascii=False))
        except (ConnectionError, RuntimeError):
            conn.closed = True
            self._waiting.append(f)
            return False
        self.deliveries[f.message_id] += 1
        self.sent_frames.append(wire)
        if f.redeliver and not f.settled:
            self._arm(f)
        self._notify()
        return True

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _arm(self, f: _Frame) -> None:
        if f.timer is not None and f.timer is not asyncio.current_task():
            f.timer.cancel()
        f.timer = self._spawn(self._redeliver_later(f))

    async def _redeliver_later(self, f: _Frame) -> None:
        await asyncio.sleep(self.redeliver_after)
        if f.settled:
            return
        if self.deliveries[f.message_id] > self.max_redeliveries:
            f.settled = True
            self.given_up.append(f.message_id)
            self._notify()
            return
        await self._send_frame(f)

    async def _push(self, f: _Frame) -> str:
        await self._send_frame(f)
        return f.message_id

    # ---- upstream (ACKs)
    def _bad_ack(self, conn: _Conn, raw: Any, reason: str) -> None:
        self.bad_acks.append({"raw": raw, "reason": reason, "connection_id": conn.id})
        self._notify()

    def _on_upstream(self, conn: _Conn, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            return self._bad_ack(conn, raw, "not JSON")
        if not isinstance(msg, dict) or not isinstance(msg.get("headers"), dict):
            return self._bad_ack(conn, raw, "not an object with headers")
        mid = msg["headers"].get("messageId")
        f = self._frames.get(mid) if isinstance(mid, str) else None
        if f is None:
            return self._bad_ack(conn, raw, f"unknown messageId {mid!r}")
        if msg["headers"].get("contentType") != "application/json":
            return self._bad_ack(conn, raw, "headers.contentType must be application/json")
        code = msg.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            return self._bad_ack(conn, raw, "code must be an integer (200/404/500)")
        # "message" is "OK" in §1.1 but the SDK sends "" (§1.2 table): any string is accepted.
        if "message" in msg and not isinstance(msg["message"], str):
            return self._bad_ack(conn, raw, "message must be a string")
        if not isinstance(msg.get("data"), str):
            return self._bad_ack(conn, raw, "data must be a JSON *string*")
        try:
            data = json.loads(msg["data"])
        except json.JSONDecodeError:
            return self._bad_ack(conn, raw, "data is not valid JSON")
        self.ack_frames[mid].append(msg)
        if code != 200:
            # The reference reserves 404/500 but does not say what the gateway does: the emulator
            # treats it as "not handled" and redelivers like a missing ACK (emulator's choice).
            self.nacks[mid].append(msg)
            return self._notify()
        if not isinstance(data, dict):
            return self._bad_ack(conn, raw, "data must encode a JSON object")
        if f.kind == "ping" and data != json.loads(f.data):
            return self._bad_ack(conn, raw, "ping ACK must echo the frame's data ({opaque})")
        if f.kind == "event":
            # §1.1: EVENT data MUST be {"status": "SUCCESS"|"LATER", "message"}. What the gateway does with
            # the SDK's echo form is unverified: treated as a bad ACK and redelivered (emulator's choice).
            if data.get("status") not in ("SUCCESS", "LATER"):
                return self._bad_ack(conn, raw, 'EVENT ACK data must be {"status":"SUCCESS"|"LATER",...}')
            if data["status"] == "LATER":  # "failed, redeliver"
                self.nacks[mid].append(msg)
                return self._notify()
        if f.kind == "card" and isinstance(data.get("response"), dict):
            try:
                self._apply_card_response(f, data["response"])
            except ApiError as e:  # the click is still ACKed; the card just is not updated
                self._bad_ack(conn, raw, f"card update in ACK rejected: {e.message}")
        if mid not in self.acks:
            self.acks[mid] = data
        f.settled = True
        if f.timer is not None:
            f.timer.cancel()
        self._notify()

    # ---- test helpers: pushes
    def robot_text_payload(self, staff_id: str, text: str, *, msg_id: str | None = None,
                           conversation_type: str = "1", conversation_id: str | None = None,
                           conversation_title: str = "督办工作群") -> dict[str, Any]:
        """The robot-message JSON of §2a (also the Stream ``data``); opens a sessionWebhook for it.
        Useful on its own to POST an HTTP-mode callback (see ``http_callback_headers``)."""
        if staff_id not in self.users:
            raise AssertionError(f"{staff_id!r} is not in the emulator's directory (add_user first)")
        _need(conversation_type in ("1", "2"), "conversation_type must be '1' (1:1) or '2' (group)")
        now = self.clock()
        session = secrets.token_urlsafe(24)
        group = conversation_type == "2"
        cid = conversation_id or ("cid" + base64.b64encode(hashlib.sha256(
            f"{self.robot_code}|{staff_id}".encode()).digest()[:18]).decode())
        self._sessions[session] = {"user": staff_id, "conversationId": cid, "expires_at": now + SESSION_TTL}
        chatbot_uid = "$:LWCP_v1:$" + hashlib.sha256(self.robot_code.encode()).hexdigest()[:24]
        payload: dict[str, Any] = {
            "conversationId": cid,
            "chatbotCorpId": self.corp_id,
            "chatbotUserId": chatbot_uid,
            "msgId": msg_id or "msg" + secrets.token_urlsafe(16),
            "senderNick": self.users[staff_id],
            "isAdmin": False,
            "senderStaffId": staff_id,
            "sessionWebhookExpiredTime": _ms(now + SESSION_TTL),
            "createAt": _ms(now),
            "senderCorpId": self.corp_id,
            "conversationType": conversation_type,
            "senderId": "$:LWCP_v1:$" + hashlib.sha256(staff_id.encode()).hexdigest()[:24],
            "sessionWebhook": f"{self.oapi_base}/robot/sendBySession?session={session}",
            # §2a: in a group the content keeps a leading space where the @mention was.
            "text": {"content": (" " + text) if group and not text.startswith(" ") else text},
            "robotCode": self.robot_code,
            "msgtype": "text",
        }
        if group:
            payload.update(conversationTitle=conversation_title, isInAtList=True,
                           atUsers=[{"dingtalkId": chatbot_uid}])
        return payload

    def http_callback_headers(self, timestamp_ms: int | None = None) -> dict[str, str]:
        """``timestamp``/``sign`` headers of an HTTP-mode robot callback (§2a; byte-level unverified)."""
        ts = str(_ms(self.clock()) if timestamp_ms is None else timestamp_ms)
        mac = hmac.new(self.client_secret.encode(), f"{ts}\n{self.client_secret}".encode(), hashlib.sha256)
        return {"timestamp": ts, "sign": base64.b64encode(mac.digest()).decode()}

    async def push_robot_text(self, staff_id: str, text: str, *, msg_id: str | None = None,
                              conversation_type: str = "1", conversation_id: str | None = None) -> str:
        """CALLBACK on /v1.0/im/bot/messages/get; returns the frame's messageId (not the payload msgId)."""
        payload = self.robot_text_payload(staff_id, text, msg_id=msg_id, conversation_type=conversation_type,
                                          conversation_id=conversation_id)
        return await self._push(self._make_frame("CALLBACK", TOPIC_ROBOT, payload, "robot", True,
                                                 msg_id=payload["msgId"], user=staff_id))

    async def push_card_callback(self, out_track_id: str, user_id: str, params: dict[str, Any],
                                 action_id: str | None = None) -> str:
        """A button press (§4.3): CALLBACK on /v1.0/card/instances/callback. ``action_id`` defaults to
        ``params["action"]`` (the project's template) or "submit". Refuses (AssertionError) a press a
        real user could not make, or one DingTalk would not send over Stream."""
        card = self.cards.get(out_track_id)
        if card is None:
            raise AssertionError(f"card callback: no card {out_track_id!r} was created "
                                 f"(known: {sorted(self.cards)[:10]})")
        if card.user != user_id or not card.delivered:
            raise AssertionError(f"card callback: card {out_track_id!r} was not delivered to {user_id!r} "
                                 f"(receiver {card.user!r}, delivered={card.delivered})")
        if card.callback_type != "STREAM":
            raise AssertionError(f"card callback: card {out_track_id!r} was created with callbackType="
                                 f"{card.callback_type!r}; DingTalk only sends Stream callbacks for 'STREAM' (§1.1)")
        _need(isinstance(params, dict), "params must be a dict")
        aid = action_id or (params.get("action") if isinstance(params.get("action"), str) else None) or "submit"
        content = {"cardPrivateData": {"actionIds": [aid], "params": params}}
        data = {"outTrackId": out_track_id, "userId": user_id, "userIdType": 1, "corpId": self.corp_id,
                "spaceType": "IM_ROBOT", "spaceId": user_id, "type": "actionCallback",
                "content": json.dumps(content, ensure_ascii=False), "extension": "{}"}
        return await self._push(self._make_frame("CALLBACK", TOPIC_CARD, data, "card", True,
                                                 out_track_id=out_track_id, user=user_id))

    async def push_event(self, event_type: str, payload: dict[str, Any], *, event_id: str | None = None) -> str:
        """EVENT frame (§1.1). headers.topic is the eventType (emulator's choice; the real value is not
        in the reference). The ACK must be {"status": "SUCCESS"|"LATER"}."""
        now = _ms(self.clock())
        extra = {"eventType": event_type, "eventId": event_id or uuid.uuid4().hex, "eventCorpId": self.corp_id,
                 "eventBornTime": str(now), "eventUnifiedAppId": self.app_id}
        return await self._push(self._make_frame("EVENT", event_type, payload, "event", True, extra))

    async def push_ping(self) -> str:
        """SYSTEM ping with ``{"opaque"}``; the ACK must echo it. Not redelivered (emulator's choice)."""
        if self._current() is None:
            raise AssertionError("push_ping: no live Stream connection")
        return await self._push(self._make_frame("SYSTEM", TOPIC_PING, {"opaque": str(uuid.uuid4())},
                                                 "ping", False))

    async def push_disconnect(self, reason: str = "connection is expired") -> str:
        """SYSTEM disconnect; the socket closes ``disconnect_close_after`` s later (10 s for real, §1.1).
        From now on the connection gets no new frames (they wait for the next connection; emulator's
        choice) but ACKs on it are still accepted."""
        conn = self._current()
        if conn is None:
            raise AssertionError("push_disconnect: no live Stream connection")
        mid = await self._push(self._make_frame("SYSTEM", TOPIC_DISCONNECT, {"reason": reason}, "disconnect", False))
        conn.draining = True
        self._notify()

        async def close_later() -> None:
            await asyncio.sleep(self.disconnect_close_after)
            if not conn.ws.closed:
                await conn.ws.close(code=1000, message=b"disconnect")

        self._spawn(close_later())
        return mid

    async def drop_connection(self) -> None:
        """Abrupt TCP close of the current (or else any) connection, no close frame."""
        conn = self._current() or next((c for c in reversed(self._conns) if not c.closed), None)
        if conn is None:
            raise AssertionError("drop_connection: no live Stream connection")
        await self._abort(conn)

    async def redeliver(self, message_id: str) -> None:
        """Send a frame again now, ACKed or not (§1.1: duplicates happen even with ACKs)."""
        f = self._frames[message_id]
        await self._send_frame(f)

    # ----------------------------------------------------------------------------- cards (§4)
    def _apply_card_update(self, card: CardInstance, source: str, card_data: Any, private: dict[str, Any],
                           options: Any, user: str | None = None) -> None:
        """Validate everything first, then apply (no half-applied updates)."""
        _need(options is None or isinstance(options, dict), "cardUpdateOptions must be an object")
        opts = options or {}
        new_public = _param_map(card_data, "cardData") if card_data is not None else None
        new_private = {uid: _param_map(pd, f"privateData[{uid!r}]") for uid, pd in private.items()}
        # §4.3: without updateCardDataByKey the whole map is replaced (exact semantics unverified).
        merge_public = opts.get("updateCardDataByKey") is True
        merge_private = opts.get("updatePrivateDataByKey") is True
        if new_public is not None:
            card.params = {**card.params, **new_public} if merge_public else new_public
        for uid, pm in new_private.items():
            card.private[uid] = {**card.private.get(uid, {}), **pm} if merge_private else pm
        now = self.clock()
        card.history.append({"source": source, "params": dict(card.params),
                             "private": copy.deepcopy(card.private), "time": now})
        self.card_updates.append({"outTrackId": card.out_track_id, "source": source, "user": user,
                                  "cardData": new_public, "privateData": new_private,
                                  "merge": merge_public, "merge_private": merge_private, "time": now})
        self._notify()

    def _apply_card_response(self, f: _Frame, response: dict[str, Any]) -> None:
        """Synchronous update through the card-callback ACK (§4.3): cardData for everyone,
        userPrivateData for the clicking user only."""
        card = self.cards[f.meta["out_track_id"]]
        if "cardData" not in response and "userPrivateData" not in response:
            return
        private = {f.meta["user"]: response["userPrivateData"]} if "userPrivateData" in response else {}
        self._apply_card_update(card, "ack", response.get("cardData"), private,
                                response.get("cardUpdateOptions"), user=f.meta["user"])

    def _check_user_id_type(self, body: dict[str, Any]) -> None:
        # 1 = userId (staffId); 2 = unionId is not emulated (emulator's choice to reject it).
        _need(body.get("userIdType", 1) == 1, "userIdType must be 1 (userId); unionId is not emulated")

    async def _card_create(self, call: _Call) -> dict[str, Any]:
        self._check_v1_token(call)
        b = call.body or {}
        _need(b.get("cardTemplateId") == self.card_template_id,
              f"cardTemplateId {b.get('cardTemplateId')!r} is not the published template {self.card_template_id!r}")
        otid = b.get("outTrackId")
        _need(_nonempty_str(otid) and len(otid) <= OUT_TRACK_ID_MAX,
              f"outTrackId must be a non-empty string of at most {OUT_TRACK_ID_MAX} characters")
        params = _param_map(b.get("cardData"), "cardData")
        private_in = b.get("privateData", {})
        _need(isinstance(private_in, dict), "privateData must be an object userId -> {cardParamMap}")
        private = {uid: _param_map(pd, f"privateData[{uid!r}]") for uid, pd in private_in.items()}
        # Card callbacks are chosen per card (§1.1): only callbackType STREAM clicks come over the socket.
        # Real DingTalk accepts a card without callbackType (it just never calls back) or with HTTP +
        # callbackRouteKey; see require_stream_callback.
        ctype = b.get("callbackType")
        _need(ctype in (None, "STREAM", "HTTP"), "callbackType must be STREAM or HTTP")
        if self.require_stream_callback:
            _need(ctype == "STREAM", f"callbackType {ctype!r}: the bot only receives clicks with callbackType "
                                     "STREAM (strict emulator; real DingTalk would accept and never call back)")
        if ctype == "HTTP":
            _need(_nonempty_str(b.get("callbackRouteKey")), "callbackType HTTP needs callbackRouteKey")
        self._check_user_id_type(b)
        space = b.get("openSpaceId")
        prefix = "dtv1.card//IM_ROBOT."
        _need(isinstance(space, str) and space.startswith(prefix) and len(space) > len(prefix)
              and ";" not in space,
              f"openSpaceId must be '{prefix}<userId>' (only 1:1 robot spaces are emulated), got {space!r}")
        dm = b.get("imRobotOpenDeliverModel")
        _need(isinstance(dm, dict) and dm.get("spaceType") == "IM_ROBOT",
              "imRobotOpenDeliverModel.spaceType must be IM_ROBOT")
        _need(dm.get("robotCode") == self.robot_code,
              f"imRobotOpenDeliverModel.robotCode {dm.get('robotCode')!r} is not this robot")
        if "imRobotOpenSpaceModel" in b:
            _need(isinstance(b["imRobotOpenSpaceModel"], dict), "imRobotOpenSpaceModel must be an object")
        if otid in self.cards:  # emulator's choice: an outTrackId is used once
            raise ApiError(CODE_DUPLICATE_TRACK_ID, f"[emulator] outTrackId {otid!r} already exists")
        user = space[len(prefix):]
        ok = user in self.users
        now = self.clock()
        card = CardInstance(otid, b["cardTemplateId"], user, params, private, ctype, ok, now)
        card.history.append({"source": "create", "params": dict(params), "private": copy.deepcopy(private),
                             "time": now})
        self.cards[otid] = card
        self._notify()
        result = {"spaceType": "IM_ROBOT", "spaceId": user, "success": ok,
                  "errorMsg": None if ok else f"user {user} not found",
                  "carrierId": ("carrier" + secrets.token_hex(8)) if ok else None}
        return {"success": True, "result": {"outTrackId": otid, "deliverResults": [result]}}

    async def _card_update(self, call: _Call) -> dict[str, Any]:
        self._check_v1_token(call)
        b = call.body or {}
        otid = b.get("outTrackId")
        _need(_nonempty_str(otid), "outTrackId is required")
        card = self.cards.get(otid)
        if card is None:
            raise ApiError(CODE_NO_CARD, f"[emulator] no card instance with outTrackId {otid!r}")
        self._check_user_id_type(b)
        _need("cardData" in b or "privateData" in b, "give cardData and/or privateData")
        private = b.get("privateData", {})
        _need(isinstance(private, dict), "privateData must be an object userId -> {cardParamMap}")
        self._apply_card_update(card, "api", b.get("cardData"), private, b.get("cardUpdateOptions"))
        return {"success": True, "result": True}

    # ----------------------------------------------------------------------------- robot 1:1 (§3.3)
    async def _batch_send(self, call: _Call) -> dict[str, Any]:
        self._check_v1_token(call)
        b = call.body or {}
        _need(b.get("robotCode") == self.robot_code, f"robotCode {b.get('robotCode')!r} is not this robot")
        ids = b.get("userIds")
        _need(isinstance(ids, list) and all(_nonempty_str(u) for u in ids) and 1 <= len(ids),
              "userIds must be a non-empty list of strings")
        _need(len(ids) <= BATCH_MAX_USERS, f"userIds has {len(ids)} entries > {BATCH_MAX_USERS}")
        key = b.get("msgKey")
        _need(key in ROBOT_MSG_KEYS, f"msgKey {key!r} is not one of {sorted(ROBOT_MSG_KEYS)}")
        raw = b.get("msgParam")
        _need(isinstance(raw, str), "msgParam must be a JSON *string*, not an object")
        try:
            param = json.loads(raw)
        except json.JSONDecodeError:
            param = None
        _need(isinstance(param, dict), "msgParam must encode a JSON object")
        for fld in ROBOT_MSG_KEYS[key]:
            _need(_nonempty_str(param.get(fld)), f"{key} needs msgParam.{fld}")
        pqk = base64.b64encode(secrets.token_bytes(24)).decode()
        invalid, throttled, now = [], [], self.clock()
        for uid in dict.fromkeys(ids):  # de-duplicated, order kept
            record = {"msgKey": key, "msgParam": param, "processQueryKey": pqk, "time": now}
            if uid not in self.users:
                invalid.append(uid)
            elif self._flow[uid] > 0:
                self._flow[uid] -= 1
                throttled.append(uid)
                self.robot_flow_controlled[uid].append(record)
            else:
                self.robot_messages[uid].append(record)
        self._notify()
        return {"processQueryKey": pqk, "invalidStaffIdList": invalid, "flowControlledStaffIdList": throttled,
                "filteredStaffIdList": []}

    # ----------------------------------------------------------------------------- work notice (§3.2)
    def _check_agent(self, agent_id: Any) -> None:
        # Documented as a Number; a digit string is tolerated (emulator's choice).
        ok = (isinstance(agent_id, int) and not isinstance(agent_id, bool) and agent_id == self.agent_id) or (
            isinstance(agent_id, str) and agent_id.isdigit() and int(agent_id) == self.agent_id)
        _oneed(ok, f"agent_id {agent_id!r} is not {self.agent_id}", ERR_AGENT)

    def _check_work_msg(self, msg: Any) -> None:
        _oneed(isinstance(msg, dict), "msg must be an object")
        mtype = msg.get("msgtype")
        _oneed(mtype in WORK_MSG_FIELDS, f"msg.msgtype {mtype!r} is not one of {sorted(WORK_MSG_FIELDS)}")
        body = msg.get(mtype)
        _oneed(isinstance(body, dict), f"msg.{mtype} must be an object")
        for fld in WORK_MSG_FIELDS[mtype]:
            _oneed(_nonempty_str(body.get(fld)), f"msg.{mtype}.{fld} required")
        if mtype == "voice":
            _oneed(body.get("duration") is not None, "msg.voice.duration required")
        if mtype == "oa":
            _oneed(isinstance(body.get("head"), dict) and isinstance(body.get("body"), dict),
                   "msg.oa needs head and body objects")
        if mtype == "action_card":
            _oneed(len(body["title"]) <= 64, "action_card.title > 64 characters")
            single = "single_title" in body or "single_url" in body
            _oneed(single != ("btn_json_list" in body),
                   "action_card needs either single_title+single_url or btn_orientation+btn_json_list")
            if single:
                _oneed(_nonempty_str(body.get("single_title")) and len(body["single_title"]) <= 20,
                       "action_card.single_title required, at most 20 characters")
                _oneed(_nonempty_str(body.get("single_url")) and len(body["single_url"]) <= 500,
                       "action_card.single_url required, at most 500 characters")
            else:
                btns = body["btn_json_list"]
                _oneed(isinstance(btns, list) and len(btns) > 0 and all(
                    isinstance(x, dict) and _nonempty_str(x.get("title")) and _nonempty_str(x.get("action_url"))
                    for x in btns), "action_card.btn_json_list must be a list of {title, action_url}")
                _oneed(body.get("btn_orientation") in ("0", "1"), 'action_card.btn_orientation must be "0" or "1"')
        size = len(json.dumps(msg, ensure_ascii=False).encode("utf-8"))
        _oneed(size <= WORK_MSG_MAX_BYTES, f"msg is {size} bytes > {WORK_MSG_MAX_BYTES}")

    async def _work_send(self, call: _Call) -> dict[str, Any]:
        self._check_oapi_token(call)
        b = call.body or {}
        self._check_agent(b.get("agent_id"))
        ul = b.get("userid_list")
        _oneed(ul is None or isinstance(ul, str), "userid_list must be a comma-separated string")
        users = list(dict.fromkeys(u.strip() for u in (ul or "").split(",") if u.strip()))
        _oneed(len(users) <= WORK_MAX_USERS, f"userid_list has {len(users)} entries > {WORK_MAX_USERS}")
        _oneed(not b.get("dept_id_list"), "dept_id_list: departments are not emulated")
        to_all = b.get("to_all_user", False)
        _oneed(isinstance(to_all, bool), "to_all_user must be a boolean")
        if to_all:
            users = list(self.users)
        _oneed(bool(users), "no recipient: give userid_list or to_all_user")
        msg = b.get("msg")
        self._check_work_msg(msg)
        now = self.clock()
        day = datetime.fromtimestamp(now, SHANGHAI).date()
        digest = hashlib.sha256(json.dumps(msg, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        task_id = next(self._task_ids)
        task = {"agent_id": self.agent_id, "time": now, "msg": msg, "delivered": [], "invalid": [], "forbidden": []}
        for uid in users:
            record = {"task_id": task_id, "msg": copy.deepcopy(msg), "time": now}
            if uid not in self.users:
                task["invalid"].append(uid)
                continue
            # §3.2: over the limit "the API returns success, but users cannot receive the messages".
            reason = (FORBIDDEN_DUPLICATE if digest in self._work_seen[(uid, day)] else
                      FORBIDDEN_DAILY_LIMIT if self._work_count[(uid, day)] >= WORK_MAX_PER_USER_DAY else None)
            if reason:
                self.work_dropped[uid].append({**record, "reason": reason})
                task["forbidden"].append({"code": reason, "count": 1, "userid": uid})
                continue
            self._work_seen[(uid, day)].add(digest)
            self._work_count[(uid, day)] += 1
            self.work_notices[uid].append(record)
            task["delivered"].append(uid)
        self.work_tasks[task_id] = task
        self._notify()
        return {"errcode": 0, "errmsg": "ok", "task_id": task_id, "request_id": uuid.uuid4().hex}

    async def _work_result(self, call: _Call) -> dict[str, Any]:
        """getsendresult (§3.2): the way a client can see silent drops (forbidden_list codes 143105/143106)."""
        self._check_oapi_token(call)
        b = call.body or {}
        self._check_agent(b.get("agent_id"))
        task = self.work_tasks.get(b.get("task_id"))  # type: ignore[arg-type]
        _oneed(task is not None, f"unknown task_id {b.get('task_id')!r}")
        assert task is not None
        _oneed(self.clock() - task["time"] < WORK_RESULT_TTL, "task older than 24 h")
        return {"errcode": 0, "errmsg": "ok", "request_id": uuid.uuid4().hex, "send_result": {
            "invalid_user_id_list": list(task["invalid"]),
            "forbidden_user_id_list": [x["userid"] for x in task["forbidden"]],
            "failed_user_id_list": [], "read_user_id_list": [],
            "unread_user_id_list": list(task["delivered"]), "invalid_dept_id_list": [],
            "forbidden_list": copy.deepcopy(task["forbidden"])}}

    # ----------------------------------------------------------------------------- sessionWebhook (§2a)
    async def _session_send(self, call: _Call) -> dict[str, Any]:
        s = self._sessions.get(call.query.get("session", ""))
        if s is None:
            raise OapiError(ERR_SESSION, "[emulator] unknown session", status=500)
        if self.clock() >= s["expires_at"]:  # §2a/§6.7: ~90 min, then HTTP 500
            raise OapiError(ERR_SESSION, "[emulator] session expired (90 min)", status=500)
        b = call.body or {}
        mtype = b.get("msgtype")
        # Only text/markdown are emulated; interactive cards cannot go through a sessionWebhook (§2a).
        _oneed(mtype in ("text", "markdown"), f"msgtype {mtype!r}: only text/markdown are emulated")
        body = b.get(mtype)
        _oneed(isinstance(body, dict), f"{mtype} must be an object")
        if mtype == "text":
            _oneed(_nonempty_str(body.get("content")), "text.content required")
        else:
            _oneed(_nonempty_str(body.get("title")) and _nonempty_str(body.get("text")),
                   "markdown needs title and text")
        if "at" in b:
            _oneed(isinstance(b["at"], dict), "at must be an object")
        self.session_replies.append({"session": call.query["session"], "user": s["user"],
                                     "conversationId": s["conversationId"], "msgtype": mtype,
                                     "text": body.get("content") if mtype == "text" else body["text"],
                                     "body": b, "time": self.clock()})
        self._notify()
        return {"errcode": 0, "errmsg": "ok"}
