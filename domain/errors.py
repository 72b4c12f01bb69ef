"""Refusals carry a stable machine code (for the API and logs) and a short Chinese reason (for people)."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every refusal: the change did not happen, and `message` tells the person why."""

    code = "invalid"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ValidationError(DomainError):
    code = "invalid"
    http_status = 400


class PermissionDenied(DomainError):
    code = "forbidden"
    http_status = 403


class InvalidTransition(DomainError):
    """The item is not in a state where this action makes sense (a stale card, a repeated click)."""

    code = "conflict"
    http_status = 409


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class ConcurrentUpdate(DomainError):
    """Someone else changed the item between our read and our write; optimistic locking refused ours."""

    code = "concurrent_update"
    http_status = 409

    def __init__(self, message: str = "该事项刚被他人处理，请刷新后再试。") -> None:
        super().__init__(message)


CONFIDENTIAL_MESSAGE = "涉密事项不得录入本系统，请按保密管理规定纳入学校线下督办管理台账办理。"


class ConfidentialRefused(DomainError):
    """第六条 1 and 第十三条: confidential items stay in the offline ledger; nothing of them is stored or sent."""

    code = "confidential"
    http_status = 422

    def __init__(self) -> None:
        super().__init__(CONFIDENTIAL_MESSAGE)
