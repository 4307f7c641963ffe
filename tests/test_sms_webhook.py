"""The SMS webhook as Twilio and reporters see it: signatures, replies, duplicates, limits."""

from __future__ import annotations

from sqlalchemy import func, select

from service.models import Message, Reporter
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, REPORTER, new_sid, replies

PATH = "/webhooks/twilio/sms"


def _params(body="watu wenye silaha wako kasindi", sender=REPORTER, sid=None):
    return {"MessageSid": sid or new_sid(), "AccountSid": ACCOUNT_SID, "From": sender,
            "To": "+243990000000", "Body": body, "NumMedia": "0"}


def _count(db, *where) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(Message).where(*where))


def test_a_forged_signature_is_refused_and_nothing_is_stored(client, db, engine):
    params = _params()
    response = client.post(PATH, data=params, headers={"X-Twilio-Signature": "Zm9yZ2VkIHNpZ25hdHVyZQ=="})
    assert response.status_code == 403
    assert _count(db) == 0 and db.scalar(select(func.count()).select_from(Reporter)) == 0
    assert engine.calls == []


def test_an_unsigned_request_is_refused(client, db):
    assert client.post(PATH, data=_params()).status_code == 403
    assert _count(db) == 0


def test_a_signature_for_another_url_is_refused(client, db, sign):
    params = _params()
    # signed for the Host the request reached, not the configured public URL
    signature = sign("http://localhost" + PATH, params)
    assert client.post(PATH, data=params, headers={"X-Twilio-Signature": signature}).status_code == 403
    signature = sign(PUBLIC_BASE_URL + "/webhooks/twilio/status", params)
    assert client.post(PATH, data=params, headers={"X-Twilio-Signature": signature}).status_code == 403
    assert _count(db) == 0


def test_a_signed_sms_gets_the_engines_reply_in_twiml(text_in, db, engine):
    response = text_in("watu wenye silaha wako kasindi")
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert replies(response) == ["Recu: watu wenye silaha wako kasindi"]
    inbound = db.scalar(select(Message).where(Message.direction == "in"))
    outbound = db.scalar(select(Message).where(Message.direction == "out"))
    assert inbound.status == "processed" and inbound.conversation_id is not None
    assert outbound.reply_to_id == inbound.id and outbound.status == "handed" and outbound.segments == 1
    call = engine.calls[0]
    assert call["sender"] == db.get(Reporter, inbound.reporter_id).key
    assert call["metadata"]["message_id"] == inbound.id
    assert call["metadata"]["channel"] == "sms"
    assert call["metadata"]["conversation_id"] == inbound.conversation_id
    assert call["metadata"]["language"] is None
    assert call["metadata"]["received_at"].endswith("+00:00")


def test_the_rendered_payloads_of_one_turn_make_one_sms(text_in, db, engine):
    engine.reply = lambda text, md: [{"msg": "acknowledged", "lang": "sw"}, {"msg": "ask_place", "lang": "sw"}]
    response = text_in("habari")
    [reply] = replies(response)
    assert "\n" in reply
    db.rollback()
    assert db.scalar(select(Message).where(Message.direction == "out")).language == "sw"


def test_twilio_retrying_a_webhook_gets_an_empty_answer_and_no_second_reply(text_in, db, engine):
    sid = new_sid()
    first = text_in("bato ya mandoki bakoti na mboka", sid=sid)
    second = text_in("bato ya mandoki bakoti na mboka", sid=sid)
    assert replies(first) == ["Recu: bato ya mandoki bakoti na mboka"]
    assert second.status_code == 200 and replies(second) == []
    assert _count(db, Message.direction == "in") == 1
    assert _count(db, Message.direction == "out") == 1
    assert len(engine.calls) == 1


def test_a_request_without_sender_or_sid_is_a_clear_400(client, sign, db):
    for missing in ("From", "MessageSid"):
        params = _params()
        del params[missing]
        response = client.post(PATH, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + PATH, params)})
        assert response.status_code == 400
        assert b"required" in response.data
    params = _params(sender="not-a-number")
    response = client.post(PATH, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + PATH, params)})
    assert response.status_code == 400
    assert _count(db) == 0


def test_a_national_number_is_the_same_reporter_as_its_international_form(text_in, db):
    text_in("bjr", sender="0990000001")
    text_in("bjr encore", sender=REPORTER)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Reporter)) == 1


def test_empty_emoji_and_very_long_bodies_are_stored_and_answered(text_in, db, engine):
    assert text_in("").status_code == 200
    emoji = text_in("🔥🔥 wameshambulia 😢")
    assert emoji.status_code == 200 and replies(emoji)[0].startswith("Recu:")
    long_body = "Watu wenye silaha " * 278  # 5,004 characters
    long = text_in(long_body)
    assert long.status_code == 200
    db.rollback()
    bodies = [m.body for m in db.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))]
    assert bodies == ["", "🔥🔥 wameshambulia 😢", long_body]  # stored whole
    assert len(engine.calls[-1]["text"]) == 1600  # the engine gets at most one long SMS
    assert engine.texts[0] == "🔥🔥 wameshambulia 😢"  # the empty one got help without the engine


def test_a_request_over_64_kb_is_refused_with_413(client, sign, db):
    params = _params(body="x" * 70_000)
    response = client.post(PATH, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + PATH, params)})
    assert response.status_code == 413
    assert _count(db) == 0


def test_help_goes_to_the_engine_as_a_forced_intent(text_in, engine):
    text_in("aide")
    assert engine.texts == ["/help"]


def test_choosing_a_language_is_stored_then_told_to_the_engine(text_in, db, engine):
    text_in("Lingala")
    assert engine.texts == ['/choose_language{"language":"ln"}']
    db.rollback()
    assert db.scalar(select(Reporter)).language == "ln"
    text_in("mbote")
    assert engine.calls[-1]["metadata"]["language"] == "ln"


def test_a_delivery_receipt_never_moves_a_status_backwards(app, client, sign, db):
    from service import outbox

    reporter = Reporter(key="k" * 64, opted_out=False)
    db.add(reporter)
    db.flush()
    message = outbox.record(db, reporter, "Merci", status="sending", provider="twilio")
    message.provider_id = "SM" + "a" * 32
    db.commit()
    path = "/webhooks/twilio/status"

    def receipt(status, error=None):
        params = {"MessageSid": message.provider_id, "MessageStatus": status, "AccountSid": ACCOUNT_SID}
        if error:
            params["ErrorCode"] = error
        response = client.post(path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, params)})
        db.rollback()
        return response.status_code, db.get(Message, message.id).status

    assert receipt("sent") == (204, "sent")
    assert receipt("queued") == (204, "sent")  # late, out of order
    assert receipt("delivered") == (204, "delivered")
    assert receipt("sent") == (204, "delivered")  # repeated
    assert receipt("undelivered", "30003") == (204, "delivered")
    forged = client.post(path, data={"MessageSid": message.provider_id, "MessageStatus": "failed"},
                         headers={"X-Twilio-Signature": "bm9wZQ=="})
    assert forged.status_code == 403
    params = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "delivered"}
    unknown = client.post(path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, params)})
    assert unknown.status_code == 204
