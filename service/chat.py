"""Text the service from the terminal, as a reporter's phone would through Twilio.

Each line read is sent as a signed Twilio SMS webhook; the TwiML answer is printed
with `< `. Replies the service sends later (through Twilio's REST API) can be seen
with `--listen PORT`: the service must then be started with
TWILIO_API_BASE=http://127.0.0.1:PORT so that its sends reach this stand-in.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import requests
from twilio.request_validator import RequestValidator

from bot.keywords import LANGUAGE_WORDS
from bot.languages import LANGUAGES
from service.config import DEFAULTS, DEV_TWILIO_AUTH_TOKEN

WEBHOOK = "/webhooks/twilio/sms"
FAKE_SENDER = "+243990000001"  # fake, like the development defaults; nothing here reaches a real phone
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages\.json$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("PUBLIC_BASE_URL") or "http://127.0.0.1:8000",
                        help="the service's public base URL (signatures are computed on it)")
    parser.add_argument("--from", dest="sender", default=FAKE_SENDER, help="the phone texting (fake)")
    parser.add_argument("--to", default=os.environ.get("TWILIO_FROM") or DEFAULTS["TWILIO_FROM"],
                        help="the service's number")
    parser.add_argument("--token", default=os.environ.get("TWILIO_AUTH_TOKEN") or DEV_TWILIO_AUTH_TOKEN,
                        help="Twilio auth token the service checks signatures with")
    parser.add_argument("--lang", choices=LANGUAGES, help="first text the language word (FR, SW or LN)")
    parser.add_argument("--listen", type=int, metavar="PORT",
                        help="imitate Twilio's REST API on this loopback port to show later replies")
    parser.add_argument("--linger", type=float, default=5.0, metavar="SECONDS",
                        help="with --listen: how long to wait for later replies once the input ends")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer")


def cli(parser: argparse.ArgumentParser):
    """`alerte chat`: hook for service.cli."""
    add_arguments(parser)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alerte chat", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


class ChatError(RuntimeError):
    """The service cannot be texted; the message says what to check."""


class Phone:
    """One fake handset: builds Twilio's form, signs it, posts it, reads the TwiML."""

    def __init__(self, base_url: str, sender: str, to: str, token: str, timeout: float = 30.0,
                 account_sid: str | None = None, session: requests.Session | None = None):
        self.url = base_url.rstrip("/") + WEBHOOK
        self.sender, self.to, self.timeout = sender, to, timeout
        self.validator = RequestValidator(token)
        self.account_sid = account_sid or os.environ.get("TWILIO_ACCOUNT_SID") or DEFAULTS["TWILIO_ACCOUNT_SID"]
        self.http = session or requests.Session()

    def form(self, body: str) -> dict[str, str]:
        sid = "SM" + secrets.token_hex(16)
        return {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": self.account_sid,
                "From": self.sender, "To": self.to, "Body": body, "NumMedia": "0",
                "NumSegments": str(segments(body)), "SmsStatus": "received", "ApiVersion": "2010-04-01"}

    def text(self, body: str) -> list[str]:
        """Send one SMS; return the bodies of the TwiML <Message> elements."""
        params = self.form(body)
        signature = self.validator.compute_signature(self.url, params)
        try:
            response = self.http.post(self.url, data=params, headers={"X-Twilio-Signature": signature},
                                      timeout=self.timeout)
        except requests.ConnectionError:
            raise ChatError(f"nothing answers at {self.url}: is the service running (alerte run)?") from None
        except requests.Timeout:
            raise ChatError(f"no answer from {self.url} within {self.timeout:.0f} s") from None
        if response.status_code == 403:
            raise ChatError("403: the service rejected the signature. Use the same TWILIO_AUTH_TOKEN as the "
                            "service (--token) and its PUBLIC_BASE_URL (--url).")
        if response.status_code != 200:
            raise ChatError(f"HTTP {response.status_code} from the service: {response.text[:200].strip()}")
        return twiml_messages(response.content)  # bytes: the XML declares its encoding


def twiml_messages(twiml: bytes | str) -> list[str]:
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise ChatError(f"the answer is not TwiML ({exc})") from None
    return [element.text or "" for element in root.iter("Message")]


def segments(body: str) -> int:
    """How many SMS parts Twilio would count (GSM-7: 160/153, otherwise UCS-2: 70/67)."""
    gsm = all(ord(ch) < 128 for ch in body)
    single, part = (160, 153) if gsm else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // part)


