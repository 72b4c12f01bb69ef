"""Callback verification and decryption through wechatpy's WeChatCrypto (wecom.md §1.3, §5.2).

We parse the XML envelope ourselves (wechatpy would hand it to xmltodict, which expands entities) and
give WeChatCrypto a dict. Its signature compare is not constant-time, so we compare first ourselves.
Both InvalidSignatureException and InvalidCorpIdException are caught: they do not share a base class.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException


class CallbackRejected(Exception):
    """The request did not come from WeCom as configured; answer 4xx and record nothing."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _guarded(decrypt: Callable[[], object], what: str) -> str:
    """wechatpy's two refusals share no base class, and bad base64 or padding raise plain errors."""
    try:
        return str(decrypt())
    except InvalidSignatureException:
        raise CallbackRejected("bad signature") from None
    except InvalidCorpIdException:
        raise CallbackRejected("wrong corp id") from None
    except Exception:
        raise CallbackRejected(what, 400) from None


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


class CallbackCrypto:
    def __init__(self, token: str, encoding_aes_key: str, corp_id: str) -> None:
        self.token = token
        self.corp_id = corp_id
        self._crypto = WeChatCrypto(token, encoding_aes_key, corp_id)

    def _check(self, sig: str, timestamp: str, nonce: str, encrypt: str) -> None:
        if not (sig and timestamp and nonce and encrypt):
            raise CallbackRejected("missing signature parameters", 400)
        if not hmac.compare_digest(signature(self.token, timestamp, nonce, encrypt), sig):
            raise CallbackRejected("bad signature")

    def verify_url(self, sig: str, timestamp: str, nonce: str, echostr: str) -> str:
        self._check(sig, timestamp, nonce, echostr)
        return _guarded(lambda: self._crypto.check_signature(sig, timestamp, nonce, echostr), "undecryptable echostr")

    def decrypt(self, sig: str, timestamp: str, nonce: str, encrypt: str) -> str:
        self._check(sig, timestamp, nonce, encrypt)
        return _guarded(lambda: self._crypto.decrypt_message({"Encrypt": encrypt}, sig, timestamp, nonce), "undecryptable message")

    def encrypt_reply(self, xml: str, nonce: str, timestamp: str) -> str:
        return str(self._crypto.encrypt_message(xml, nonce, timestamp))
