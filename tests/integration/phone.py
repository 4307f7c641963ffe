"""A reporter's phone for tests: sends properly signed Twilio webhooks, reads TwiML."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from twilio.request_validator import RequestValidator

from bot.messages import text

WEBHOOK = "/webhooks/twilio/sms"


class Phone:
    def __init__(self, client, number: str, *, token: str, base_url: str, to: str = "+15005550006"):
        self.client, self.number, self.token, self.base_url, self.to = client, number, token, base_url, to

    def post(self, body: str, sid: str | None = None, signature: str | None = None):
        params = {"From": self.number, "To": self.to, "Body": body,
                  "MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
                  "NumMedia": "0", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
        if signature is None:
            signature = RequestValidator(self.token).compute_signature(self.base_url + WEBHOOK, params)
        return self.client.post(WEBHOOK, data=params, headers={"X-Twilio-Signature": signature})

    def send(self, body: str, sid: str | None = None) -> str:
        """Text the service; return the reply it sends back in the same exchange."""
        response = self.post(body, sid)
        assert response.status_code == 200, response.get_data(as_text=True)
        return replies(response.get_data(as_text=True))


def replies(twiml: str) -> str:
    root = ET.fromstring(twiml)
    return "\n".join((m.text or "") for m in root.iter("Message"))


def says(reply: str, msg_id: str, lang: str) -> bool:
    """Whether a reply contains message `msg_id` as written in `lang`: its longest
    fixed part (between placeholders), as sent in GSM-7."""
    import re

    from bot.gsm7 import to_gsm7

    parts = [p.strip() for p in re.split(r"\{[^}]*\}", text(msg_id, lang))]
    return to_gsm7(max(parts, key=len))[:60] in reply
