"""The console's simulator (service/console/simulator.py), on real SQLite and PostgreSQL
with the FakeEngine (it answers "Recu: <text>"): an operator types as a reporter, the
message goes through service.inbox.receive on the simulator channel and the reply is
shown; nothing is sent to a phone (the Twilio stand-in receives nothing, no job is
queued); the test identity is no real number; forms need their CSRF token; the typed
text is escaped."""

from __future__ import annotations

import phonenumbers
import pytest
from sqlalchemy import select

import service.console.simulator as simulator  # the pages, until "simulator" is in service.console.PAGES
from service import inbox
from service.channels.base import SendError
from service.models import Alert, Message, Reporter
from service.privacy import normalise
from tests.test_console import (  # noqa: F401  fixtures
    admin, analyst, csrf, db, make_operator, post_form, shown, signed_in,
)

PAGE = "/console/simulator"


@pytest.fixture
def translator(db):
    return make_operator(db, "traductrice", ["translator"])


def say(client, body: str):
    return post_form(client, PAGE, PAGE, body=body)


def stored(db, provider=simulator.PROVIDER) -> list[Message]:
    db.rollback()
    return list(db.scalars(select(Message).where(Message.provider == provider).order_by(Message.id)))


def test_flow_editors_and_analysts_use_it_others_do_not(client, db, translator, analyst, app):
    assert client.get(PAGE).status_code == 302  # to the login
    make_operator(db, "diffuseur", ["broadcaster"])
    signed_in(client, "diffuseur")
    assert client.get(PAGE).status_code == 403
    for username in ("traductrice", "analyste"):
        other = app.test_client()
        signed_in(other, username)
        page = other.get(PAGE)
        assert page.status_code == 200 and "Simulateur" in shown(page)
        assert 'href="/console/simulator"' in page.get_data(as_text=True)  # the nav link


def test_a_message_goes_through_inbox_receive_and_the_reply_is_shown(client, db, translator, engine,
                                                                     twilio_standin, app, monkeypatch):
    calls = []
    real = inbox.receive
    monkeypatch.setattr(inbox, "receive", lambda svc, channel, inbound: calls.append((channel, inbound))
                        or real(svc, channel, inbound))
    signed_in(client, "traductrice")
    answer = say(client, "Attaque à Kiwanja ce matin")
    assert answer.status_code == 302
    channel, inbound = calls[0]
    assert channel.name == "simulator" and channel.inline_replies
    assert inbound.sender == simulator.test_number(translator) and inbound.provider_id.startswith("sim-")
    assert engine.texts == ["attaque a kiwanja ce matin"]  # what Rasa reads
    page = shown(client.get(PAGE))
    assert "Attaque à Kiwanja ce matin" in page and "Recu: attaque a kiwanja ce matin" in page
    rows = stored(db)
    assert [(m.direction, m.status) for m in rows] == [("in", "processed"), ("out", "handed")]
    assert rows[0].reporter_id == rows[1].reporter_id
    say(client, "Bonjour")
    inbound_ids = [m.provider_id for m in stored(db) if m.direction == "in"]
    assert len(inbound_ids) == len(set(inbound_ids)) == 2  # a provider id of its own per message
    assert "Recu: bonjour" in shown(client.get(PAGE))
    # nothing left for a phone: no send, no job
    assert twilio_standin.sent == []
    assert app.extensions["queue"].count == 0
    assert stored(db, "twilio") == []


def test_the_understood_fields_are_the_test_reporters_draft(client, db, translator):
    signed_in(client, "traductrice")
    say(client, "Attaque")
    reporter_id = stored(db)[0].reporter_id
    db.add(Alert(reporter_id=reporter_id, status="draft", category="ATTACK", place_text="Kiwanja <centre>",
                 people_affected=3, perpetrator="hommes armés", channel="sms"))
    db.commit()
    page = client.get(PAGE).get_data(as_text=True)
    assert "Kiwanja &lt;centre&gt;" in page and "hommes armés" in page and ">3<" in page
    assert "brouillon" in page
    # a new conversation starts afresh: the old draft and messages are not this one's
    post_form(client, PAGE, "/console/simulator/new")
    page = shown(client.get(PAGE))
    assert "Kiwanja" not in page and "Recu: attaque" not in page
    db.rollback()
    assert db.get(Reporter, reporter_id).language is None


def test_the_new_conversation_restarts_the_bot(client, db, translator, engine):
    signed_in(client, "traductrice")
    say(client, "Bonjour")
    post_form(client, PAGE, "/console/simulator/new")
    assert engine.texts[-1] == "/restart"
    say(client, "Encore")
    rows = stored(db)
    assert rows[0].conversation_id != rows[-1].conversation_id


