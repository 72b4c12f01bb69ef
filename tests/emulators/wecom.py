"""Strict WeCom (企业微信) server emulator and the WeCom side of callbacks, for tests.

Why this exists: the real WeCom API cannot be called from CI, and a lenient fake hides the bugs that
hurt in production (2048-byte limits, task_id reuse, single-use response codes, silent per-member drops,
early token invalidation). Every rule enforced here comes from /work/shared/reference/wecom.md (section
numbers in comments); where the reference gives no error code, the code used is marked "emulator's
choice" so that nobody mistakes it for a documented WeCom value. The client should branch on the
documented codes only (-1, 40001, 40014, 41001, 42001, 45009, 45033, 42014, 81013).

Independence: only stdlib, aiohttp and cryptography are used (no project code, no wechatpy), so these
fixtures can check the project's wechatpy-based code instead of sharing its mistakes.
"""

from __future__ import annotations

from .clock import ManualClock  # noqa: F401  (re-exported for tests)

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable
from xml.sax.saxutils import escape

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# ---------------------------------------------------------------------------------------------------
# Error codes. Documented ones cite wecom.md; the others are the emulator's choice (see comments).
ERR_SYSTEM_BUSY = -1  # §3.3
ERR_INVALID_SECRET = 40001  # §3.3 不合法的secret参数
ERR_INVALID_CORPID = 40013  # brief; WeCom global code "invalid corpid" (not listed in wecom.md)
ERR_INVALID_TOKEN = 40014  # §3.3
ERR_MISSING_TOKEN = 41001  # §3.3
ERR_TOKEN_EXPIRED = 42001  # §3.3
ERR_TASK_ID = 42014  # §2.2 "taskid has existed or empty or exceed max len" (also used for bad chars: our choice)
ERR_API_LIMIT = 45009  # §3.3
ERR_API_CONCURRENCY = 45033  # §3.3
ERR_ALL_INVALID = 81013  # §3.1
ERR_INVALID_MSGTYPE = 40008  # "invalid message type", seen in n8n-nodes-wecom#24 (§6.6)
ERR_INVALID_AGENTID = 40056  # brief; WeCom global code "invalid agentid" (not in wecom.md)
ERR_MISSING_CORPID = 41002  # emulator's choice (WeCom global list, not in wecom.md)
ERR_MISSING_SECRET = 41004  # emulator's choice (WeCom global list, not in wecom.md)
ERR_INVALID_PARAM = 40058  # emulator's choice for every field/limit violation without a documented code
ERR_INVALID_MEDIA_TYPE = 40004  # emulator's choice
ERR_INVALID_FILE_SIZE = 40006  # emulator's choice
ERR_INVALID_MEDIA_ID = 40007  # emulator's choice
ERR_MISSING_MEDIA = 41005  # emulator's choice
ERR_DATA_FORMAT = 47001  # brief: body is not a JSON object
ERR_NOT_IMPLEMENTED = 40000  # emulator's choice, sent with HTTP 404
# response_code errors: wecom.md §2.4 gives the rules (single use, 72 h) but no codes -> made up.
ERR_RESPONSE_CODE_UNKNOWN = 93101  # emulator's choice
ERR_RESPONSE_CODE_USED = 93102  # emulator's choice
ERR_RESPONSE_CODE_EXPIRED = 93103  # emulator's choice

ERRMSG: dict[int, str] = {
    ERR_SYSTEM_BUSY: "system busy",
    ERR_INVALID_SECRET: "invalid credential",
    ERR_INVALID_TOKEN: "invalid access_token",
    ERR_MISSING_TOKEN: "access_token missing",
    ERR_TOKEN_EXPIRED: "access_token expired",
    ERR_TASK_ID: "taskid has existed or empty or exceed max len",
    ERR_API_LIMIT: "api freq out of limit",
    ERR_API_CONCURRENCY: "api concurrent out of limit",
    ERR_ALL_INVALID: "user & party & tag all invalid",
    ERR_DATA_FORMAT: "data format error",
}

# Limits (wecom.md section in brackets).
CONTENT_MAX_BYTES = 2048  # text / markdown content [§3.1, §1.5]
TEXTCARD_TITLE_MAX, TEXTCARD_DESC_MAX, TEXTCARD_BTNTXT_MAX = 128, 512, 4  # bytes, bytes, chars [§3.1]
MAX_TOUSER, MAX_TOPARTY, MAX_TOTAG = 1000, 100, 100  # [§3.1, §2.4]
MAX_BUTTONS, BUTTON_KEY_MAX_BYTES = 6, 1024  # [§2.2]
MAX_HORIZONTAL, MAX_JUMP, MAX_VERTICAL, MAX_OPTIONS = 6, 3, 4, 10  # [§2.2]
TASK_ID_RE = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")  # ASCII only, so 128 chars == 128 bytes [§2.2]
RESPONSE_CODE_TTL = 72 * 3600  # single use, 72 h [§2.4]
MEMBER_PER_MINUTE, MEMBER_PER_HOUR = 30, 1000  # excess silently dropped [§3.2]
MEDIA_MIN = 5  # bytes; media limits are from the brief (WeCom 上传临时素材 page), not in wecom.md
MEDIA_MAX = {"file": 20 * 1024 * 1024, "image": 10 * 1024 * 1024}
DUP_CHECK_DEFAULT, DUP_CHECK_MAX = 1800, 4 * 3600  # enable_duplicate_check [§3.1]

