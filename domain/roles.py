"""Who is who: units, people and the four roles of DESIGN §1."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from domain.errors import ValidationError


class Role(str, enum.Enum):
    OFFICE = "office"  # 学校办公室督办人员
    LEADER = "leader"  # 校领导 / 分管校领导
    PRINCIPAL = "principal"  # 承办单位主要负责人
    HANDLER = "handler"  # 办理人（专人）

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.OFFICE: "学校办公室",
    Role.LEADER: "校领导",
    Role.PRINCIPAL: "主要负责人",
    Role.HANDLER: "办理人",
}

_ROLE_WORDS = {
    "学校办公室": Role.OFFICE,
    "办公室": Role.OFFICE,
    "督办人员": Role.OFFICE,
    "office": Role.OFFICE,
    "校领导": Role.LEADER,
    "分管校领导": Role.LEADER,
    "leader": Role.LEADER,
    "主要负责人": Role.PRINCIPAL,
    "单位主要负责人": Role.PRINCIPAL,
    "principal": Role.PRINCIPAL,
    "办理人": Role.HANDLER,
    "专人": Role.HANDLER,
    "handler": Role.HANDLER,
}


def parse_roles(text: str) -> frozenset[Role]:
    """Role words as the office writes them in the org sheet: several separated by `、` or `,`."""
    words = [w.strip() for w in text.replace("，", ",").replace("、", ",").split(",")]
    words = [w for w in words if w]
    if not words:
        raise ValidationError("角色不能为空。")
    roles = set()
    for w in words:
        role = _ROLE_WORDS.get(w.lower())
        if role is None:
            raise ValidationError(f"无法识别的角色“{w}”，应为 学校办公室/校领导/主要负责人/办理人。")
        roles.add(role)
    return frozenset(roles)


class Channel(str, enum.Enum):
    WECOM = "wecom"
    DINGTALK = "dingtalk"


@dataclass(frozen=True)
class Unit:
    id: int
    name: str


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    unit_id: int
    roles: frozenset[Role]
    wecom_id: str | None = None
    dingtalk_id: str | None = None
    units_in_charge: frozenset[int] = field(default_factory=frozenset)
    preferred_channel: Channel = Channel.WECOM

    def has(self, role: Role) -> bool:
        return role in self.roles

    @property
    def is_office(self) -> bool:
        return Role.OFFICE in self.roles

    def channel(self) -> Channel | None:
        """Where to reach this person: once, on the preferred channel if they are bound there."""
        bound = {Channel.WECOM: self.wecom_id, Channel.DINGTALK: self.dingtalk_id}
        if bound[self.preferred_channel]:
            return self.preferred_channel
        for ch, uid in bound.items():
            if uid:
                return ch
        return None


SYSTEM_ID = 0

SYSTEM_OFFICE = Person(id=SYSTEM_ID, name="督办系统", unit_id=0, roles=frozenset({Role.OFFICE}))
"""The actor behind the API token and the scheduler: acts with the office's rights, recorded as no person."""
