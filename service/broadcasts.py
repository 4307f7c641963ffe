"""Safety broadcasts: the request checked, the broadcast stored, its counts, cancel,
expiry, and the answers to its question.

A broadcast has one text per language; each subscriber gets the text of their language,
else the fallback language's; without a fallback every language must be given. The
texts are checked for a reporter's phone number (reporter identity never goes into a
broadcast). Sending is service/broadcast_sending.py; who is reached, service/targeting.py;
the CAP form, service/cap_alerts.py.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.gsm7 import is_gsm7, safe_text, segments, septets, to_gsm7
from bot.languages import DEFAULT_LANGUAGE, LANGUAGES
from service import targeting
from service.models import Broadcast, BroadcastReply, Message, Reporter, Subscriber, utcnow
from service.privacy import InvalidNumber, normalise

PRIORITIES = ("urgent", "routine")
CAP_STATUSES = ("Actual", "Exercise", "Test")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
MAX_TEXT = 1000  # characters: 7 GSM-7 segments; a warning should be short
MAX_LIFETIME = timedelta(days=7)
DEFAULT_LIFETIME = timedelta(hours=24)  # a warning from yesterday may send people the wrong way
DEFAULT_REPLY_WINDOW = timedelta(hours=48)
ACTIVE = ("scheduled", "sending")
# deliveries the person has (or may have) received: a reply can answer them
RECEIVED = ("sent", "handed", "delivered")
NUMBER_LIKE = re.compile(r"(?<![\w+])\+?\d[\d\s().\-/]{7,16}\d")
ANSWER = re.compile(r"^\s*([1-9])(?![0-9])[\s.)\-:,;!]*(.*)$", re.S)
SHORT_REMAINDER = 2  # words after the number that are still only the answer ("1 oui")


class Invalid(ValueError):
    """The request cannot become a broadcast; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """A broadcast request, checked (see `parse`)."""

    texts: dict[str, str]
    original_texts: dict[str, str] | None
    fallback_language: str | None
    targets: targeting.Targets
    priority: str
    send_at: datetime
    expires_at: datetime
    cap_status: str
    cap: dict
    question: dict | None
    replies_until: datetime | None
    warnings: list[str] = field(default_factory=list)


def _time(raw, name: str) -> datetime:
    if not isinstance(raw, str):
        raise Invalid(f"{name} must be an ISO 8601 date and time")
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name} must be an ISO 8601 date and time, like 2026-12-02T18:00:00+02:00") from None
    # in UTC: SQLite keeps no offset, and a +02:00 time read back as UTC would be 2 h off
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def parse(body, session: Session, identity, now: datetime | None = None, gazetteer=None) -> Request:
    """Check a POST /api/v1/broadcasts body; raises Invalid with a message naming the field."""
    now = now or utcnow()
    if not isinstance(body, dict):
        raise Invalid("send a JSON object")
    texts = body.get("texts")
    if not isinstance(texts, dict) or not texts:
        raise Invalid('texts must be an object of texts by language: {"fr": ..., "sw": ..., "ln": ...}')
    unknown = sorted(set(texts) - set(LANGUAGES))
    if unknown:
        raise Invalid(f"texts: unknown language {', '.join(unknown)}; use {', '.join(LANGUAGES)}")
    cleaned = {}
    for lang, text in texts.items():
        if not isinstance(text, str) or not safe_text(text).strip():
            raise Invalid(f"texts.{lang} must be a non-empty text")
        cleaned[lang] = safe_text(text).strip()
        if len(cleaned[lang]) > MAX_TEXT:
            raise Invalid(f"texts.{lang} is longer than {MAX_TEXT} characters")
    fallback = body.get("fallback_language")
    if fallback is not None and fallback not in cleaned:
        raise Invalid(f"fallback_language must be one of the languages given ({', '.join(sorted(cleaned))})")
    missing = [lang for lang in LANGUAGES if lang not in cleaned]
    if missing and fallback is None:
        raise Invalid(f"texts has no {', '.join(missing)}: give them, or a fallback_language for the "
                      f"subscribers who read {', '.join(missing)}")
    _refuse_reporter_numbers(session, identity, cleaned)
    transliterate = body.get("transliterate", False)
    if not isinstance(transliterate, bool):
        raise Invalid("transliterate must be true or false")
    original = None
    if transliterate:
        original = dict(cleaned)
        cleaned = {lang: to_gsm7(text) for lang, text in cleaned.items()}
    try:
        targets = targeting.parse(body.get("targets"), session, gazetteer)
    except targeting.TargetError as exc:
        raise Invalid(str(exc)) from None
    priority = body.get("priority", "routine")
    if priority not in PRIORITIES:
        raise Invalid(f"priority must be one of {', '.join(PRIORITIES)}")
    send_at = max(now, _time(body["send_at"], "send_at")) if body.get("send_at") is not None else now
    expires_at = _time(body["expires_at"], "expires_at") if body.get("expires_at") is not None \
        else send_at + DEFAULT_LIFETIME
    if expires_at <= send_at:
        raise Invalid("expires_at must be after send_at (and after now)")
    if expires_at - send_at > MAX_LIFETIME:
        raise Invalid(f"expires_at must be within {MAX_LIFETIME.days} days of send_at")
    cap_status = body.get("status", "Actual")
    if cap_status not in CAP_STATUSES:
        raise Invalid(f"status must be one of {', '.join(CAP_STATUSES)} (CAP)")
    request = Request(cleaned, original, fallback, targets, priority, send_at, expires_at, cap_status,
                      _cap_fields(body.get("cap"), priority, cleaned), None, None)
    request.question, request.replies_until = _question(body.get("question"), send_at, expires_at, cleaned,
                                                        request.warnings)
    return request