MSGTYPES = frozenset({"text", "markdown", "textcard", "template_card", "file", "image"})
CARD_TYPES = frozenset(
    {"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"}
)
CALLBACK_CARD_TYPES = frozenset({"button_interaction", "vote_interaction", "multiple_interaction"})


class ApiError(Exception):
    """Raised inside a handler to answer ``{"errcode": code, "errmsg": ...}`` with HTTP 200."""

    def __init__(self, errcode: int, hint: str = "", **extra: Any) -> None:
        base = ERRMSG.get(errcode, "invalid parameter" if errcode == ERR_INVALID_PARAM else "error")
        super().__init__(f"{errcode} {hint}")
        self.errcode, self.extra = errcode, extra
        self.errmsg = f"{base}, hint: [emulator] {hint}" if hint else base


@dataclass
class _Fault:
    kind: str  # "errcode" | "http" | "delay"
    value: float


@dataclass
class _ResponseCode:
    task_id: str
    card_type: str
    issued_at: float
    source: str  # "send" | "click"
    userid: str | None = None
    used: bool = False


@dataclass
class _CardState:
    """What one member currently sees for one task_id (changed by update_template_card)."""

    card: dict[str, Any]
    replace_name: str | None = None  # set when the buttons were disabled with this text


@dataclass
class _Call:
    query: dict[str, str]
    body: dict[str, Any] | None = None  # None -> not a JSON object (47001)
    upload: tuple[str | None, bytes, str] | None = None  # (filename, data, Content-Disposition) of "media"


def _nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


def _need(cond: bool, hint: str, errcode: int = ERR_INVALID_PARAM) -> None:
    if not cond:
        raise ApiError(errcode, hint)


def _is_nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