def test_nothing_is_sent_when_the_engine_is_down_and_the_operator_is_told(client, db, translator, engine,
                                                                          twilio_standin, app):
    engine.down = True
    signed_in(client, "traductrice")
    say(client, "Attaque à Rutshuru")
    page = shown(client.get(PAGE))
    assert "pas disponible" in page and "Attaque à Rutshuru" in page
    rows = stored(db)
    assert [(m.direction, m.status) for m in rows] == [("in", "failed")]  # never retried by a job
    assert twilio_standin.sent == [] and app.extensions["queue"].count == 0


def test_the_simulator_channel_never_sends(app):
    channel = simulator.SimulatorChannel(app.config)
    with pytest.raises(SendError):
        channel.send(simulator.test_number(1), "x")
    assert channel.reply(["a", "b"]) == ["a", "b"]
    assert channel.name == "simulator" and channel.inline_replies


@pytest.mark.parametrize("operator_id", [1, 42, 99999])
def test_the_test_identity_is_no_real_number(operator_id):
    number = simulator.test_number(operator_id)
    assert normalise(number) == number and simulator.is_test_number(number)
    parsed = phonenumbers.parse(number, None)
    assert not phonenumbers.is_valid_number(parsed)  # no network's range: no phone has it
    assert number != simulator.test_number(operator_id + 1)


def test_forms_need_their_csrf_token(client, db, translator, engine):
    signed_in(client, "traductrice")
    assert client.post(PAGE, data={"body": "Attaque"}).status_code == 400
    assert client.post("/console/simulator/new").status_code == 400
    assert engine.calls == [] and stored(db) == []


def test_the_typed_text_and_the_reply_are_escaped(client, db, translator):
    signed_in(client, "traductrice")
    say(client, "<script>alert(1)</script>")
    page = client.get(PAGE).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_empty_message_is_refused(client, db, translator, engine):
    signed_in(client, "traductrice")
    say(client, "   ")
    assert "Écrivez d'abord un message." in shown(client.get(PAGE))
    assert engine.calls == []


def test_english(client, db, translator):
    signed_in(client, "traductrice")
    client.get("/console/language/en")
    page = shown(client.get(PAGE))
    assert "Simulator" in page and "Nothing is ever sent to a phone." in page


# --- nothing of the simulator reaches a phone or the real data -------------------------------

def test_a_queued_simulator_message_is_suppressed_by_the_outbox_whatever_path_queued_it(
        app, client, db, translator, twilio_standin):
    """The spool or a retry could queue a reply to the test identity: the outbox refuses."""
    from service import outbox
    signed_in(client, "traductrice")
    say(client, "bonjour")
    inbound = stored(db)[0]
    reply = Message(direction="out", channel="sms", provider=simulator.PROVIDER, reporter_id=inbound.reporter_id,
                    body="a later reply", status="queued", attempts=0)
    db.add(reply)
    db.commit()
    with app.app_context():
        svc = inbox.Services.current()
        assert outbox.send(svc.session, reply.id, svc.channels, svc.identity, 3) == "suppressed"
    assert twilio_standin.sent == []


def test_a_simulator_subscriber_is_no_broadcast_recipient(db, translator, client):
    from service import targeting
    from service.models import Subscriber
    signed_in(client, "traductrice")
    say(client, "bonjour")
    reporter_id = stored(db)[0].reporter_id
    db.add(Subscriber(reporter_id=reporter_id, language="fr", channel=simulator.PROVIDER, status="active"))
    db.commit()
    page, _ = targeting.recipients(db, targeting.Targets(everyone=True))
    assert reporter_id not in {r.reporter_id for r in page}


def test_a_confirmed_simulator_alert_stays_out_of_the_inbox_and_the_export(client, db, translator, admin):
    from service import export
    signed_in(client, "traductrice")
    say(client, "bonjour")
    reporter_id = stored(db)[0].reporter_id
    alert = Alert(status="new", category="ATTACK", channel="sms", reporter_id=reporter_id)
    db.add(alert)
    db.commit()
    client.get("/console/logout")
    signed_in(client, "admin")
    assert client.get(f"/console/alerts/{alert.id}").status_code == 404
    assert f'href="/console/alerts/{alert.id}"' not in client.get("/console/alerts").get_data(as_text=True)
    rows = list(export.lines(db, filters=export.Filters(), include_restricted=True))
    assert len(rows) == 2  # the header and the HXL row only
