"""Stream mode (dingtalk.md §1): our own small client on aiohttp's websocket, inside our loop.

The official SDK blocks the loop with synchronous HTTP, swallows cancellation and ACKs only after the
handler returns (§0, §1.2), so we do it ourselves: a fresh single-use ticket for every connection, an
immediate ACK echoing the messageId, dedupe of redelivered messageIds, reconnection with backoff and
jitter, a watchdog that reconnects after a silence (silent dead sockets are the commonest complaint,
§6.1), and a shutdown that closes the socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus

import aiohttp

from bot.adapters.dingtalk.client import DingTalkClient, DingTalkError
from bot.adapters.dingtalk.parse import TOPIC_CARD, TOPIC_ROBOT

log = logging.getLogger("duban.dingtalk.stream")

SUBSCRIPTIONS = [
    {"type": "CALLBACK", "topic": TOPIC_ROBOT},
    {"type": "CALLBACK", "topic": TOPIC_CARD},
]

OnFrame = Callable[[str, str, dict[str, Any]], Awaitable[None]]  # (topic, messageId, frame)


class StreamClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        client: DingTalkClient,
        on_frame: OnFrame,
        *,
        watchdog: float = 120.0,
        max_backoff: float = 60.0,
        seen_limit: int = 10_000,
    ) -> None:
        self.session = session
        self.client = client
        self.on_frame = on_frame
        self.watchdog = watchdog
        self.max_backoff = max_backoff
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_limit = seen_limit
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.connections = 0

    async def run(self, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                endpoint, ticket = await self.client.open_connection(SUBSCRIPTIONS)
                async with self.session.ws_connect(f"{endpoint}?ticket={quote_plus(ticket)}", heartbeat=30) as ws:
                    self._ws = ws
                    self.connections += 1
                    log.info("stream connected", extra={"connections": self.connections})
                    delay = 1.0
                    again_now = await self._pump(ws, stop)
                    if again_now:
                        continue  # the server asked us to move: reconnect at once with a new ticket
            except (aiohttp.ClientError, asyncio.TimeoutError, DingTalkError, ValueError) as exc:
                log.warning("stream connection failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            finally:
                self._ws = None
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay * (0.5 + random.random()))
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, self.max_backoff)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> bool:
        """Read frames until the socket ends. True means: reconnect immediately."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                receive = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({receive, stopping}, timeout=self.watchdog, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    receive.cancel()
                    await ws.close()
                    return False
                if not done:
                    receive.cancel()
                    log.warning("stream silent; reconnecting", extra={"seconds": self.watchdog})
                    await ws.close()
                    return True
                msg = receive.result()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return False
                try:
                    frame = json.loads(msg.data)
                    headers = frame.get("headers") or {}
                    kind, topic, mid = frame.get("type"), headers.get("topic", ""), headers.get("messageId", "")
                except (json.JSONDecodeError, AttributeError):
                    log.warning("stream frame is not JSON; ignored")
                    continue
                if kind == "SYSTEM":
                    if topic == "disconnect":
                        log.info("stream asked to reconnect")
                        await ws.close()
                        return True
                    await self._ack(ws, mid, frame.get("data") or "{}")  # ping: echo its data
                    continue
                ack = {"status": "SUCCESS", "message": "ok"} if kind == "EVENT" else {"response": None}
                await self._ack(ws, mid, json.dumps(ack))
                if mid in self._seen:
                    log.info("stream redelivery ignored", extra={"message_id": mid})
                    continue
                self._remember(mid)
                task = asyncio.create_task(self._handle(topic, mid, frame))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            stopping.cancel()

    async def _ack(self, ws: aiohttp.ClientWebSocketResponse, mid: str, data: str) -> None:
        await ws.send_str(json.dumps({"code": 200, "headers": {"messageId": mid, "contentType": "application/json"},
                                      "message": "OK", "data": data}))

    async def _handle(self, topic: str, mid: str, frame: dict[str, Any]) -> None:
        try:
            await self.on_frame(topic, mid, frame)
        except Exception:
            log.exception("stream frame handling failed", extra={"topic": topic, "message_id": mid})

    def _remember(self, mid: str) -> None:
        self._seen[mid] = None
        while len(self._seen) > self._seen_limit:
            self._seen.popitem(last=False)