class TwilioStandin:
    """Answers the service's `POST .../Messages.json` like Twilio and prints what it sends."""

    def __init__(self, port: int, number: str, token: str, out=sys.stdout):
        self.number, self.validator, self.out = number, RequestValidator(token), out
        self.print_lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "TwilioStandin":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def show(self, text: str) -> None:
        with self.print_lock:
            print(text, file=self.out, flush=True)

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # the chat is the output; no access log
                pass

            def do_POST(self):
                match = MESSAGES_PATH.match(self.path.split("?")[0])
                if not match:
                    return self._json(404, {"code": 20404, "message": "The requested resource was not found",
                                            "more_info": "https://www.twilio.com/docs/errors/20404",
                                            "status": 404})
                length = int(self.headers.get("Content-Length") or 0)
                params = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8")).items()}
                to, body = params.get("To", ""), params.get("Body", "")
                if not to or not body:
                    return self._json(400, {"code": 21604, "message": "A 'To' phone number and a 'Body' "
                                            "are required.", "status": 400,
                                            "more_info": "https://www.twilio.com/docs/errors/21604"})
                sid = "SM" + secrets.token_hex(16)
                if to == standin.number:
                    for line in body.splitlines() or [""]:
                        standin.show(f"< (later) {line}")
                self._json(201, resource(sid, match.group(1), to, params, body))
                if params.get("StatusCallback"):
                    threading.Thread(target=standin.delivered, args=(params["StatusCallback"], sid, match.group(1),
                                                                     to, params.get("From", "")),
                                     daemon=True).start()

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def delivered(self, callback: str, sid: str, account_sid: str, to: str, sender: str) -> None:
        """Report the message delivered, as Twilio would a moment after sending it."""
        for status in ("sent", "delivered"):
            params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": account_sid, "MessageStatus": status,
                      "SmsStatus": status, "To": to, "From": sender, "ApiVersion": "2010-04-01"}
            try:
                requests.post(callback, data=params, timeout=10,
                              headers={"X-Twilio-Signature": self.validator.compute_signature(callback, params)})
            except requests.RequestException:
                return  # a lost callback is normal on Twilio too


def resource(sid: str, account_sid: str, to: str, params: dict, body: str) -> dict:
    """The message resource Twilio returns for a create (status queued)."""
    now = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {
        "sid": sid, "account_sid": account_sid, "api_version": "2010-04-01", "body": body,
        "date_created": now, "date_updated": now, "date_sent": None, "direction": "outbound-api",
        "error_code": None, "error_message": None, "from": params.get("From"), "to": to,
        "messaging_service_sid": params.get("MessagingServiceSid"), "num_media": "0",
        "num_segments": str(segments(body)), "price": None, "price_unit": "USD", "status": "queued",
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"},
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
    }


def language_word(lang: str) -> str:
    return next(word for word, code in LANGUAGE_WORDS.items() if code == lang)


def run(args) -> int:
    phone = Phone(args.url, args.sender, args.to, args.token, timeout=args.timeout)
    standin = None
    if args.listen:
        try:
            standin = TwilioStandin(args.listen, args.sender, args.token).start()
        except OSError as exc:
            print(f"error: cannot listen on 127.0.0.1:{args.listen}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"# later replies: start the service with TWILIO_API_BASE=http://127.0.0.1:{args.listen}",
              file=sys.stderr)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"# texting {phone.url} from {args.sender}; Ctrl-D to quit", file=sys.stderr)
    first = [language_word(args.lang)] if args.lang else []
    try:
        for body, echo in _turns(first, interactive):
            if echo:
                _print(standin, f"> {body}")
            for reply in phone.text(body):
                for line in reply.splitlines() or [""]:
                    _print(standin, f"< {line}")
        if standin and args.linger > 0:
            time.sleep(args.linger)  # replies the worker sends after the last text
    except ChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        if standin:
            standin.stop()
    return 0


def _turns(first: list[str], interactive: bool):
    """(text, echo it?) pairs: the given first texts, then stdin; typed lines are not echoed."""
    for body in first:
        yield body, True
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and line == "":
            return
        line = line.rstrip("\r\n")
        if line.strip():
            yield line, not interactive


def _print(standin: TwilioStandin | None, text: str) -> None:
    if standin:
        standin.show(text)
    else:
        print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
