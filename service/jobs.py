"""Background work on RQ: a reporter's waiting messages, one send, the periodic sweep.

Jobs take ids, never ORM objects, reload what they need, and are idempotent: each only
touches rows still in the state it expects. They are enqueued by name through
service/queue.py; the worker and its sweep scheduler are in service/scheduler.py.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app, has_app_context
from sqlalchemy import select

from bot.flow import alert_flow
from service import (alerts, broadcast_sending, callbacks, inbox, incidents, locks, outbox, priority, queue, recordings,
                     reporters, voice_calls)
from service.app import create_app
from service.models import Message, utcnow

log = logging.getLogger(__name__)
LOCK_WAIT = 1.0  # s a job waits for a reporter another process is serving, then comes back


def _app():
    """The current app (tests, the worker command) or one built from the environment."""
    if has_app_context():
        return current_app._get_current_object()
    return create_app()


def process_pending(reporter_id: int) -> int:
    """Process some of a reporter's waiting messages; come back for the rest."""
    with _app().app_context():
        svc = inbox.Services.current()
        try:
            with locks.holding(svc.redis, reporter_id, svc.config["LOCK_TIMEOUT"], LOCK_WAIT) as lock:
                with priority.serving(svc.redis):  # broadcasts give way meanwhile
                    outcome = inbox.process(svc, reporter_id, lock=lock)
        except locks.Busy:  # a webhook or another job serves this reporter now
            outcome = inbox.Outcome(more=True, wait=2.0)
        except locks.LockLost:
            outcome = inbox.Outcome(more=True, wait=1.0)
        if outcome.more:
            queue.schedule_pending(svc.redis, svc.queue, reporter_id, delay=outcome.wait,
                                   mark_ttl=svc.mark_ttl(), again=True)
        else:
            queue.clear_mark(svc.redis, reporter_id)
            if inbox.waiting(svc.session, reporter_id):  # arrived while the mark was still set
                queue.schedule_pending(svc.redis, svc.queue, reporter_id, mark_ttl=svc.mark_ttl())
        return outcome.processed


def send_message(message_id: int) -> str:
    """Send one stored outbound message through the channel (RQ retries the retryable)."""
    with _app().app_context():
        return inbox.Services.current().send(message_id)


def broadcast_fanout(broadcast_id: int) -> int:
    """Write a due broadcast's deliveries (service/broadcast_sending.py)."""
    with _app().app_context():
        return broadcast_sending.fanout(inbox.Services.current(), broadcast_id)


def broadcast_send(broadcast_id: int, slot: int) -> str:
    """One slice of one of a broadcast's senders."""
    with _app().app_context():
        return broadcast_sending.send_slice(inbox.Services.current(), broadcast_id, slot)


def place_callback(request_id: int) -> str:
    """Dial one due call-back of a missed call (service/callbacks.py)."""
    with _app().app_context():
        return callbacks.place(inbox.Services.current(), request_id)


def fetch_recording(recording_id: int) -> str:
    """Fetch, encrypt and store a caller's recording, then delete it at the provider
    (service/recordings.py)."""
    with _app().app_context():
        return recordings.fetch(inbox.Services.current(), recording_id)


def retrain(run_id: int) -> str:
    """Train, evaluate and maybe switch to a new model (service/retraining.py); on the
    training worker only (its own queue), since it takes minutes."""
    from service import retraining
    from service.db import get_session

    app = _app()
    with app.app_context():
        return retraining.run(app, get_session(), run_id)


def sweep() -> dict:
    """Pick up what fell through: spooled messages, messages left waiting (a lost job,
    Redis was down), sends never queued or left half-done, stale drafts, expired numbers."""
    with _app().app_context():
        svc = inbox.Services.current()
        session, config = svc.session, svc.config
        spooled = inbox.import_spool(svc)
        cutoff = utcnow() - timedelta(seconds=config["WEBHOOK_BUDGET"] + 5)  # not a webhook's own
        reporter_ids = session.scalars(select(Message.reporter_id).distinct().where(
            Message.direction == "in", Message.status.in_(inbox.UNPROCESSED), Message.created_at < cutoff)).all()
        for reporter_id in reporter_ids:
            queue.schedule_pending(svc.redis, svc.queue, reporter_id, mark_ttl=svc.mark_ttl())
        recovered = _recover_sends(svc)
        sends = outbox.queued_ids(session, cutoff)
        for message_id in sends:
            queue.enqueue_send(svc.queue, message_id, unless_waiting=True)
        minutes = config.get("ALERT_DRAFT_TIMEOUT") or alert_flow().timeout_minutes
        abandoned = alerts.mark_abandoned(session, timedelta(minutes=minutes))
        purged = reporters.purge_expired_numbers(session)
        grouped = incidents.backfill(session)  # reports confirmed since the last sweep join their incident
        session.commit()
        broadcast_counts = broadcast_sending.sweep(svc)
        priority.tidy(svc.redis)
        callback_counts = callbacks.sweep(svc)
        recording_counts = recordings.sweep(svc)
        dropped_calls = voice_calls.sweep(svc)
    report = {"spooled": spooled, "reporters": len(reporter_ids), "sends": len(sends),
              "recovered": recovered, "abandoned": abandoned, "purged": purged, "broadcasts": broadcast_counts}
    if grouped:
        report["incidents"] = grouped
    if any(callback_counts.values()):  # named when it did something
        report["callbacks"] = callback_counts
    if any(recording_counts.values()):
        report["recordings"] = recording_counts
    if dropped_calls:
        report["dropped_calls"] = dropped_calls
    return report


def _recover_sends(svc) -> int:
    """Sends claimed and never settled (the worker died, the outcome was unknown)."""
    claimed_before = utcnow() - timedelta(seconds=svc.config["SEND_CLAIM_TIMEOUT"])
    count = 0
    for message in outbox.stale_claims(svc.session, claimed_before):
        reporter = outbox.current(svc.session, message.reporter_id) if message.reporter_id else None
        number = outbox.number_of(svc.session, svc.identity, message, reporter) if reporter else None
        status = outbox.recover(svc.session, message.id, svc.channels.get(message.provider), number,
                                reporters.aware(message.claimed_at))
        log.info("send %s recovered as %s", message.id, status)
        count += 1
    return count