def _refuse_reporter_numbers(session: Session, identity, texts: dict[str, str]) -> None:
    """A text holding the number of someone who wrote to us is refused (a hotline's
    number is fine): reporter identity never goes into a broadcast."""
    for lang, text in texts.items():
        for match in NUMBER_LIKE.finditer(text):
            try:
                number = normalise(match.group())
            except InvalidNumber:
                continue
            if session.scalar(select(Reporter.id).where(Reporter.key.in_(identity.keys(number))).limit(1)):
                raise Invalid(f"texts.{lang} contains the phone number of a reporter or subscriber: "
                              "never put who reported into a broadcast", status=422)


def _cap_fields(raw, priority: str, texts: dict[str, str]) -> dict:
    raw = raw if isinstance(raw, dict) else {}
    cap = {"urgency": raw.get("urgency") or ("Immediate" if priority == "urgent" else "Expected"),
           "severity": raw.get("severity") or ("Severe" if priority == "urgent" else "Moderate"),
           "certainty": raw.get("certainty") or "Likely"}
    for name, allowed in (("urgency", URGENCIES), ("severity", SEVERITIES), ("certainty", CERTAINTIES)):
        if cap[name] not in allowed:
            raise Invalid(f"cap.{name} must be one of {', '.join(allowed)}")
    for name in ("headline", "instruction"):
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(v, str) and k in texts for k, v in value.items()):
            raise Invalid(f"cap.{name} must be an object of texts by language, for languages of texts")
        cap[name] = {k: safe_text(v).strip()[:500] for k, v in value.items()}
    return cap


def _question(raw, send_at: datetime, expires_at: datetime, texts: dict[str, str], warnings: list[str]):
    if raw is None:
        return None, None
    answers = raw.get("answers") if isinstance(raw, dict) else None
    if not isinstance(answers, dict) or not answers or not all(
            isinstance(k, str) and len(k) == 1 and k in "123456789" and isinstance(v, str) and 0 < len(v.strip()) <= 40
            for k, v in answers.items()):
        raise Invalid('question.answers must map answer numbers 1-9 to short labels: {"1": "safe", "2": "not safe"}')
    hours = raw.get("window_hours")
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 168):
        raise Invalid("question.window_hours must be a number of hours, at most 168")
    window = timedelta(hours=hours) if hours is not None else DEFAULT_REPLY_WINDOW
    for lang, text in texts.items():
        absent = [n for n in sorted(answers) if not re.search(rf"(?<!\d){n}(?!\d)", text)]
        if absent:
            warnings.append(f"texts.{lang} does not show the answer number(s) {', '.join(absent)}")
    return {"answers": {k: v.strip() for k, v in sorted(answers.items())}}, send_at + window


def language_stats(texts: dict[str, str]) -> dict[str, dict]:
    """Per language: characters, encoding and segments of the text as it will be sent."""
    return {lang: {"characters": len(text), "septets": septets(text) if is_gsm7(text) else None,
                   "encoding": "GSM-7" if is_gsm7(text) else "UCS-2", "segments": segments(text)}
            for lang, text in texts.items()}


def language_for(subscriber_language: str | None, texts: dict, fallback: str | None) -> str | None:
    """The language a subscriber gets: theirs, else the fallback; None: nothing to send."""
    wanted = subscriber_language or DEFAULT_LANGUAGE
    if wanted in texts:
        return wanted
    return fallback if fallback in texts else None