class WeComEmulator:
    """Strict fake of ``https://qyapi.weixin.qq.com`` for one self-built app (corp_id/secret/agent_id).

    Point the client at ``base_url`` (it calls ``{base_url}/cgi-bin/...``). State is public so tests
    can assert on what a member would really see: ``delivered`` vs ``dropped``, ``updates``, ``media``.
    """

    def __init__(
        self,
        corp_id: str,
        secret: str,
        agent_id: int,
        clock: Callable[[], float] = time.time,
        *,
        users: Iterable[str] = (),
        token_ttl: float = 7200,
        same_token_within_ttl: bool = False,
    ) -> None:
        """``same_token_within_ttl`` mimics the older doc text (§3.4): a refetch returns the still
        valid token with ``expires_in`` 7200 again, so a client must not trust expires_in blindly."""
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        self.clock, self.token_ttl, self.same_token_within_ttl = clock, token_ttl, same_token_within_ttl
        self.base_url = ""
        self.gettoken_calls = 0
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.agents: list[tuple[str, str]] = []  # (path, User-Agent): which process called
        self.delivered: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dropped: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.sent: list[dict[str, Any]] = []  # every accepted message/send request (+ msgid etc.)
        self.duplicates: list[dict[str, Any]] = []  # suppressed by enable_duplicate_check
        self.updates: list[dict[str, Any]] = []
        self.clicks: list[dict[str, Any]] = []
        self.media: dict[str, dict[str, Any]] = {}
        self.task_ids: set[str] = set()  # every task_id ever accepted: unique per app forever
        self._users: dict[str, str] = {}  # lower-case -> userid as added (WeCom ids are case-insensitive)
        self._tokens: dict[str, float] = {}  # token -> issued_at
        self._revoked: set[str] = set()
        self._codes: dict[str, _ResponseCode] = {}
        self._cards: dict[tuple[str, str], _CardState] = {}  # (userid, task_id)
        self._pacing: defaultdict[str, deque[float]] = defaultdict(deque)
        self._dup_seen: dict[str, float] = {}
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._routes: dict[tuple[str, str], Callable[[_Call], Awaitable[dict[str, Any]]]] = {
            ("GET", "/cgi-bin/gettoken"): self._gettoken,
            ("POST", "/cgi-bin/message/send"): self._send,
            ("POST", "/cgi-bin/message/update_template_card"): self._update_card,
            ("POST", "/cgi-bin/media/upload"): self._upload,
        }
        for u in users:
            self.add_user(u)

    # ----------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Bind 127.0.0.1 on a random port so parallel tests never collide."""
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)  # let our own 20 MB rule answer
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        self._stopping.set()  # wakes handlers stuck in delay_next
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WeComEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------------------- directory
    def add_user(self, userid: str) -> None:
        self._users[userid.lower()] = userid

    def _canonical(self, userid: str) -> str | None:
        return self._users.get(userid.lower())

    # ----------------------------------------------------------------------------- fault injection
    @staticmethod
    def _norm(path: str) -> str:
        """Accept "message/send", "cgi-bin/message/send" or "/cgi-bin/message/send"."""
        path = path.split("?", 1)[0]
        if path.startswith("/"):
            return path
        return "/" + path if path.startswith("cgi-bin/") else "/cgi-bin/" + path

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        """Next ``times`` calls to ``path`` answer HTTP 200 ``{"errcode": errcode}`` and do nothing."""
        self._faults[self._norm(path)].extend(_Fault("errcode", errcode) for _ in range(times))

    def rate_limit(self, path: str, errcode: int = ERR_API_LIMIT, times: int = 1) -> None:
        """Frequency interception (45009) or concurrency (45033) for the next ``times`` calls."""
        self.fail_next(path, errcode, times)

    def http_error_next(self, path: str, status: int = 502, times: int = 1) -> None:
        self._faults[self._norm(path)].extend(_Fault("http", status) for _ in range(times))

    def delay_next(self, path: str, seconds: float, times: int = 1) -> None:
        """Hold the answer ``seconds`` (real time). The call is still executed afterwards, like a real
        server whose reply arrives after the client gave up: a blind retry may deliver twice."""
        self._faults[self._norm(path)].extend(_Fault("delay", seconds) for _ in range(times))

    def expire_tokens(self) -> None:
        """WeCom may invalidate tokens early (§3.4): every issued token now answers 42001."""
        self._revoked.update(self._tokens)

    # ----------------------------------------------------------------------------- inspection
    def texts_for(self, userid: str) -> list[str]:
        """Content of text/markdown messages the member really received (not dropped ones)."""
        uid = self._canonical(userid) or userid
        return [m["content"] for m in self.delivered.get(uid, []) if m["msgtype"] in ("text", "markdown")]

    def cards_for(self, userid: str) -> list[dict[str, Any]]:
        """template_card dicts as sent (see ``card_state`` for the state after updates)."""
        uid = self._canonical(userid) or userid
        return [m["card"] for m in self.delivered.get(uid, []) if m["msgtype"] == "template_card"]

    def card_state(self, userid: str, task_id: str) -> dict[str, Any] | None:
        """Current view of a card for one member: ``{"card": ..., "replace_name": str | None}``."""
        st = self._cards.get((self._canonical(userid) or userid, task_id))
        return None if st is None else {"card": copy.deepcopy(st.card), "replace_name": st.replace_name}

    # ----------------------------------------------------------------------------- clicks
    def click(self, userid: str, task_id: str, key: str) -> dict[str, Any]:
        """Simulate a member pressing a callback button; return the plaintext event fields (§2.3).

        Refuses (AssertionError) anything a real member could not do, so a test cannot fake a click
        on a card that was never delivered, was dropped, or whose buttons were already disabled."""
        uid = self._canonical(userid)
        if uid is None:
            raise AssertionError(f"click: {userid!r} is not in the emulator's directory")
        st = self._cards.get((uid, task_id))
        if st is None:
            have = sorted(t for (u, t) in self._cards if u == uid)
            raise AssertionError(f"click: no card with task_id {task_id!r} was delivered to {uid!r} "
                                 f"(delivered task_ids: {have}; dropped cards cannot be clicked)")
        if st.replace_name is not None:
            raise AssertionError(f"click: buttons of {task_id!r} for {uid!r} were disabled by an update "
                                 f"({st.replace_name!r})")
        if st.card.get("card_type") != "button_interaction":
            raise AssertionError(f"click: card {task_id!r} is {st.card.get('card_type')!r}, not button_interaction")
        keys = [b.get("key") for b in st.card.get("button_list", []) if b.get("type", 0) != 1]
        if key not in keys:
            raise AssertionError(f"click: card {task_id!r} has no callback button with key {key!r} (keys: {keys})")
        code = self._issue_code(task_id, "button_interaction", "click", uid)
        event = {
            "ToUserName": self.corp_id, "FromUserName": uid, "CreateTime": int(self.clock()),
            "MsgType": "event", "Event": "template_card_event", "EventKey": key, "TaskId": task_id,
            "CardType": "button_interaction", "ResponseCode": code, "AgentID": self.agent_id,
        }
        self.clicks.append(dict(event))
        return event

    def _issue_code(self, task_id: str, card_type: str, source: str, userid: str | None = None) -> str:
        code = "rc_" + secrets.token_urlsafe(24)
        self._codes[code] = _ResponseCode(task_id, card_type, self.clock(), source, userid)
        return code

    # ----------------------------------------------------------------------------- HTTP plumbing
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path, query = request.path, dict(request.query)
        handler = self._routes.get((request.method, path))
        if handler is None:
            self.requests.append((path, query))
            return web.json_response({"errcode": ERR_NOT_IMPLEMENTED,
                                      "errmsg": f"emulator: {request.method} {path} not implemented"},
                                     status=404)
        call = _Call(query)
        if path == "/cgi-bin/media/upload":
            if request.content_type.startswith("multipart/"):
                async for part in await request.multipart():
                    if getattr(part, "name", None) == "media":
                        call.upload = (part.filename, bytes(await part.read(decode=False)),
                                       part.headers.get("Content-Disposition", ""))
            logged: dict[str, Any] = dict(query)
            if call.upload:
                logged.update(filename=call.upload[0], size=len(call.upload[1]))
        elif request.method == "GET":
            logged = query
        else:
            raw = await request.read()
            try:
                parsed = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                parsed = None
            call.body = parsed if isinstance(parsed, dict) else None
            logged = call.body if call.body is not None else {"_raw": raw[:2000].decode("utf-8", "replace")}
        self.requests.append((path, logged))
        self.agents.append((path, request.headers.get("User-Agent", "")))
        if path == "/cgi-bin/gettoken":
            self.gettoken_calls += 1

        queue = self._faults.get(path)
        if queue:
            fault = queue.popleft()
            if fault.kind == "http":
                return web.Response(status=int(fault.value), text=f"emulated HTTP {int(fault.value)}")
            if fault.kind == "errcode":
                code = int(fault.value)
                return web.json_response({"errcode": code, "errmsg": ERRMSG.get(code, "injected error")})
            try:  # "delay": cancellable by stop() so teardown never hangs
                await asyncio.wait_for(self._stopping.wait(), fault.value)
                return web.Response(status=503, text="emulator stopping")
            except asyncio.TimeoutError:
                pass
        try:
            if path != "/cgi-bin/gettoken":
                self._check_token(query.get("access_token"))
            if request.method == "POST" and path != "/cgi-bin/media/upload" and call.body is None:
                raise ApiError(ERR_DATA_FORMAT, "body must be a JSON object")
            return web.json_response(await handler(call))
        except ApiError as e:
            return web.json_response({"errcode": e.errcode, "errmsg": e.errmsg, **e.extra})

    # ----------------------------------------------------------------------------- tokens
    async def _gettoken(self, call: _Call) -> dict[str, Any]:
        corpid, secret = call.query.get("corpid"), call.query.get("corpsecret")
        _need(bool(corpid), "corpid missing", ERR_MISSING_CORPID)
        _need(corpid == self.corp_id, f"invalid corpid {corpid!r}", ERR_INVALID_CORPID)
        _need(bool(secret), "corpsecret missing", ERR_MISSING_SECRET)
        _need(secret == self.secret, "invalid corpsecret", ERR_INVALID_SECRET)
        token = None
        if self.same_token_within_ttl:
            valid = [t for t in self._tokens if self._token_state(t) == 0]
            token = max(valid, key=self._tokens.__getitem__) if valid else None
        if token is None:
            # Older tokens stay valid until their own expiry (§3.4: a refetch did not revoke them).
            token = secrets.token_urlsafe(96)
            self._tokens[token] = self.clock()
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": int(self.token_ttl)}

    def _token_state(self, token: str) -> int:
        if token not in self._tokens:
            return ERR_INVALID_TOKEN
        if token in self._revoked or self.clock() >= self._tokens[token] + self.token_ttl:
            return ERR_TOKEN_EXPIRED
        return 0

    def _check_token(self, token: str | None) -> None:
        _need(bool(token), "access_token missing", ERR_MISSING_TOKEN)
        state = self._token_state(token or "")
        _need(state == 0, "", state)

    def _check_agentid(self, agentid: Any) -> None:
        # WeCom documents agentid as an integer; a digit string is tolerated (unverified either way).
        ok = (isinstance(agentid, int) and not isinstance(agentid, bool) and agentid == self.agent_id) or (
            isinstance(agentid, str) and agentid.isdigit() and int(agentid) == self.agent_id)
        _need(ok, f"agentid {agentid!r} is not {self.agent_id}", ERR_INVALID_AGENTID)

    # ----------------------------------------------------------------------------- validation
    def _check_content(self, msgtype: str, c: dict[str, Any]) -> None:
        if msgtype in ("text", "markdown"):
            _need(_is_nonempty_str(c.get("content")), f"{msgtype}.content must be a non-empty string")
            # Real WeCom truncates over-long text; the emulator rejects so tests notice lost content.
            _need(_nbytes(c["content"]) <= CONTENT_MAX_BYTES,
                  f"{msgtype}.content is {_nbytes(c['content'])} bytes > {CONTENT_MAX_BYTES}")
        elif msgtype == "textcard":
            for k, limit in (("title", TEXTCARD_TITLE_MAX), ("description", TEXTCARD_DESC_MAX)):
                _need(_is_nonempty_str(c.get(k)), f"textcard.{k} required")
                _need(_nbytes(c[k]) <= limit, f"textcard.{k} > {limit} bytes")
            _need(_is_nonempty_str(c.get("url")), "textcard.url required")
            if "btntxt" in c:
                _need(isinstance(c["btntxt"], str) and len(c["btntxt"]) <= TEXTCARD_BTNTXT_MAX,
                      f"textcard.btntxt > {TEXTCARD_BTNTXT_MAX} chars")
        elif msgtype in ("file", "image"):
            _need(c.get("media_id") in self.media, f"unknown media_id {c.get('media_id')!r}",
                  ERR_INVALID_MEDIA_ID)
        else:
            self._check_card(c)

    def _check_card(self, card: dict[str, Any]) -> None:
        """Structure checks shared by send and update (uniqueness of task_id is send-only)."""
        ctype = card.get("card_type")
        _need(ctype in CARD_TYPES, f"template_card.card_type {ctype!r} not one of {sorted(CARD_TYPES)}")
        if "task_id" in card or ctype in CALLBACK_CARD_TYPES or "action_menu" in card:
            tid = card.get("task_id")
            _need(isinstance(tid, str) and TASK_ID_RE.fullmatch(tid) is not None,
                  f"task_id {tid!r} must match {TASK_ID_RE.pattern}", ERR_TASK_ID)
        title = card.get("main_title")
        if title is not None or ctype == "button_interaction":
            _need(isinstance(title, dict) and _is_nonempty_str(title.get("title")), "main_title.title required")
        for name, limit in (("horizontal_content_list", MAX_HORIZONTAL), ("jump_list", MAX_JUMP),
                            ("vertical_content_list", MAX_VERTICAL)):
            if name in card:
                lst = card[name]
                _need(isinstance(lst, list) and len(lst) <= limit and all(isinstance(i, dict) for i in lst),
                      f"{name} must be a list of at most {limit} objects")
        for item in card.get("horizontal_content_list", []):
            _need(_is_nonempty_str(item.get("keyname")), "horizontal_content_list[].keyname required")
        if "action_menu" in card:
            acts = card["action_menu"].get("action_list") if isinstance(card["action_menu"], dict) else None
            _need(isinstance(acts, list) and 1 <= len(acts) <= 3, "action_menu.action_list needs 1..3 items")
        if "button_selection" in card:
            sel = card["button_selection"]
            opts = sel.get("option_list") if isinstance(sel, dict) else None
            _need(isinstance(opts, list) and 1 <= len(opts) <= MAX_OPTIONS,
                  f"button_selection.option_list needs 1..{MAX_OPTIONS} items")
        if ctype == "button_interaction":
            buttons = card.get("button_list")
            _need(isinstance(buttons, list) and 1 <= len(buttons) <= MAX_BUTTONS,
                  f"button_list needs 1..{MAX_BUTTONS} buttons, got "
                  f"{len(buttons) if isinstance(buttons, list) else buttons!r}")
            keys: set[str] = set()
            for i, b in enumerate(buttons):
                _need(isinstance(b, dict) and _is_nonempty_str(b.get("text")), f"button_list[{i}].text required")
                btype = b.get("type", 0)
                _need(btype in (0, 1), f"button_list[{i}].type must be 0 or 1")
                if "style" in b:
                    _need(b["style"] in (1, 2, 3, 4), f"button_list[{i}].style must be 1..4")
                if btype == 1:
                    _need(_is_nonempty_str(b.get("url")), f"button_list[{i}] type 1 needs url")
                    continue
                key = b.get("key")
                _need(_is_nonempty_str(key), f"button_list[{i}].key required")
                _need(_nbytes(key) <= BUTTON_KEY_MAX_BYTES, f"button_list[{i}].key > {BUTTON_KEY_MAX_BYTES} bytes")
                _need(key not in keys, f"button_list key {key!r} is not unique")
                keys.add(key)

    @staticmethod
    def _ids(value: Any, name: str, limit: int) -> list[str]:
        """Split a WeCom "a|b|c" recipient string (must be a string, as the API expects)."""
        if value is None or value == "":
            return []
        _need(isinstance(value, (str, int)) and not isinstance(value, bool), f"{name} must be a '|'-joined string")
        ids = [x for x in str(value).split("|") if x]
        _need(len(ids) <= limit, f"{name} has {len(ids)} entries > {limit}")
        return ids

    def _pace_ok(self, uid: str, now: float) -> bool:
        """Per app -> member: 30 per sliding minute, 1000 per sliding hour; excess dropped (§3.2).
        Only delivered messages count (dropped ones were never sent)."""
        q = self._pacing[uid]
        while q and now - q[0] >= 3600:
            q.popleft()
        if len(q) >= MEMBER_PER_HOUR or sum(1 for t in q if now - t < 60) >= MEMBER_PER_MINUTE:
            return False
        q.append(now)
        return True

    # ----------------------------------------------------------------------------- message/send
    async def _send(self, call: _Call) -> dict[str, Any]:
        body = call.body or {}
        self._check_agentid(body.get("agentid"))
        msgtype = body.get("msgtype")
        _need(msgtype in MSGTYPES, f"msgtype {msgtype!r} not supported", ERR_INVALID_MSGTYPE)
        content = body.get(msgtype)
        _need(isinstance(content, dict), f"{msgtype} object missing")
        self._check_content(msgtype, content)

        touser = body.get("touser")
        users = self._ids(touser, "touser", MAX_TOUSER)
        parties = self._ids(body.get("toparty"), "toparty", MAX_TOPARTY)
        tags = self._ids(body.get("totag"), "totag", MAX_TOTAG)
        valid: list[str] = []
        invalid: list[str] = []
        for u in (list(self._users.values()) if touser == "@all" else users):
            uid = self._canonical(u)
            if uid is None:
                invalid.append(u.lower())
            elif uid not in valid:
                valid.append(uid)
        # The emulator has no departments or tags: every party/tag id is reported invalid.
        lists = {"invaliduser": "|".join(invalid), "invalidparty": "|".join(parties),
                 "invalidtag": "|".join(tags), "unlicenseduser": ""}
        if not valid:  # 81013 [§3.1]
            raise ApiError(ERR_ALL_INVALID, "no valid recipient", **lists)

        now = self.clock()
        if body.get("enable_duplicate_check") in (1, "1", True):
            interval = body.get("duplicate_check_interval", DUP_CHECK_DEFAULT)
            _need(isinstance(interval, int) and 0 < interval <= DUP_CHECK_MAX,
                  f"duplicate_check_interval must be 1..{DUP_CHECK_MAX}")
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            if now - self._dup_seen.get(digest, float("-inf")) < interval:
                self.duplicates.append(body)
                return {"errcode": 0, "errmsg": "ok", **lists, "msgid": "dup_" + secrets.token_hex(8)}
            self._dup_seen[digest] = now

        task_id = content.get("task_id") if msgtype == "template_card" else None
        if task_id is not None:
            _need(task_id not in self.task_ids, f"task_id {task_id!r} was already used", ERR_TASK_ID)
            self.task_ids.add(task_id)
        msgid = "msg_" + secrets.token_urlsafe(24)
        result: dict[str, Any] = {"errcode": 0, "errmsg": "ok", **lists, "msgid": msgid}
        if msgtype == "template_card" and content["card_type"] in CALLBACK_CARD_TYPES:
            result["response_code"] = self._issue_code(task_id, content["card_type"], "send")

        for uid in valid:
            record = {"msgtype": msgtype, "msgid": msgid, "time": now, "payload": copy.deepcopy(content),
                      "content": content.get("content") if msgtype in ("text", "markdown") else None,
                      "card": copy.deepcopy(content) if msgtype == "template_card" else None}
            if self._pace_ok(uid, now):
                self.delivered[uid].append(record)
                if task_id is not None:
                    self._cards[(uid, task_id)] = _CardState(copy.deepcopy(content))
            else:
                self.dropped[uid].append(record)
        self.sent.append({"body": body, "msgid": msgid, "response_code": result.get("response_code"),
                          "recipients": valid, "time": now})
        return result

    # ----------------------------------------------------------------------------- update card
    async def _update_card(self, call: _Call) -> dict[str, Any]:
        body = call.body or {}
        self._check_agentid(body.get("agentid"))
        code = body.get("response_code")
        rc = self._codes.get(code) if isinstance(code, str) else None
        _need(rc is not None, f"response_code {code!r} was never issued", ERR_RESPONSE_CODE_UNKNOWN)
        assert rc is not None
        _need(not rc.used, "response_code already used (single use, §2.4)", ERR_RESPONSE_CODE_USED)
        _need(self.clock() - rc.issued_at < RESPONSE_CODE_TTL, "response_code older than 72 h",
              ERR_RESPONSE_CODE_EXPIRED)
        userids = body.get("userids", [])
        _need(isinstance(userids, list) and all(isinstance(u, str) for u in userids)
              and len(userids) <= MAX_TOUSER, f"userids must be a list of at most {MAX_TOUSER} strings")
        for name, limit in (("partyids", MAX_TOPARTY), ("tagids", MAX_TOTAG)):
            v = body.get(name, [])
            _need(isinstance(v, list) and len(v) <= limit, f"{name} must be a list of at most {limit}")
        atall = body.get("atall", 0)
        _need(atall in (0, 1), "atall must be 0 or 1")
        _need(bool(userids or body.get("partyids") or body.get("tagids") or atall),
              "no target: give userids/partyids/tagids or atall")
        _need(("button" in body) != ("template_card" in body), "give exactly one of button / template_card")
        replace_name, new_card = None, None
        if "button" in body:
            btn = body["button"]
            _need(isinstance(btn, dict) and _is_nonempty_str(btn.get("replace_name")), "button.replace_name required")
            _need(rc.card_type in CALLBACK_CARD_TYPES, f"button update not allowed for {rc.card_type}")
            replace_name = btn["replace_name"]
        else:
            new_card = body["template_card"]
            _need(isinstance(new_card, dict), "template_card must be an object")
            self._check_card(new_card)

        holders = [u for (u, t) in self._cards if t == rc.task_id]
        targets, invalid = (list(holders), []) if atall else ([], [])
        if not atall:
            for u in userids:
                uid = self._canonical(u)
                if uid in holders and uid not in targets:
                    targets.append(uid)
                elif uid not in holders:
                    invalid.append(u.lower())
        rc.used = True
        for uid in targets:
            st = self._cards[(uid, rc.task_id)]
            if new_card is not None:
                st.card, st.replace_name = copy.deepcopy(new_card), None
            else:
                st.replace_name = replace_name
        self.updates.append({"response_code": code, "task_id": rc.task_id, "source": rc.source,
                             "replace_name": replace_name, "template_card": new_card, "userids": targets,
                             "requested_userids": userids, "atall": atall, "time": self.clock()})
        return {"errcode": 0, "errmsg": "ok", "invaliduser": invalid}

    # ----------------------------------------------------------------------------- media
    async def _upload(self, call: _Call) -> dict[str, Any]:
        mtype = call.query.get("type")
        _need(mtype in MEDIA_MAX, f"type {mtype!r} not emulated (file|image)", ERR_INVALID_MEDIA_TYPE)
        _need(call.upload is not None, "multipart field 'media' missing", ERR_MISSING_MEDIA)
        assert call.upload is not None and mtype is not None
        filename, data, disposition = call.upload
        _need(MEDIA_MIN <= len(data) <= MEDIA_MAX[mtype],
              f"{mtype} size {len(data)} not in {MEDIA_MIN}..{MEDIA_MAX[mtype]} bytes", ERR_INVALID_FILE_SIZE)
        media_id = "media_" + secrets.token_urlsafe(24)
        created_at = str(int(self.clock()))
        # filename is kept exactly as sent (aiohttp percent-encodes non-ASCII names; whether WeCom
        # decodes them is unverified), with the raw header so tests can check what went on the wire.
        self.media[media_id] = {"type": mtype, "filename": filename, "data": data, "created_at": created_at,
                                "content_disposition": disposition}
        return {"errcode": 0, "errmsg": "ok", "type": mtype, "media_id": media_id, "created_at": created_at}


