"""SMPP 3.4: a direct bind to an operator's SMSC (transceiver), with `smpplib`.

The bind itself lives in its own long-running process, `alerte smpp --channel <name>`
(service/channels/smpp_link.py): it receives `deliver_sm` (messages and delivery receipts) and
sends. This module is what the rest of the service sees of it: the settings, the
encoding of our texts into `submit_sm` parts and of `deliver_sm` back into text, the
mapping of SMSC statuses and receipts onto ours, and `send()`, which only works where
the bind is (every other process queues the send on `send_queue`, consumed there).

Settings of a channels-file entry (kind: smpp)::

    host, port                  the SMSC
    system_id, password         the bind's credentials; system_type (optional)
    source_addr                 our short code or number; source_addr_ton/_npi (default:
                                international/E.164 for a number, alphanumeric otherwise)
    enquire_link_interval       s between keep-alives (30)
    reconnect_max               s, the cap of the reconnect back-off (60)
    throughput                  submit_sm per second the SMSC allows (0: no limit)
    response_timeout            s to wait for a response (10)
    numbers                     the short codes and numbers this bind receives on

There are no webhooks: `inbound_path()` and `status_path()` are None.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from flask import Request

from bot.gsm7 import ALPHABET as GSM_BASIC, EXTENSION_CODES as GSM_EXTENSION, is_gsm7
from service.channels.base import BadRequest, Channel, InboundMessage, SendError, StatusUpdate

_GSM_ENCODE = {ch: bytes([i]) for i, ch in enumerate(GSM_BASIC) if ch != "\x1b"}
_GSM_ENCODE.update({ch: bytes([0x1B, code]) for code, ch in GSM_EXTENSION.items()})

GSM7, LATIN1, UCS2 = 0x00, 0x03, 0x08  # data_coding values
UDHI = 0x40  # esm_class: the short message starts with a user data header
RECEIPT_TYPES = 0x3C  # esm_class bits 2-5: receipt or acknowledgement, not a message
SINGLE = {GSM7: 160, UCS2: 140}  # septets / octets of one SMS
PART = {GSM7: 153, UCS2: 134}  # ... of one part after a 6-octet UDH

# command_status values (SMPP 3.4 section 5.1.3)
ESME_ROK = 0x00
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64  # ESME receiver temporary error: the SMSC delivers again later
THROTTLED = {ESME_RTHROTTLED: 1.0, ESME_RMSGQFUL: 5.0}  # status -> s to slow down
RETRYABLE = {ESME_RSYSERR, ESME_RX_T_APPN, 0x45}  # 0x45: submit_sm failed (temporary)
INVALID_NUMBER = {ESME_RINVDSTADR}

# delivery receipts: stat: text and message_state TLV onto our statuses
RECEIPT_STATUS = {"DELIVRD": "delivered", "UNDELIV": "undelivered", "EXPIRED": "undelivered",
                  "DELETED": "undelivered", "REJECTD": "failed", "ACCEPTD": "sent", "ENROUTE": "sent",
                  "UNKNOWN": "sent"}
MESSAGE_STATE = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD",
                 7: "UNKNOWN", 8: "REJECTD"}
RECEIPT_FIELD = re.compile(r"\b(id|stat|err):(\S*)", re.IGNORECASE)


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def encode_units(text: str) -> tuple[int, list[bytes]]:
    """The data coding and the text as indivisible units (a GSM escape pair, a UTF-16
    surrogate pair): parts are cut between units, never inside one. GSM-7 (unpacked, one
    septet per octet) when bot.gsm7 says the text fits it, else UCS-2."""
    if is_gsm7(text) and all(ch in _GSM_ENCODE for ch in text):
        return GSM7, [_GSM_ENCODE[ch] for ch in text]
    return UCS2, [ch.encode("utf-16-be") for ch in text]


def split(text: str, reference: int | None = None) -> tuple[int, int, list[bytes]]:
    """(data_coding, esm_class, short messages) for one text; a long text becomes
    concatenated parts, each with a UDH (IEI 0, 8-bit reference, total, sequence)."""
    coding, units = encode_units(text)
    if sum(len(u) for u in units) <= SINGLE[coding]:
        return coding, 0, [b"".join(units)]
    chunks, current = [], b""
    for unit in units:
        if len(current) + len(unit) > PART[coding]:
            chunks.append(current)
            current = b""
        current += unit
    chunks.append(current)
    if len(chunks) > 255:
        raise SendError(None, False, "smpp: text too long for 255 parts")
    ref = random.randint(0, 255) if reference is None else reference & 0xFF
    return coding, UDHI, [bytes([5, 0, 3, ref, len(chunks), i]) + chunk for i, chunk in enumerate(chunks, 1)]


def decode(coding: int, data: bytes) -> str:
    """A short message's octets as text by its data_coding (0: unpacked GSM-7)."""
    coding = coding or 0
    if coding == UCS2:
        return data.decode("utf-16-be", errors="replace")
    if coding in (LATIN1, 0x01):  # Latin-1; IA5 (ASCII) is a subset
        return data.decode("latin-1")
    if coding == GSM7 or coding & 0xF0 == 0xF0 and not coding & 0x04:  # 0xF0-0xF3: GSM-7 too
        out, escape = [], False
        for octet in data:
            octet &= 0x7F
            if escape:
                out.append(GSM_EXTENSION.get(octet, " "))
                escape = False
            elif octet == 0x1B:
                escape = True
            else:
                out.append(GSM_BASIC[octet])
        return "".join(out)
    return data.decode("latin-1", errors="replace")  # 8-bit data: shown, not interpreted