def audience(session: Session, targets: targeting.Targets, texts: dict, fallback: str | None) -> dict[str, int]:
    """Subscribers reached now, per language they will get."""
    counts = {lang: 0 for lang in texts}
    for recipient in targeting.each(session, targets):
        lang = language_for(recipient.language, texts, fallback)
        if lang is not None:
            counts[lang] += 1
    return counts


def create(session: Session, request: Request) -> Broadcast:
    broadcast = Broadcast(identifier=f"CD-ALERTE-{uuid.uuid4().hex[:20]}", texts=request.texts,
                          original_texts=request.original_texts, fallback_language=request.fallback_language,
                          targets=request.targets.as_json(), priority=request.priority, cap_status=request.cap_status,
                          cap=request.cap, question=request.question, replies_until=request.replies_until,
                          state="scheduled", send_at=request.send_at, expires_at=request.expires_at,
                          fanout_cursor=0, fanout_done=False)
    session.add(broadcast)
    session.commit()
    return broadcast


def summary(broadcast: Broadcast, per_language: dict[str, int] | None = None, warnings=()) -> dict:
    """The broadcast as the API shows it (never a number or a reporter)."""
    stats = language_stats(broadcast.texts)
    for lang, entry in stats.items():
        if broadcast.original_texts:
            entry["text"] = broadcast.texts[lang]
            entry["transliterated"] = broadcast.texts[lang] != broadcast.original_texts.get(lang)
        if per_language is not None:
            entry["recipients"] = per_language.get(lang, 0)
    out = {"id": broadcast.id, "identifier": broadcast.identifier, "state": broadcast.state,
           "priority": broadcast.priority, "status": broadcast.cap_status,
           "send_at": iso(broadcast.send_at), "expires_at": iso(broadcast.expires_at),
           "fallback_language": broadcast.fallback_language, "targets": _public_targets(broadcast.targets),
           "languages": stats, "question": broadcast.question, "replies_until": iso(broadcast.replies_until)}
    if per_language is not None:
        out["recipients"] = sum(per_language.values())
        out["segments"] = sum(stats[lang]["segments"] * n for lang, n in per_language.items())
    out["warnings"] = list(warnings)
    return out


def _public_targets(targets: dict) -> dict:
    return {k: v for k, v in targets.items() if k not in ("names", "group_names")}


