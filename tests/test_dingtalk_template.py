"""The shipped card-template contract and the adapter agree: the variables duban fills, the buttons it expects."""

from __future__ import annotations

import json
from pathlib import Path

from bot.adapters.dingtalk.adapter import card_params
from bot.adapters.dingtalk.parse import card_callback
from bot.messages import Button, OutMessage

SPEC = json.loads((Path(__file__).resolve().parent.parent / "docs" / "dingtalk-card-template.json").read_text("utf-8"))


def test_every_variable_duban_fills_is_declared_in_the_template_and_is_a_string() -> None:
    msg = OutMessage(text="办结待审核\n请回复“同意 2026-0001”", title="办结待审核", fields=(("牵头单位", "教务处"),),
                     buttons=(Button("同意", "approve"), Button("退回", "return")), item_code="2026-0001", card_kind="closure")
    params = card_params(msg)
    assert set(params) == set(SPEC["variables"])
    assert all(isinstance(v, str) for v in params.values())
    assert params["mode"] == "review" and params["code"] == "2026-0001"


def test_each_declared_button_sends_params_the_receiver_understands() -> None:
    for button in SPEC["buttons"]:
        params = {k: (v if v != "${code}" else "2026-0001") for k, v in button["params"].items()}
        data = {"outTrackId": "db1t1", "userId": "u1",
                "content": json.dumps({"cardPrivateData": {"actionIds": [button["actionId"]], "params": params}})}
        inc = card_callback(data)
        assert inc is not None and inc.press is not None
        assert (inc.press.action, inc.press.code) == (button["params"]["action"], "2026-0001")