@dataclass(frozen=True)
class Part:
    """One deliver_sm that is a message (or a part of one), before reassembly."""

    source: str  # as the SMSC gave it (never logged)
    source_ton: int
    destination: str
    coding: int
    data: bytes  # the user data without its header
    reference: int | None = None  # concatenation: reference, total, this part's number
    total: int = 1
    number: int = 1


def parse_deliver(pdu) -> Part:
    """A deliver_sm's message: UDH (IEI 0 or 8) or sar_* TLVs give the concatenation."""
    data = bytes(pdu.short_message or b"") or bytes(getattr(pdu, "message_payload", None) or b"")
    reference, total, number = None, 1, 1
    if (pdu.esm_class or 0) & UDHI and data:
        length = data[0]
        header, data = data[1:1 + length], data[1 + length:]
        i = 0
        while i + 1 < len(header):
            iei, size = header[i], header[i + 1]
            value = header[i + 2:i + 2 + size]
            if iei == 0x00 and size == 3:
                reference, total, number = value[0], value[1], value[2]
            elif iei == 0x08 and size == 4:
                reference, total, number = value[0] << 8 | value[1], value[2], value[3]
            i += 2 + size
    elif getattr(pdu, "sar_msg_ref_num", None) is not None and getattr(pdu, "sar_total_segments", None):
        reference, total, number = pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum or 1
    return Part(_text(pdu.source_addr), pdu.source_addr_ton or 0, _text(pdu.destination_addr),
                pdu.data_coding or 0, data, reference, max(1, total or 1), max(1, number or 1))


def is_receipt(pdu) -> bool:
    return bool((pdu.esm_class or 0) & RECEIPT_TYPES)


def parse_receipt(pdu) -> StatusUpdate | None:
    """A delivery receipt onto our statuses: the receipted_message_id and message_state
    TLVs where present, else the text ("id:... stat:DELIVRD err:000 ...")."""
    fields = {k.lower(): v for k, v in RECEIPT_FIELD.findall(_text(pdu.short_message or b""))}
    message_id = _text(getattr(pdu, "receipted_message_id", None)).strip("\x00") or fields.get("id")
    state = MESSAGE_STATE.get(getattr(pdu, "message_state", None) or 0) or fields.get("stat", "").upper()
    if not message_id or not state:
        return None
    error = fields.get("err")
    error = None if not error or error.strip("0") == "" else error[:16]
    return StatusUpdate(message_id, RECEIPT_STATUS.get(state, "sent" if not error else "failed"), error)


def send_error(status: int) -> SendError:
    """An SMSC's refusal of a submit_sm as a SendError."""
    code = f"0x{status:02X}"
    if status in THROTTLED:
        return SendError(code, True, f"smpp: throttled ({code})", retry_after=THROTTLED[status], throttled=True)
    if status in INVALID_NUMBER:
        return SendError(code, False, f"smpp: invalid destination ({code})", invalid_number=True)
    return SendError(code, status in RETRYABLE, f"smpp: submit_sm refused ({code})")


class SmppChannel(Channel):
    kind = "smpp"

    def __init__(self, settings: dict, app_config: dict):
        super().__init__(settings, app_config)
        for required in ("host", "port", "system_id", "password", "source_addr"):
            if settings.get(required) in (None, ""):
                raise ValueError(f"{required} is required")
        self.host, self.port = str(settings["host"]), int(settings["port"])
        self.system_id, self.password = str(settings["system_id"]), str(settings["password"])
        self.system_type = str(settings.get("system_type") or "")
        if len(self.system_id) > 15 or len(self.password) > 8 or len(self.system_type) > 12:
            raise ValueError("system_id, password and system_type have at most 15, 8 and 12 characters")
        self.source_addr = str(settings["source_addr"]).lstrip("+")
        numeric = self.source_addr.isdigit()
        long_number = numeric and len(self.source_addr) > 8
        self.source_addr_ton = int(settings.get("source_addr_ton", 1 if long_number else (3 if numeric else 5)))
        self.source_addr_npi = int(settings.get("source_addr_npi", 1 if long_number else 0))
        self.enquire_link_interval = float(settings.get("enquire_link_interval") or 30)
        self.reconnect_max = float(settings.get("reconnect_max") or 60)
        self.throughput = float(settings.get("throughput") or 0) or None
        self.response_timeout = float(settings.get("response_timeout") or 10)
        self.send_queue = f"alerte-smpp-{self.name}"
        self.link = None  # the live bind, set by `alerte smpp` in its own process

    def production_problems(self) -> list[str]:
        return ["password is a development value"] if self.password in ("", "password", "secret") else []

    # no webhooks: everything arrives on the bind
    def inbound_path(self):
        return None

    def status_path(self):
        return None

    def verify(self, request: Request) -> bool:
        return False

    def parse_inbound(self, request: Request) -> InboundMessage:
        raise BadRequest("an SMPP channel has no webhook")

    def parse_status(self, request: Request) -> StatusUpdate:
        raise BadRequest("an SMPP channel has no webhook")

    def send(self, to: str, body: str, reply_context: dict | None = None, *,
             idempotency_key: str | None = None) -> str:  # the key: no such field in this API
        """submit_sm through the live bind: the first part's message id."""
        link = self.link
        if link is None:
            raise SendError(None, True, "smpp: no bind in this process (sends go to its send queue)",
                            retry_after=5.0)
        return link.submit(to, body)