def delivery_counts(session: Session, broadcast_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """Deliveries per status, and per language."""
    by_status = dict(session.execute(select(Message.status, func.count()).where(
        Message.broadcast_id == broadcast_id).group_by(Message.status)).all())
    by_language = dict(session.execute(select(Message.language, func.count()).where(
        Message.broadcast_id == broadcast_id).group_by(Message.language)).all())
    return by_status, by_language


def cancel(session: Session, broadcast: Broadcast) -> int:
    """Stop what has not been sent; returns the deliveries withdrawn. What a sender has
    already handed to the gateway (a chunk in flight) cannot be called back."""
    if broadcast.state in ACTIVE:
        broadcast.state, broadcast.canceled_at = "canceled", utcnow()
        broadcast.finished_at = broadcast.finished_at or broadcast.canceled_at
    session.commit()  # from here every sender sees the state and stops
    withdrawn = session.execute(update(Message).where(Message.broadcast_id == broadcast.id, Message.status == "queued")
                                .values(status="canceled", processed_at=utcnow())
                                .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return withdrawn


def expire(session: Session, broadcast: Broadcast, now: datetime | None = None) -> int:
    """Past its expiry: nothing more is sent; returns the deliveries that expired."""
    now = now or utcnow()
    if broadcast.state in ACTIVE:
        broadcast.state, broadcast.finished_at = "expired", now
    session.commit()
    expired = session.execute(update(Message).where(Message.broadcast_id == broadcast.id, Message.status == "queued")
                              .values(status="expired", processed_at=now)
                              .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return expired


def expired(broadcast: Broadcast, now: datetime | None = None) -> bool:
    return aware(broadcast.expires_at) <= (now or utcnow())


# --- answers to the question ------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    broadcast_id: int
    answer: str
    remainder: str  # what follows the answer, when it is more than the answer ("1 but armed men...")


def match_reply(session: Session, reporter_id: int, text: str, now: datetime | None = None) -> Reply | None:
    """Whether this message answers a broadcast's question: the latest question-asking
    broadcast the person received, within its window, with no conversation of ours
    since (then a number answers the conversation's question instead)."""
    found = ANSWER.match(text or "")
    if found is None:
        return None
    now = now or utcnow()
    delivery = session.execute(
        select(Message.id, Broadcast.id, Broadcast.question)
        .join(Broadcast, Broadcast.id == Message.broadcast_id)
        .where(Message.reporter_id == reporter_id, Message.direction == "out", Message.status.in_(RECEIVED),
               Broadcast.question.is_not(None), Broadcast.replies_until > now)
        .order_by(Message.id.desc()).limit(1)).first()
    if delivery is None:
        return None
    delivery_id, broadcast_id, question = delivery
    answer = found.group(1)
    if answer not in (question or {}).get("answers", {}):
        return None
    later = session.execute(select(Message.id, Message.reply_to_id).where(
        Message.reporter_id == reporter_id, Message.direction == "out", Message.id > delivery_id,
        Message.broadcast_id.is_(None), Message.status != "suppressed").order_by(Message.id.desc()).limit(1)).first()
    if later is not None:
        last_answer = session.scalar(select(BroadcastReply.message_id).where(
            BroadcastReply.broadcast_id == broadcast_id, BroadcastReply.reporter_id == reporter_id))
        if later.reply_to_id is None or later.reply_to_id != last_answer:
            return None  # we have talked since: the number belongs to that conversation
    remainder = found.group(2).strip()
    return Reply(broadcast_id, answer, remainder if len(remainder.split()) > SHORT_REMAINDER else "")


def record_reply(session: Session, reply: Reply, reporter_id: int, message_id: int) -> BroadcastReply:
    """Keep the person's answer (their latest counts), with their area for the tally."""
    row = session.scalar(select(BroadcastReply).where(BroadcastReply.broadcast_id == reply.broadcast_id,
                                                      BroadcastReply.reporter_id == reporter_id))
    if row is None:
        subscriber = session.scalar(select(Subscriber).where(Subscriber.reporter_id == reporter_id))
        row = BroadcastReply(broadcast_id=reply.broadcast_id, reporter_id=reporter_id, answer=reply.answer,
                             message_id=message_id, changes=0,
                             admin1_pcode=subscriber.admin1_pcode if subscriber else None,
                             admin2_pcode=subscriber.admin2_pcode if subscriber else None)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError:  # a second answer at the same moment
            row = session.scalar(select(BroadcastReply).where(BroadcastReply.broadcast_id == reply.broadcast_id,
                                                              BroadcastReply.reporter_id == reporter_id))
    if row.message_id != message_id:
        row.changes = (row.changes or 0) + (row.answer != reply.answer)
        row.answer, row.message_id, row.updated_at = reply.answer, message_id, utcnow()
    return row


def reply_counts(session: Session, broadcast: Broadcast, names: dict[str, str] | None = None) -> dict:
    """Answers per answer and per area (territory, else province)."""
    labels = (broadcast.question or {}).get("answers", {})
    rows = session.execute(select(BroadcastReply.answer, BroadcastReply.admin1_pcode, BroadcastReply.admin2_pcode,
                                  func.count()).where(BroadcastReply.broadcast_id == broadcast.id)
                           .group_by(BroadcastReply.answer, BroadcastReply.admin1_pcode,
                                     BroadcastReply.admin2_pcode)).all()
    answers = {number: {"label": label, "count": 0} for number, label in labels.items()}
    areas: dict[tuple, dict] = {}
    for answer, admin1, admin2, count in rows:
        answers.setdefault(answer, {"label": labels.get(answer), "count": 0})["count"] += count
        area = areas.setdefault((admin1, admin2), {"admin1_pcode": admin1, "admin2_pcode": admin2,
                                                    "name": (names or {}).get(admin2 or admin1 or ""),
                                                    "answers": {n: 0 for n in labels}})
        area["answers"][answer] = area["answers"].get(answer, 0) + count
    received = session.scalar(select(func.count()).where(Message.broadcast_id == broadcast.id,
                                                         Message.status.in_(RECEIVED))) or 0
    total = sum(a["count"] for a in answers.values())
    return {"id": broadcast.id, "question": broadcast.question, "replies_until": iso(broadcast.replies_until),
            "total": total, "received": received, "answers": answers,
            "by_area": sorted(areas.values(), key=lambda a: (a["admin1_pcode"] or "", a["admin2_pcode"] or ""))}


def aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso(value: datetime | None) -> str | None:
    return aware(value).isoformat() if value is not None else None
