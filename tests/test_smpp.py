"""SMPP: the `alerte smpp` loop against a stand-in SMSC on loopback.

The loop runs in a thread with the app (fake engine, real database and Redis): a
deliver_sm is stored once and answered by a submit_sm through the same bind, long texts
go out as concatenated parts, concatenated inbound is reassembled, receipts move the
sent message, throttling is honoured, and a dropped link is bound again with nothing
lost or sent twice.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from rq import Retry
from sqlalchemy import func, select

from service import outbox, queue as queues
from service.channels import smpp as codec
from service.channels.base import SendError
from service.models import Message, Reporter
from service.channels.smpp_link import Link
from tests.conftest import REPORTER
from tests.smpp_standin import SmppStandin

SOURCE = REPORTER.lstrip("+")  # as the SMSC gives it (ton 1: international)
OTHER = "243990000002"


@pytest.fixture
def smsc():
    standin = SmppStandin(password="s3cret").start()
    yield standin
    standin.stop()


def smpp_entry(port: int, **extra) -> dict:
    """The SMPP channel of these tests, bound to the stand-in on `port`."""
    return {"name": "smpp", "kind": "smpp", "default": True, "host": "127.0.0.1", "port": port,
            "system_id": "alerte", "password": "s3cret", "source_addr": "1234", "numbers": ["1234"],
            "enquire_link_interval": 0.5, "reconnect_max": 0.4, "response_timeout": 1.5, "throughput": 50, **extra}


@pytest.fixture
def app_config(app_config, smsc):
    return {**app_config, "CHANNELS": json.dumps([smpp_entry(smsc.port)])}


@pytest.fixture
def link(app, smsc, monkeypatch):
    monkeypatch.setattr(queues, "SEND_RETRY", Retry(max=4, interval=1))
    running = Link(app, app.extensions["channels"].by_name["smpp"])
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    assert smsc.wait_bound(1)
    yield running
    running.stop()
    thread.join(10)
    assert not thread.is_alive()


def rows(db, *where) -> list[Message]:
    db.rollback()
    return list(db.scalars(select(Message).where(*where).order_by(Message.id)))


def wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def acked(smsc, sequence) -> bool:
    return smsc.wait_for(lambda: sequence in smsc.acks)


# -- the codec ---------------------------------------------------------------------------

def test_a_text_that_fits_gsm7_is_one_part_of_data_coding_0():
    coding, esm, parts = codec.split("é" * 160)
    assert (coding, esm, len(parts), len(parts[0])) == (codec.GSM7, 0, 1, 160)
    assert codec.decode(coding, parts[0]) == "é" * 160


def test_a_long_gsm7_text_is_split_into_153_septet_parts_without_cutting_an_escape():
    text = "a" * 152 + "€" + "b" * 10  # the euro sign is ESC + 0x65: it cannot straddle two parts
    coding, esm, parts = codec.split(text, reference=9)
    assert coding == codec.GSM7 and esm == codec.UDHI and len(parts) == 2
    assert parts[0][:6] == bytes([5, 0, 3, 9, 2, 1]) and parts[1][:6] == bytes([5, 0, 3, 9, 2, 2])
    assert len(parts[0]) - 6 == 152 and parts[1][6:8] == b"\x1b\x65"
    assert codec.decode(coding, parts[0][6:] + parts[1][6:]) == text


def test_a_character_outside_gsm7_makes_the_text_ucs2_in_67_character_parts():
    assert codec.split("ɛ" * 70)[0:2] == (codec.UCS2, 0)
    coding, esm, parts = codec.split("Mbotɛ " * 20)  # 120 characters
    assert coding == codec.UCS2 and len(parts) == 2 and len(parts[0]) == 6 + 134
    assert codec.decode(coding, b"".join(p[6:] for p in parts)) == "Mbotɛ " * 20


def test_receipt_states_map_onto_ours():
    class Pdu:
        esm_class, receipted_message_id, message_state, short_message = 4, None, None, b""
    text = "id:abc123 sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 stat:{} err:000 text:"
    for stat, ours in [("DELIVRD", "delivered"), ("UNDELIV", "undelivered"), ("EXPIRED", "undelivered"),
                       ("DELETED", "undelivered"), ("REJECTD", "failed"), ("ACCEPTD", "sent"), ("ENROUTE", "sent")]:
        Pdu.short_message = text.format(stat).encode()
        update = codec.parse_receipt(Pdu)
        assert (update.provider_id, update.status, update.error_code) == ("abc123", ours, None), stat
    Pdu.receipted_message_id, Pdu.message_state = b"tlv-id", 2  # the TLVs win over the text
    assert (codec.parse_receipt(Pdu).provider_id, codec.parse_receipt(Pdu).status) == ("tlv-id", "delivered")


def test_smsc_statuses_map_onto_send_errors():
    throttled = codec.send_error(codec.ESME_RTHROTTLED)
    assert throttled.retryable and throttled.retry_after and throttled.code == "0x58"
    assert codec.send_error(codec.ESME_RMSGQFUL).retryable
    invalid = codec.send_error(codec.ESME_RINVDSTADR)
    assert invalid.invalid_number and not invalid.retryable
    assert not codec.send_error(0x0A).retryable  # invalid source address: permanent


def test_the_channel_has_no_webhook_and_cannot_send_without_its_bind(app):
    channel = app.extensions["channels"].by_name["smpp"]
    assert channel.inbound_path() is None and channel.status_path() is None
    assert not [r for r in app.url_map.iter_rules() if "/webhooks/smpp" in r.rule]
    with pytest.raises(SendError) as refused:
        channel.send(REPORTER, "habari")
    assert refused.value.retryable and not refused.value.unknown


# -- the bind ----------------------------------------------------------------------------

def test_a_deliver_sm_is_stored_then_acknowledged_and_the_reply_is_submitted_through_the_bind(link, smsc, db,
                                                                                              engine):
    sequence = smsc.deliver(SOURCE, "watu wenye silaha wako kasindi")
    assert acked(smsc, sequence) and smsc.acks[sequence] == 0
    [inbound] = rows(db, Message.direction == "in")
    assert inbound.provider == "smpp" and inbound.body == "watu wenye silaha wako kasindi"
    assert smsc.wait_for(lambda: smsc.accepted(SOURCE))
    [submit] = smsc.accepted(SOURCE)
    assert submit.text == "Recu: watu wenye silaha wako kasindi" and submit.data_coding == 0
    assert submit.source == "1234" and submit.registered_delivery == 1 and submit.udh == b""
    assert wait(lambda: [m.status for m in rows(db, Message.direction == "out")] == ["sent"])
    [reply] = rows(db, Message.direction == "out")
    assert reply.provider_id == submit.message_id and reply.reply_to_id == inbound.id
    assert engine.texts == ["watu wenye silaha wako kasindi"]


def test_the_same_text_again_on_the_same_bind_after_its_answer_is_a_new_message(link, smsc, db, engine):
    for _ in range(2):  # "1" to two questions in a row
        assert acked(smsc, smsc.deliver(SOURCE, "1"))
    assert len(rows(db, Message.direction == "in")) == 2
    assert smsc.wait_for(lambda: len(smsc.accepted(SOURCE)) == 2)


def test_a_long_ucs2_message_goes_out_as_concatenated_parts_and_its_receipts_map_back(link, smsc, db, app):
    body = "Bato ya mandoki bakoti na mboka, bokima na nzela ya zando. Mbotɛ. " * 3  # UCS-2, 3 parts
    with app.app_context():
        from service.db import get_session
        from service.reporters import seen

        session = get_session()
        reporter = seen(session, app.extensions["identity"], REPORTER)
        message = outbox.record(session, reporter, body, provider="smpp")
        session.commit()
        message_id = message.id
        assert queues.enqueue_send(app.extensions["queue"], message_id)  # onto the bind's own queue
    assert smsc.wait_for(lambda: len(smsc.accepted(SOURCE)) == 3)
    parts = smsc.accepted(SOURCE)
    assert {p.data_coding for p in parts} == {codec.UCS2} and all(p.esm_class & codec.UDHI for p in parts)
    assert [p.concat[1:] for p in parts] == [(3, 1), (3, 2), (3, 3)] and len({p.concat[0] for p in parts}) == 1
    assert codec.decode(codec.UCS2, b"".join(p.data for p in parts)) == body
    assert wait(lambda: rows(db, Message.id == message_id)[0].status == "sent")
    assert rows(db, Message.id == message_id)[0].provider_id == parts[0].message_id
    # a receipt for the last part (TLV form) finds the message by its first part's id
    assert acked(smsc, smsc.receipt(parts[2].message_id, "DELIVRD", tlv=True))
    assert wait(lambda: rows(db, Message.id == message_id)[0].status == "delivered")


def test_a_concatenated_inbound_is_reassembled_before_it_is_stored(link, smsc, db, engine):
    text = "Watu wenye silaha wameingia kijijini usiku, wameua watu watatu na kuchoma nyumba. " * 3
    sequences = smsc.deliver_parts(SOURCE, text, reference=42, order=[2, 1])
    assert all(acked(smsc, s) for s in sequences)
    [inbound] = rows(db, Message.direction == "in")
    assert inbound.body == text and engine.calls[0]["text"]
    # UCS-2 and SAR options (no UDH) too
    text2 = "Bato ya mandoki bayei na mboka, tokimi na zamba. Mbotɛ na bino. " * 2
    assert all(acked(smsc, s) for s in smsc.deliver_parts(OTHER, text2, reference=300, sar=True))
    assert [m.body for m in rows(db, Message.direction == "in")] == [text, text2]


def test_a_ucs2_deliver_sm_is_read_as_ucs2(link, smsc, db):
    assert acked(smsc, smsc.deliver(SOURCE, "Mbotɛ, bato bakɔti", data_coding=codec.UCS2))
    assert [m.body for m in rows(db, Message.direction == "in")] == ["Mbotɛ, bato bakɔti"]


def test_a_receipt_marks_the_message_delivered_and_a_failure_is_kept(link, smsc, db):
    assert acked(smsc, smsc.deliver(SOURCE, "habari"))
    assert acked(smsc, smsc.deliver(OTHER, "mbote"))
    assert smsc.wait_for(lambda: len(smsc.accepted()) == 2)
    assert wait(lambda: [m.status for m in rows(db, Message.direction == "out")] == ["sent", "sent"])
    first, second = rows(db, Message.direction == "out")
    assert acked(smsc, smsc.receipt(first.provider_id, "DELIVRD"))
    assert acked(smsc, smsc.receipt(second.provider_id, "UNDELIV", err="011"))
    assert acked(smsc, smsc.receipt(first.provider_id, "ENROUTE"))  # late and out of order: no step back
    assert wait(lambda: [(m.status, m.error_code) for m in rows(db, Message.direction == "out")]
                == [("delivered", None), ("undelivered", "011")])


def test_a_throttled_submit_is_retried_later_and_sent_once(link, smsc, db):
    smsc.answer(SOURCE, codec.ESME_RTHROTTLED)
    assert acked(smsc, smsc.deliver(SOURCE, "habari"))
    assert smsc.wait_for(lambda: smsc.accepted(SOURCE), timeout=15)
    assert [s.status for s in smsc.submits] == [codec.ESME_RTHROTTLED, 0]
    assert wait(lambda: [m.status for m in rows(db, Message.direction == "out")] == ["sent"])
    [reply] = rows(db, Message.direction == "out")
    assert reply.attempts == 2 and reply.provider_id == smsc.accepted(SOURCE)[0].message_id


def test_an_invalid_destination_fails_the_message_without_retrying(link, smsc, db):
    smsc.answer(SOURCE, codec.ESME_RINVDSTADR)
    assert acked(smsc, smsc.deliver(SOURCE, "habari"))
    assert wait(lambda: [(m.status, m.error_code) for m in rows(db, Message.direction == "out")]
                == [("failed", "0x0B")])
    time.sleep(1.5)
    assert len(smsc.submits) == 1


def test_enquire_link_keeps_an_idle_link_alive(link, smsc):
    assert smsc.wait_for(lambda: smsc.enquire_links >= 2, timeout=5)
    assert smsc.binds == 1


def test_a_link_dropped_mid_conversation_is_bound_again_without_losing_or_duplicating(link, smsc, db, engine,
                                                                                      monkeypatch):
    # our answer to the first deliver_sm never reaches the SMSC (the link is dying): it
    # delivers the same PDU again on the next bind, and it is one message, answered once
    answer = link._respond
    lost = []

    def respond(request, command, *args, **kwargs):
        if command == "deliver_sm_resp" and not lost:
            lost.append(request.sequence)
            return False
        return answer(request, command, *args, **kwargs)
    monkeypatch.setattr(link, "_respond", respond)
    first = smsc.deliver(SOURCE, "watu wenye silaha wako kasindi")
    assert smsc.wait_for(lambda: len(smsc.accepted(SOURCE)) == 1) and first not in smsc.acks
    smsc.drop()
    assert smsc.wait_bound(2)
    again = smsc.deliver(SOURCE, "watu wenye silaha wako kasindi")
    following = smsc.deliver(SOURCE, "wameua watu watatu")
    assert acked(smsc, again) and acked(smsc, following)
    assert [m.body for m in rows(db, Message.direction == "in")] == ["watu wenye silaha wako kasindi",
                                                                     "wameua watu watatu"]
    assert smsc.wait_for(lambda: len(smsc.accepted(SOURCE)) == 2)
    assert [s.text for s in smsc.accepted(SOURCE)] == ["Recu: watu wenye silaha wako kasindi",
                                                       "Recu: wameua watu watatu"]
    assert engine.texts == ["watu wenye silaha wako kasindi", "wameua watu watatu"]


def test_the_same_short_answer_after_a_re_bind_is_a_new_message(link, smsc, db, engine):
    """Found by tests/faults: "2" acknowledged in time, the link re-bound, "2" again (the
    next question) was taken for a re-delivery and dropped. An SMSC does not deliver again
    what we acknowledged in time: it is the reporter writing again."""
    assert acked(smsc, smsc.deliver(SOURCE, "2"))
    assert smsc.wait_for(lambda: len(smsc.accepted(SOURCE)) == 1)
    smsc.drop()
    assert smsc.wait_bound(2)
    assert acked(smsc, smsc.deliver(SOURCE, "2"))
    assert smsc.wait_for(lambda: len(smsc.accepted(SOURCE)) == 2)
    assert [m.body for m in rows(db, Message.direction == "in")] == ["2", "2"]
    assert engine.texts == ["2", "2"]


def test_a_link_dropped_after_a_submit_leaves_the_message_for_an_operator_not_sent_twice(link, smsc, db):
    smsc.drop_after_submit = 1  # the SMSC may have it: no answer came
    assert acked(smsc, smsc.deliver(SOURCE, "habari"))
    assert wait(lambda: [(m.status, m.error_code) for m in rows(db, Message.direction == "out")]
                == [("failed", "unknown")])
    assert rows(db, Message.direction == "out")[0].failure_reason.startswith("unknown_outcome")
    assert smsc.wait_bound(2)
    assert acked(smsc, smsc.deliver(SOURCE, "mbote"))  # the conversation goes on on the new bind
    assert smsc.wait_for(lambda: len(smsc.accepted(SOURCE)) == 1)
    time.sleep(1.0)
    assert [s.text for s in smsc.submits] == ["Recu: habari", "Recu: mbote"]


def test_a_number_is_never_logged_in_clear(link, smsc, db, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    smsc.answer(SOURCE, codec.ESME_RTHROTTLED)
    assert acked(smsc, smsc.deliver(SOURCE, "habari"))
    assert smsc.wait_for(lambda: smsc.accepted(SOURCE), timeout=15)
    assert wait(lambda: [m.status for m in rows(db, Message.direction == "out")] == ["sent"])
    text = caplog.text
    assert "smpp" in text and SOURCE not in text and SOURCE[3:] not in text
    assert SOURCE[3:].encode().hex() not in text  # nor in smpplib's hex dumps of the PDUs
    assert db.scalar(select(func.count()).select_from(Reporter)) == 1
