"""Settings come from the environment or `.env`; `.env.example` documents each one."""

from __future__ import annotations

import logging
from functools import cached_property
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("duban.settings")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite+aiosqlite:///./duban.db", validation_alias="DUBAN_DATABASE_URL")
    api_token: str = Field("", validation_alias="DUBAN_API_TOKEN")
    timezone: str = Field("Asia/Shanghai", validation_alias="DUBAN_TIMEZONE")
    log_level: str = Field("INFO", validation_alias="DUBAN_LOG_LEVEL")
    max_body_bytes: int = Field(1024 * 1024, validation_alias="DUBAN_MAX_BODY_BYTES")

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
    dingtalk_mode: str = Field("stream", validation_alias="DINGTALK_MODE")
    dingtalk_api_base: str = Field("https://api.dingtalk.com", validation_alias="DINGTALK_API_BASE")
    dingtalk_oapi_base: str = Field("https://oapi.dingtalk.com", validation_alias="DINGTALK_OAPI_BASE")

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
