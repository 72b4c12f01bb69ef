"""WeCom XML → neutral events. defusedxml refuses DTDs and entities, so an expansion bomb costs nothing."""

from __future__ import annotations

import hashlib
import time
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from bot.adapters.wecom.crypto import CallbackRejected
from bot.messages import CardPress, Incoming


def _parse(xml: str | bytes) -> Element:
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise CallbackRejected("xml with dtd or entities refused", 400) from None
    except SafeET.ParseError:
        raise CallbackRejected("malformed xml", 400) from None
    if root.tag != "xml":
        raise CallbackRejected("unexpected xml root", 400)
    return root


def fields(xml: str | bytes) -> dict[str, str]:
    """Top-level `<Name>text</Name>` pairs; nested elements are not needed by us."""
    return {child.tag: (child.text or "").strip() for child in _parse(xml)}


def envelope(body: bytes) -> str:
    """The `Encrypt` field of a POSTed callback."""
    enc = fields(body).get("Encrypt", "")
    if not enc:
        raise CallbackRejected("no Encrypt element", 400)
    return enc


def to_incoming(plain_xml: str) -> Incoming | None:
    """A text message or a template-card click; other events (enter_agent, subscribe…) are ignored."""
    f = fields(plain_xml)
    user = f.get("FromUserName", "")
    if not user:
        raise CallbackRejected("no FromUserName", 400)
    msg_type = f.get("MsgType", "")
    if msg_type == "text":
        digest = hashlib.sha1(f.get("Content", "").encode()).hexdigest()[:16]
        msg_id = f.get("MsgId") or f"{user}:{f.get('CreateTime', '')}:{digest}"
        return Incoming("wecom", user, f"msg:{msg_id}", text=f.get("Content", ""))
    if msg_type == "event" and f.get("Event") == "template_card_event":
        # CreateTime has one-second resolution, so the key also carries what was pressed (wecom.md §1.4)
        key = ":".join(("evt", user, f.get("CreateTime", ""), f.get("Event", ""), f.get("EventKey", ""), f.get("TaskId", "")))
        try:
            press = CardPress.unpack(f.get("EventKey", ""), f.get("TaskId", ""))
        except ValueError:
            return None
        return Incoming("wecom", user, key, press=press, response_code=f.get("ResponseCode") or None,
                        extra={"create_time": f.get("CreateTime", "")})
    return None


def reply_xml(to_user: str, corp_id: str, text: str, now: float | None = None) -> str:
    """Passive text reply; WeCom truncates over 2048 bytes, so we cut at a character boundary first."""
    data = text.encode("utf-8")[:2048].decode("utf-8", "ignore")
    safe = data.replace("]]>", "]]]]><![CDATA[>")
    return (
        f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><FromUserName><![CDATA[{corp_id}]]></FromUserName>"
        f"<CreateTime>{int(now or time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{safe}]]></Content></xml>"
    )
