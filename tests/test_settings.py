"""Settings: every one is documented in .env.example, secrets come from the environment, bad values stop the start."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_documents_every_setting_with_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text("utf-8").splitlines()
    names = {f.validation_alias for f in Settings.model_fields.values()}
    seen = {}
    for i, line in enumerate(lines):
        m = re.match(r"^([A-Z0-9_]+)=", line)
        if m:
            seen[m.group(1)] = i
    assert set(seen) == names
    for name, i in seen.items():
        above = [ln for ln in lines[max(0, i - 4):i] if ln.startswith("#")]
        assert above, f"{name} has no comment above it"


def test_env_file_is_ignored_by_git() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_a_channel_without_credentials_is_off_and_with_them_on() -> None:
    s = Settings(_env_file=None)
    assert not s.wecom_enabled and not s.dingtalk_enabled
    s = Settings(WECOM_CORP_ID="c", WECOM_AGENT_ID=1, WECOM_SECRET="s", WECOM_TOKEN="t",
                 WECOM_ENCODING_AES_KEY="k" * 43, DINGTALK_CLIENT_ID="a", DINGTALK_CLIENT_SECRET="b", _env_file=None)
    assert s.wecom_enabled and s.dingtalk_enabled


@pytest.mark.parametrize("field, value", [("DINGTALK_MODE", "websocket"), ("DUBAN_SWEEP_SECONDS", "0"),
                                          ("WECOM_AGENT_ID", "abc")])
def test_an_impossible_setting_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value}, _env_file=None)


def test_bad_quiet_hours_stop_the_cli_with_a_message(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DUBAN_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
           "DUBAN_QUIET_HOURS": "late-early"}
    out = subprocess.run([sys.executable, "-m", "bot", "stats"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0
    assert "DUBAN_QUIET_HOURS" in out.stderr
