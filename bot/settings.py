"""Settings come from the environment or `.env`; `.env.example` documents each one."""

from __future__ import annotations

import datetime as dt
import logging
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.reminders import Ladder

log = logging.getLogger("duban.settings")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite+aiosqlite:///./duban.db", validation_alias="DUBAN_DATABASE_URL")
    api_token: str = Field("", validation_alias="DUBAN_API_TOKEN")
    timezone: str = Field("Asia/Shanghai", validation_alias="DUBAN_TIMEZONE")
    log_level: str = Field("INFO", validation_alias="DUBAN_LOG_LEVEL")
    max_body_bytes: int = Field(1024 * 1024, validation_alias="DUBAN_MAX_BODY_BYTES")
    scheduler: bool = Field(True, validation_alias="DUBAN_SCHEDULER")
    quiet_hours: str = Field("22:00-08:00", validation_alias="DUBAN_QUIET_HOURS")
    sweep_seconds: int = Field(600, validation_alias="DUBAN_SWEEP_SECONDS", ge=1)
    outbox_lease_seconds: int = Field(60, validation_alias="DUBAN_OUTBOX_LEASE_SECONDS", ge=1)
    report_time: str = Field("09:00", validation_alias="DUBAN_REPORT_TIME")
    spot_check_units: int = Field(3, validation_alias="DUBAN_SPOTCHECK_UNITS")
    due_soon_days: int = Field(3, validation_alias="DUBAN_DUE_SOON_DAYS")
    escalate_days: int = Field(3, validation_alias="DUBAN_ESCALATE_DAYS")
    slow_days: int = Field(10, validation_alias="DUBAN_SLOW_DAYS")
    periodic_report_day: int = Field(25, validation_alias="DUBAN_PERIODIC_REPORT_DAY")

    wecom_corp_id: str = Field("", validation_alias="WECOM_CORP_ID")
    wecom_agent_id: int = Field(0, validation_alias="WECOM_AGENT_ID")
    wecom_secret: str = Field("", validation_alias="WECOM_SECRET")
    wecom_token: str = Field("", validation_alias="WECOM_TOKEN")
    wecom_encoding_aes_key: str = Field("", validation_alias="WECOM_ENCODING_AES_KEY")
    wecom_api_base: str = Field("https://qyapi.weixin.qq.com", validation_alias="WECOM_API_BASE")

    dingtalk_client_id: str = Field("", validation_alias="DINGTALK_CLIENT_ID")
    dingtalk_client_secret: str = Field("", validation_alias="DINGTALK_CLIENT_SECRET")
    dingtalk_robot_code: str = Field("", validation_alias="DINGTALK_ROBOT_CODE")
    dingtalk_agent_id: int = Field(0, validation_alias="DINGTALK_AGENT_ID")
    dingtalk_card_template_id: str = Field("", validation_alias="DINGTALK_CARD_TEMPLATE_ID")
    dingtalk_mode: Literal["stream", "http"] = Field("stream", validation_alias="DINGTALK_MODE")
    dingtalk_api_base: str = Field("https://api.dingtalk.com", validation_alias="DINGTALK_API_BASE")
    dingtalk_oapi_base: str = Field("https://oapi.dingtalk.com", validation_alias="DINGTALK_OAPI_BASE")

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str) -> str:
        start, sep, end = v.partition("-")
        try:
            dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError("DUBAN_QUIET_HOURS must look like 22:00-08:00")
        return v

    @field_validator("report_time")
    @classmethod
    def _report(cls, v: str) -> str:
        try:
            dt.time.fromisoformat(v)
        except ValueError:
            raise ValueError("DUBAN_REPORT_TIME must look like 09:00") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except Exception:
            raise ValueError("DUBAN_TIMEZONE must be an IANA zone such as Asia/Shanghai") from None
        return v

    @cached_property
    def ladder(self) -> Ladder:
        start, _, end = self.quiet_hours.partition("-")
        return Ladder(
            due_soon_days=self.due_soon_days,
            escalate_days=self.escalate_days,
            slow_days=self.slow_days,
            periodic_day=self.periodic_report_day,
            quiet_start=dt.time.fromisoformat(start.strip()),
            quiet_end=dt.time.fromisoformat(end.strip()),
        )

    @cached_property
    def report_at(self) -> dt.time:
        return dt.time.fromisoformat(self.report_time)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def wecom_enabled(self) -> bool:
        return all(
            (self.wecom_corp_id, self.wecom_agent_id, self.wecom_secret, self.wecom_token, self.wecom_encoding_aes_key)
        )

    @property
    def dingtalk_enabled(self) -> bool:
        return bool(self.dingtalk_client_id and self.dingtalk_client_secret)

    def log_channels(self) -> None:
        """Say once at start which chat channels are off, and why."""
        if not self.wecom_enabled:
            log.warning("wecom channel off: credentials absent", extra={"needs": "WECOM_CORP_ID, WECOM_AGENT_ID, WECOM_SECRET, WECOM_TOKEN, WECOM_ENCODING_AES_KEY"})
        if not self.dingtalk_enabled:
            log.warning("dingtalk channel off: credentials absent", extra={"needs": "DINGTALK_CLIENT_ID, DINGTALK_CLIENT_SECRET"})
        if not self.api_token:
            log.warning("api off: DUBAN_API_TOKEN is not set")