# ===================================================================================================
# WeCom side of callbacks (§1): what WeCom POSTs to our /callback/wecom and how it reads our replies.


class CallbackVerificationError(AssertionError):
    """Our server's reply would be rejected by WeCom (bad envelope, signature, padding or receiveid)."""


def _cdata(s: str) -> str:
    return "<![CDATA[" + s.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml_node(tag: str, value: Any) -> str:
    """Numbers bare, strings in CDATA (as WeCom does), dicts nested, lists as repeated tags."""
    if isinstance(value, dict):
        return f"<{tag}>" + "".join(_xml_node(k, v) for k, v in value.items()) + f"</{tag}>"
    if isinstance(value, (list, tuple)):
        return "".join(_xml_node(tag, v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"<{tag}>{value}</{tag}>"
    return f"<{tag}>{_cdata(str(value))}</{tag}>"


def xml_fields(xml: str) -> dict[str, str]:
    """Top-level text fields of a plaintext WeCom XML (handy to assert on a decrypted passive reply)."""
    return {child.tag: (child.text or "") for child in ET.fromstring(xml)}


class WeComCallbackClient:
    """Encrypts/signs callbacks exactly per wecom.md §1.3 and checks passive replies (§1.5).

    Written directly on ``cryptography`` so it independently checks the project's wechatpy code."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str, agent_id: int) -> None:
        assert len(encoding_aes_key) == 43, "EncodingAESKey must be 43 characters"
        self.key = base64.b64decode(encoding_aes_key + "=")
        assert len(self.key) == 32
        self.token, self.corp_id, self.agent_id = token, corp_id, agent_id

    # ---- primitives
    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, encrypt])).encode()).hexdigest()

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, msg: str, receive_id: str | None = None) -> str:
        body = msg.encode("utf-8")
        raw = os.urandom(16) + struct.pack(">I", len(body)) + body + (receive_id or self.corp_id).encode()
        pad = 32 - len(raw) % 32  # PKCS#7 to a multiple of 32 (not 16) [§1.3]
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(raw + bytes([pad]) * pad) + enc.finalize()).decode()

    def decrypt(self, encrypt: str) -> tuple[str, str]:
        """Return (msg, receiveid); strict on padding so sloppy encoders are caught."""
        try:
            ct = base64.b64decode(encrypt, validate=True)
        except ValueError as e:
            raise CallbackVerificationError(f"Encrypt is not base64: {e}") from e
        if not ct or len(ct) % 32:
            raise CallbackVerificationError(f"ciphertext length {len(ct)} is not a multiple of 32")
        dec = self._cipher().decryptor()
        pt = dec.update(ct) + dec.finalize()
        pad = pt[-1]
        if not 1 <= pad <= 32 or pt[-pad:] != bytes([pad]) * pad:
            raise CallbackVerificationError(f"bad PKCS#7 padding (last byte {pad})")
        pt = pt[:-pad]
        (length,) = struct.unpack(">I", pt[16:20])
        if 20 + length > len(pt):
            raise CallbackVerificationError("msg_len points past the plaintext")
        return pt[20:20 + length].decode("utf-8"), pt[20 + length:].decode("utf-8")

    def _sign(self, encrypt: str, timestamp: Any, nonce: str | None, forge: bool) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce if nonce is not None else str(secrets.randbelow(10**10))
        sig = self.signature(ts, nonce, encrypt)
        if forge:
            sig = hashlib.sha1(b"forged" + sig.encode()).hexdigest()
        return {"msg_signature": sig, "timestamp": ts, "nonce": nonce}

    # ---- plaintext builders
    def text_xml(self, from_user: str, content: str, msg_id: int | str, create_time: int | None = None) -> str:
        ct = int(time.time()) if create_time is None else create_time
        return ("<xml>" + _xml_node("ToUserName", self.corp_id) + _xml_node("FromUserName", from_user)
                + f"<CreateTime>{ct}</CreateTime>" + _xml_node("MsgType", "text") + _xml_node("Content", content)
                + f"<MsgId>{escape(str(msg_id))}</MsgId><AgentID>{self.agent_id}</AgentID></xml>")

    def event_xml(self, fields: dict[str, Any]) -> str:
        """E.g. ``event_xml(emulator.click(...))``; nested dicts/lists allowed (SelectedItems)."""
        return "<xml>" + "".join(_xml_node(k, v) for k, v in fields.items()) + "</xml>"

    # ---- what WeCom sends
    def encrypt_post(self, plain_xml: str, timestamp: int | str | None = None, nonce: str | None = None, *,
                     forge_signature: bool = False, receive_id: str | None = None) -> tuple[dict[str, str], bytes]:
        """Query params and body of a callback POST (§1.2). ``receive_id`` forges a wrong corp id."""
        enc = self.encrypt(plain_xml, receive_id)
        params = self._sign(enc, timestamp, nonce, forge_signature)
        body = ("<xml>" + _xml_node("ToUserName", self.corp_id) + _xml_node("AgentID", str(self.agent_id))
                + _xml_node("Encrypt", enc) + "</xml>")
        return params, body.encode("utf-8")

    def verify_url_params(self, echo_plain: str, timestamp: int | str | None = None, nonce: str | None = None, *,
                          forge_signature: bool = False, receive_id: str | None = None) -> dict[str, str]:
        """Query of the GET URL verification (§1.1); the server must answer exactly ``echo_plain``."""
        enc = self.encrypt(echo_plain, receive_id)
        return {**self._sign(enc, timestamp, nonce, forge_signature), "echostr": enc}

    # ---- what WeCom reads back
    def decrypt_reply(self, body: bytes | str) -> str | None:
        """Plaintext XML of a passive reply, or None for the empty "no reply" body (§1.4, §1.5)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body == b"":
            return None
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            raise CallbackVerificationError(f"reply is not XML: {body[:200]!r}") from e
        fields = {child.tag: (child.text or "") for child in root}
        missing = [k for k in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce") if k not in fields]
        if root.tag != "xml" or missing:
            raise CallbackVerificationError(f"reply envelope lacks {missing} (root <{root.tag}>)")
        expected = self.signature(fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
        if not hmac.compare_digest(expected, fields["MsgSignature"]):
            raise CallbackVerificationError("reply MsgSignature does not verify")
        msg, receive_id = self.decrypt(fields["Encrypt"])
        if receive_id != self.corp_id:
            raise CallbackVerificationError(f"reply receiveid {receive_id!r} != corp id {self.corp_id!r}")
        return msg
