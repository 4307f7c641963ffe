"""The SMS sign-up for safety broadcasts through the webhook, the inbox and the database
(service/signup.py around bot/subscription.py), on SQLite and PostgreSQL.

The engine is the fake one: a sign-up never reaches it, and what the sign-up hands back
must reach it unchanged.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from service import reporters
from service.models import Reporter, Subscriber, utcnow
from tests.conftest import REPORTER, replies

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
def say(text_in):
    """say(body) -> the reply's text (one TwiML message expected)."""
    def send(body: str, sender: str = REPORTER) -> str:
        response = text_in(body, sender=sender)
        assert response.status_code == 200
        texts = replies(response)
        assert len(texts) == 1, texts
        return texts[0]
    return send


def row(db, identity, number: str = REPORTER) -> Subscriber | None:
    db.expire_all()
    reporter = reporters.find(db, identity, number)
    if reporter is None:
        return None
    return db.scalar(select(Subscriber).where(Subscriber.reporter_id == reporter.id))


@pytest.fixture
def identity(app):
    return app.extensions["identity"]


def test_join_consent_place_language_makes_an_active_subscriber(db, identity, say, engine):
    assert "1 Ndiyo 2 Hapana" in say("JIUNGE")
    pending = row(db, identity)
    assert pending.status == "pending" and pending.signup["step"] == "consent"
    assert "kijiji ama mji gani" in say("1")
    assert "Kiswahili" in say("Beni")  # the language menu, in the join word's language
    done = say("3")  # Lingala
    assert "Beni" in done
    sub = row(db, identity)
    assert (sub.status, sub.language, sub.place_name, sub.admin2_pcode) == ("active", "ln", "Beni", "CD6109")
    assert sub.channel == "twilio" and sub.consent_method == "sms" and sub.signup is None
    assert sub.consent_note.startswith("sms, message ") and sub.consent_at is not None
    assert db.scalar(select(Reporter.language).where(Reporter.id == sub.reporter_id)) == "ln"
    assert engine.calls == []  # none of it went to the conversation


def test_refusing_consent_leaves_no_subscriber(db, identity, say, engine):
    say("S'ABONNER")
    assert "vous ne serez pas inscrit" in say("2")  # the refusal, in the join word's French
    assert row(db, identity) is None
    say("1")  # now an ordinary message
    assert engine.texts == ["1"]


def test_the_refusal_names_the_join_word(db, identity, say):
    say("JIUNGE")
    assert "JIUNGE" in say("2")
    assert row(db, identity) is None


def test_a_report_during_the_sign_up_ends_it_and_goes_to_the_conversation(db, identity, say, engine):
    say("JIUNGE")
    say("1")
    text = "watu wenye silaha wameingia kamango usiku"  # lower case, as the engine reads it
    say(text)
    assert engine.texts == [text]
    assert row(db, identity) is None  # never consented to the end: nothing kept
    say("1")  # the answer to the conversation's question, not a consent
    assert engine.texts == [text, "1"]


def test_stop_during_the_sign_up_opts_out_and_join_opts_in_again(db, identity, say):
    say("JIUNGE")
    say("STOP")
    reporter = reporters.find(db, identity, REPORTER)
    db.refresh(reporter)
    assert reporter.opted_out and row(db, identity) is None
    assert "1 Ndiyo 2 Hapana" in say("JIUNGE")  # asking to join lifts the STOP, as START does
    db.refresh(reporter)
    assert not reporter.opted_out


def test_a_forgotten_sign_up_expires(app, db, identity, say, engine):
    say("JIUNGE")
    old = utcnow() - timedelta(minutes=app.config["CONVERSATION_TIMEOUT"] + 1)
    db.execute(update(Subscriber).values(updated_at=old))
    db.commit()
    say("1")
    assert engine.texts == ["1"] and row(db, identity) is None


def test_an_active_subscriber_can_move_and_keeps_receiving_meanwhile(db, identity, say):
    for text in ("JOIN", "1", "Goma", "1"):
        say(text)
    assert row(db, identity).place_name == "Goma"
    say("JOIN")
    assert row(db, identity).status == "active"  # still reached while the new sign-up runs
    say("1")
    say("Bunia")
    say("1")
    sub = row(db, identity)
    assert (sub.status, sub.place_name, sub.admin1_pcode) == ("active", "Bunia", "CD54")


def test_an_active_subscriber_refusing_again_has_left(db, identity, say):
    for text in ("JOIN", "1", "Goma", "1"):
        say(text)
    say("JOIN")
    say("2")
    assert row(db, identity).status == "left"


def test_yes_answers_the_consent_question_not_start(db, identity, say):
    say("JIUNGE")
    reply = say("NDIYO")
    assert "kijiji ama mji gani" in reply and row(db, identity).signup["step"] == "place"
