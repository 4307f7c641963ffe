"""An analyst takes an alert through its life in the browser, new → acknowledged →
verified → dispatched → closed, telling the reporter by SMS at acknowledgement and at
dispatch (the box on the form): the SMS reach the Twilio stand-in. Only the steps the
table allows are offered, and a step it refuses (a form changed in the page) changes
nothing."""

from __future__ import annotations

from sqlalchemy import select

from service.models import Alert, AlertEvent, AuditEntry, Message
from tests.browser import factories
from tests.browser.pages import button, click, flashes, text_of, type_into, values

NUMBER = "+243990007001"


def steps_offered(browser) -> list[str]:
    return values(browser, 'form.triage button[name="to"]')


def tell_box(browser):
    found = browser.find_elements("css selector", 'form.triage input[name="tell"]')
    return found[0] if found else None


def test_an_alert_goes_from_new_to_closed_and_the_reporter_is_told_twice(browser, live, login, screenshot):
    with live.session() as db:
        kiwanja = factories.place(db, **factories.KIWANJA)
        who = factories.reporter(db, live, NUMBER, language="sw")
        alert_id = factories.alert(db, place_id=kiwanja, reporter_id=who, reference="482913", language="sw",
                                   description="Watu wenye silaha wamechoma nyumba", perpetrator="ADF")
        factories.alert(db, category="DISPLACEMENT", place_id=kiwanja, hours_ago=3, reference="482914")
        factories.alert(db, category="LAND_CONFLICT", hours_ago=20, reference="482915", place_text="Nyamilima")
    analyst = login(browser, live, roles=("analyst",))
    assert browser.current_url.endswith("/console/alerts")
    assert "3 alertes" in text_of(browser)
    screenshot(browser, "inbox")
    click(browser, f'a[href="/console/alerts/{alert_id}"]')
    page = text_of(browser)
    assert "Kiwanja" in page and "Rutshuru" in page and "ADF" in page and NUMBER not in page
    assert steps_offered(browser) == ["acknowledged"]  # from "new", nothing else is offered
    assert tell_box(browser).is_selected()  # telling the reporter is the default
    screenshot(browser, "alert")

    # a step the table refuses, sent anyway (the page's button changed): refused, nothing moves
    browser.execute_script('document.querySelector(\'button[name="to"]\').value = "closed"')
    click(browser, button(browser, "closed"))
    assert "ne peut pas devenir « Clôturée » : rien n'a été modifié" in " ".join(flashes(browser))
    assert steps_offered(browser) == ["acknowledged"]
    with live.session() as db:
        assert db.get(Alert, alert_id).status == "new"
        assert not db.scalars(select(AlertEvent)).all()

    type_into(browser, "note", "appel au chef de village")
    click(browser, button(browser, "acknowledged"))
    said = " ".join(flashes(browser))
    assert "L'alerte est maintenant « Pris en compte »." in said and "L'informateur recevra un SMS." in said
    assert steps_offered(browser) == ["verified", "unverifiable", "false", "duplicate"]
    assert tell_box(browser) is None  # no SMS goes with these steps
    live.run_jobs()
    [acknowledged] = live.standin.sent
    assert acknowledged.to == NUMBER and "482913" in acknowledged.body
    assert "silaha" not in acknowledged.body  # the reference only, never what was reported

    click(browser, button(browser, "verified"))
    assert steps_offered(browser) == ["dispatched"]
    assert tell_box(browser).is_selected()
    click(browser, button(browser, "dispatched"))
    assert "L'informateur recevra un SMS." in " ".join(flashes(browser))
    live.run_jobs()
    assert [m.to for m in live.standin.sent] == [NUMBER, NUMBER]
    dispatched = live.standin.sent[1]
    assert "482913" in dispatched.body and dispatched.body != acknowledged.body

    click(browser, button(browser, "closed"))
    assert steps_offered(browser) == []
    assert "Plus d'étape possible : cette alerte est clôturée." in text_of(browser)
    history = text_of(browser, "ol.history")
    assert "appel au chef de village" in history and analyst.username in history

    with live.session() as db:
        assert db.get(Alert, alert_id).status == "closed"
        moves = db.execute(select(AlertEvent.from_status, AlertEvent.to_status, AlertEvent.operator_id)
                           .order_by(AlertEvent.id)).all()
        assert moves == [("new", "acknowledged", analyst.id), ("acknowledged", "verified", analyst.id),
                         ("verified", "dispatched", analyst.id), ("dispatched", "closed", analyst.id)]
        told = db.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)).all()
        assert [(m.reply_context, m.status, m.provider_id) for m in told] == [
            ({"alert": alert_id, "event": "acknowledged"}, "sent", acknowledged.sid),
            ({"alert": alert_id, "event": "dispatched"}, "sent", dispatched.sid)]
        audited = list(db.scalars(select(AuditEntry.action).where(AuditEntry.action.like("alert.%"))
                                  .order_by(AuditEntry.id)))
        assert audited == ["alert.acknowledged", "alert.reporter_told", "alert.verified", "alert.dispatched",
                           "alert.reporter_told", "alert.closed"]
