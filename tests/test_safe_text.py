"""What a reporter types is echoed back in summaries: control characters must never reach
the reply, or the TwiML is invalid XML and the provider drops the whole reply."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bot.categories import label_msgid
from bot.gsm7 import safe_text, to_gsm7
from bot.messages import render, render_payload
from service.channels import twilio_default
from service.channels.twilio import TwilioChannel
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_BASE_URL

DIRTY = "Béni\x1b[31m à l'école\x00\x07 🔥\ufffe\uffff\x0b\x0c\x1f\x7f\x85\ud800 è"
NEVER = ["\x1b", "\x00", "\x07", "\ufffe", "\uffff", "\x0b", "\x0c", "\x1f", "\x7f", "\x85", "\ud800"]


def _clean(text: str) -> bool:
    return not any(ch in text for ch in NEVER)


def test_safe_text_drops_what_xml_and_gsm7_cannot_carry_and_keeps_accents():
    assert safe_text(DIRTY) == "Béni[31m à l'école 🔥 è"
    assert safe_text("ligne 1\nligne 2\r\n\tfin") == "ligne 1\nligne 2\r\n\tfin"
    assert safe_text("\U0001fffe\U0010ffff\ufdd0ok") == "ok"
    assert to_gsm7(DIRTY) == "Béni[31m à l'école ? è"


def _summary_payload(echoed: str) -> dict:
    summary = {"msg": "summary", "args": {"category": "@" + label_msgid("ATTACK"), "place": echoed,
                                          "when": "@when.today", "people": "3\x00", "perpetrator": echoed}}
    return {"msg": "confirm", "lang": "fr", "args": {"summary": summary}}


@pytest.mark.parametrize("lang", ["fr", "sw", "ln"])
def test_a_summary_echoing_control_characters_renders_clean(lang):
    text = render_payload({**_summary_payload(DIRTY), "lang": lang}, "fr")
    assert _clean(text) and "Béni[31m à l'école" in text and "è" in text
    menu = render("ask_place_choice", lang, {"name": "Bu\x1btembo"}, [[1, "Butembo\x00"], [2, "@when.today"]])
    assert _clean(menu) and "Butembo" in menu
    assert _clean(render_payload({"text": DIRTY}, lang))


def test_twiml_of_a_dirty_reply_parses_and_carries_none_of_it():
    config = {"PUBLIC_BASE_URL": PUBLIC_BASE_URL, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
              "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM": "+243990000000"}
    channel = TwilioChannel(twilio_default(config), config)
    rendered = render_payload(_summary_payload(DIRTY), "fr")
    response = channel.reply([rendered, DIRTY, "<b>&amp;</b>"])  # the raw text too: the channel cleans it itself
    body = response.get_data()
    root = ET.fromstring(body)
    texts = [m.text for m in root.iter("Message")]
    assert len(texts) == 3 and all(_clean(t) for t in texts)
    assert "Béni[31m à l'école" in texts[0] and texts[1] == safe_text(DIRTY) and texts[2] == "<b>&amp;</b>"
    assert b"\x1b" not in body and b"\x00" not in body
