"""Subscribers to safety broadcasts: a protection committee's list imported as CSV, people
added one by one through the API, groups, counts, and the retention that consent allows.
Real SQLite and PostgreSQL, real Redis; no number ever appears in a report, an answer or
an error."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from service import outbox, reporters, subscriber_import, subscribers
from service.cli import main
from service.models import Group, Reporter, Subscriber, utcnow

TOKEN = {"Authorization": "Bearer test-api-token"}
NOTE = "Protection committee Beni, paper form 2026-11"
# fake numbers of this test module (+24399000xxxx style)
BENI_FR = "+243990002001"
KAMANGO_SW = "+243990002002"
GOMA_LN = "+243990002003"
BUKAVU = "+243990002004"
STOPPED = "+243990002005"
OTHER = "+243990002006"
ENGLISH = "+243990002007"
TOO_SHORT = "+2439900020"
NUMBERS = (BENI_FR, KAMANGO_SW, GOMA_LN, BUKAVU, STOPPED, OTHER, ENGLISH, TOO_SHORT)


def assert_no_number(text: str, *numbers: str) -> None:
    """Neither the E.164 digits nor the national part of any test number is in `text`."""
    for number in numbers or NUMBERS:
        assert number[1:] not in text and number[4:] not in text, number


@pytest.fixture
def identity(app):
    return app.extensions["identity"]


@pytest.fixture
def channels(app):
    return app.extensions["channels"]


def import_text(db, identity, channels, text, **kwargs):
    kwargs.setdefault("source", "csv:beni.csv")
    kwargs.setdefault("consent_note", NOTE)
    return subscriber_import.import_csv(db, identity, channels, text, **kwargs)


def subscriber_of(db, identity, number) -> Subscriber | None:
    db.expire_all()
    reporter = reporters.find(db, identity, number)
    return db.scalar(select(Subscriber).where(Subscriber.reporter_id == reporter.id)) if reporter else None


# --- the CSV import ------------------------------------------------------------------------

COMMITTEE_CSV = "\ufeff" + "\r\n".join([
    "Phone;Language;Place;Groups",
    f"{BENI_FR};fr;Beni;Focal points",                       # line 2
    f"0{KAMANGO_SW[4:]};Kiswahili;gn:214718;focal points|Comité Kamango",  # line 3, national form
    f"{TOO_SHORT};fr;Beni;",                                  # line 4: invalid number
    f"{ENGLISH};english;Goma;",                               # line 5: unknown language
    "",                                                       # line 6: blank, skipped
    f"{BUKAVU};sw;Zzyzxq;",                                   # line 7: unknown place
    f"{STOPPED};sw;Dumba;",                                   # line 8: ambiguous place
    f"{BENI_FR};sw;Goma;",                                    # line 9: the same number again
    ";ln;Goma;",                                              # line 10: no number
    f"{GOMA_LN};LINGALA;CD6101;",                             # line 11
    f"{OTHER};fr;Goma;;x",                                    # line 12: more cells than columns
]) + "\r\n"


def test_a_committee_list_is_imported_and_its_bad_rows_reported_by_line(db, identity, channels):
    report = import_text(db, identity, channels, COMMITTEE_CSV)
    assert (report.created, report.updated) == (3, 0)  # lines 2, 3, 11
    reasons = {r["row"]: r["reason"] for r in report.rejected}
    assert sorted(reasons) == [4, 5, 7, 8, 9, 10, 12]
    assert reasons[4] == "phone: not a possible phone number"
    assert reasons[5].startswith("language: unknown language 'english'")
    assert reasons[7] == "place: unknown place 'Zzyzxq'"
    assert "Irumu" in reasons[8] and "Kibombo" in reasons[8] and "gn:8280505" in reasons[8]
    assert reasons[9] == "phone: the same number as line 2"
    assert reasons[10] == "phone: missing"
    assert reasons[12] == "row: more cells than the header has columns"
    assert_no_number(json.dumps(report.as_json()))
    assert_no_number("\n".join(report.lines()))

    beni = subscriber_of(db, identity, BENI_FR)
    assert (beni.status, beni.language, beni.place_key, beni.admin1_pcode, beni.admin2_pcode) == (
        "active", "fr", "CD6109", "CD61", "CD6109")
    assert (beni.consent_method, beni.consent_note, beni.source, beni.channel) == ("import", NOTE, "csv:beni.csv",
                                                                                    "twilio")
    assert beni.consent_at is not None and [g.name for g in beni.groups] == ["Focal points"]
    kamango = subscriber_of(db, identity, KAMANGO_SW)
    assert (kamango.language, kamango.place_name, kamango.admin2_pcode) == ("sw", "Kamango", "CD6107")
    assert kamango.lat == pytest.approx(0.6167)
    # "focal points" is the group "Focal points" (names compare case-insensitively); the other is created
    assert sorted(g.name for g in kamango.groups) == ["Comité Kamango", "Focal points"]
    assert len(db.scalars(select(Group)).all()) == 2
    assert subscriber_of(db, identity, GOMA_LN).language == "ln"
    assert subscriber_of(db, identity, BUKAVU) is None
    # the number is kept only encrypted, for sending
    assert identity.decrypt(reporters.find(db, identity, KAMANGO_SW).phone_encrypted) == KAMANGO_SW


def test_a_comma_file_imported_again_updates_and_brings_back_who_had_left(db, identity, channels):
    first = import_text(db, identity, channels, f"phone,language,place\n{BENI_FR},fr,Beni\n{GOMA_LN},ln,Goma\n")
    assert (first.created, first.updated, first.rejected) == (2, 0, [])
    subscribers.leave(db, subscriber_of(db, identity, GOMA_LN))
    db.commit()
    again = import_text(db, identity, channels,
                        f"PHONE,Place,channel,name,{OTHER}\n{BENI_FR},Kamango,twilio,Kasereka,\n{GOMA_LN},,,,\n")
    assert (again.created, again.updated, again.rejected) == (0, 2, [])
    assert again.ignored_columns == ["name", "(a value that looks like a number)"]  # a name is never stored
    assert_no_number(json.dumps(again.as_json()))
    beni = subscriber_of(db, identity, BENI_FR)
    assert (beni.place_key, beni.language) == ("gn:214718", "fr")  # an empty cell keeps what was there
    assert subscriber_of(db, identity, GOMA_LN).status == "active"


@pytest.mark.parametrize("text, reason", [
    ("", "bad header"),
    ("language,place\nfr,Beni\n", "no phone column"),
    ("phone,telephone\n1,2\n", "two columns are phone"),
])
def test_a_bad_header_imports_nothing(db, identity, channels, text, reason):
    report = import_text(db, identity, channels, text)
    assert report.created == 0 and report.rejected[0]["row"] == 1 and reason in report.rejected[0]["reason"]


def test_too_many_rows_import_nothing(db, identity, channels, monkeypatch):
    monkeypatch.setattr(subscriber_import, "MAX_ROWS", 2)
    report = import_text(db, identity, channels, f"phone\n{BENI_FR}\n{GOMA_LN}\n{OTHER}\n")
    assert report.created == 0 and report.rejected == [
        {"row": 4, "reason": "more than 2 rows: nothing imported; split the file"}]
    assert db.scalars(select(Subscriber)).all() == []


def test_an_unknown_channel_is_rejected_and_a_consent_note_is_required(db, identity, channels):
    report = import_text(db, identity, channels, f"phone,channel\n{BENI_FR},orange\n")
    assert report.rejected == [{"row": 2, "reason": "channel: unknown channel 'orange'; one of twilio"}]
    with pytest.raises(subscribers.Invalid, match="consent_note"):
        import_text(db, identity, channels, f"phone\n{BENI_FR}\n", consent_note="  ")


def test_someone_who_said_stop_stays_opted_out_when_imported(db, identity, channels):
    reporter = reporters.seen(db, identity, STOPPED)
    reporters.opt_out(db, reporter)
    db.commit()
    report = import_text(db, identity, channels, f"phone,language\n{STOPPED},sw\n{BENI_FR},fr\n")
    assert (report.created, report.opted_out) == (2, 1)
    db.expire_all()
    assert reporters.find(db, identity, STOPPED).opted_out is True
    assert subscriber_of(db, identity, STOPPED).status == "active"
    assert subscribers.counts(db)["opted_out"] == 1


# --- counts --------------------------------------------------------------------------------

def test_counts_by_language_province_territory_and_group(db, identity, channels):
    import_text(db, identity, channels, "\n".join([
        "phone,language,place,groups",
        f"{BENI_FR},fr,Beni,focal points", f"{KAMANGO_SW},sw,Kamango,focal points|youth",
        f"{GOMA_LN},ln,Goma,", f"{BUKAVU},sw,CD62,", f"{OTHER},,,"]))
    subscribers.leave(db, subscriber_of(db, identity, OTHER))
    subscribers.ensure_group(db, "empty")
    db.commit()
    counts = subscribers.counts(db)
    assert (counts["active"], counts["left"], counts["pending"], counts["opted_out"]) == (4, 1, 0, 0)
    assert counts["by_language"] == {"sw": 2, "fr": 1, "ln": 1}
    assert {p["pcode"]: (p["name"], p["count"]) for p in counts["by_province"]} == {
        "CD61": ("Nord-Kivu", 3), "CD62": ("Sud-Kivu", 1)}
    assert {t["pcode"]: (t["name"], t["province"], t["count"]) for t in counts["by_territory"]} == {
        "CD6109": ("Beni", "CD61", 1), "CD6107": ("Oicha", "CD61", 1), "CD6101": ("Goma", "CD61", 1),
        None: (None, None, 1)}  # a province-wide subscriber has no territory
    assert {g["name"]: g["count"] for g in counts["by_group"]} == {"focal points": 2, "youth": 1, "empty": 0}


# --- retention -----------------------------------------------------------------------------

def test_purge_keeps_an_active_subscribers_number_and_forgets_the_others(db, identity, channels):
    import_text(db, identity, channels, f"phone\n{BENI_FR}\n{GOMA_LN}\n")
    subscribers.leave(db, subscriber_of(db, identity, GOMA_LN))
    reporters.seen(db, identity, OTHER)  # wrote once, never subscribed
    for reporter in db.scalars(select(Reporter)):
        reporter.phone_expires_at = utcnow() - timedelta(days=1)
    db.commit()
    assert reporters.purge_expired_numbers(db) == 2
    db.commit()
    db.expire_all()
    beni = reporters.find(db, identity, BENI_FR)
    delivery = SimpleNamespace(broadcast_id=1)  # what the sender decrypts a broadcast's number with
    assert beni.phone_encrypted and outbox.number_of(db, identity, delivery, beni) == BENI_FR
    assert reporters.number_for_sending(identity, beni) is None  # its retention date alone has passed
    assert reporters.find(db, identity, GOMA_LN).phone_encrypted is None
    other = reporters.find(db, identity, OTHER)
    assert other.phone_encrypted is None and outbox.number_of(db, identity, delivery, other) is None


# --- the API -------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/subscribers"), ("post", "/api/v1/subscribers"), ("get", "/api/v1/groups"),
    ("post", "/api/v1/groups"), ("post", "/api/v1/groups/1/members")])
def test_the_subscriber_api_needs_the_token(client, method, path):
    assert getattr(client, method)(path).status_code == 401
    assert getattr(client, method)(path, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_person_is_added_then_updated_by_json_without_their_number_in_any_answer(client, db, identity):
    created = client.post("/api/v1/subscribers", headers=TOKEN, json={
        "phone": KAMANGO_SW, "language": "swahili", "place": "Kamango", "groups": ["Focal points"],
        "consent_note": "Focal point meeting, Kamango, verbal consent"})
    assert created.status_code == 201, created.json
    shown = created.json["subscriber"]
    assert shown == {"id": shown["id"], "status": "active", "language": "sw",
                     "place": {"key": "gn:214718", "name": "Kamango", "admin1": "CD61", "admin2": "CD6107"},
                     "groups": ["Focal points"], "channel": "twilio",
                     "consent": {"at": shown["consent"]["at"], "method": "api"}, "opted_out": False,
                     "created_at": shown["created_at"]}
    updated = client.post("/api/v1/subscribers", headers=TOKEN, json={
        "phone": "0" + KAMANGO_SW[4:], "language": "fr", "consent_note": "asked again by phone"})
    assert updated.status_code == 200 and updated.json["subscriber"]["id"] == shown["id"]
    assert updated.json["subscriber"]["language"] == "fr" and updated.json["subscriber"]["place"]["key"] == "gn:214718"
    reporter = reporters.find(db, identity, KAMANGO_SW)
    for response in (created, updated):
        text = response.get_data(as_text=True)
        assert_no_number(text)
        assert reporter.key not in text


@pytest.mark.parametrize("body, field", [
    ({"language": "fr", "consent_note": NOTE}, "phone"),
    ({"phone": TOO_SHORT, "consent_note": NOTE}, "phone"),
    ({"phone": BENI_FR}, "consent_note"),
    ({"phone": BENI_FR, "consent_note": NOTE, "language": "english"}, "language"),
    ({"phone": BENI_FR, "consent_note": NOTE, "place": "Dumba"}, "place"),
    ({"phone": BENI_FR, "consent_note": NOTE, "groups": "focal points"}, "groups"),
    ({"phone": BENI_FR, "consent_note": NOTE, "channel": "orange"}, "channel"),
    ({"phone": BENI_FR, "consent_note": "x" * 201}, "consent_note"),
])
def test_a_bad_json_subscriber_is_a_clear_error_naming_the_field(client, db, body, field):
    response = client.post("/api/v1/subscribers", headers=TOKEN, json=body)
    assert response.status_code == 400 and response.json["error"].startswith(field + ":")
    assert_no_number(response.get_data(as_text=True))
    db.expire_all()
    assert db.scalars(select(Subscriber)).all() == []


def test_a_csv_above_the_usual_body_limit_is_imported_through_the_api(client, db):
    rows = [f"+24399001{i:04d};fr;Beni;focal points" for i in range(3000)] + [f"{TOO_SHORT};fr;Beni;"]
    body = "\ufeffphone;language;place;groups\n" + "\n".join(rows) + "\n"
    assert len(body.encode()) > 64 * 1024  # the app's MAX_CONTENT_LENGTH
    response = client.post("/api/v1/subscribers?consent_note=" + NOTE, headers=TOKEN, data=body.encode(),
                           content_type="text/csv; charset=utf-8")
    assert response.status_code == 200, response.get_data(as_text=True)[:200]
    report = response.json["report"]
    assert (report["created"], report["updated"]) == (3000, 0)
    assert report["rejected"] == [{"row": 3002, "reason": "phone: not a possible phone number"}]
    assert_no_number(response.get_data(as_text=True), TOO_SHORT, "+243990010000", "+243990012999")
    assert client.post("/api/v1/subscribers", headers=TOKEN, data=body.encode(),
                       content_type="text/csv").json["error"].startswith("consent_note:")
    too_big = client.post("/api/v1/subscribers", headers=TOKEN, json={"phone": BENI_FR, "consent_note": "x" * 70000})
    assert too_big.status_code == 413  # JSON keeps the app's limit
    huge = client.post("/api/v1/subscribers?consent_note=x", headers=TOKEN, data=b"phone\n" + b"x" * (16 << 20),
                       content_type="text/csv")
    assert huge.status_code == 413  # a CSV may reach 16 MB


def test_listing_filters_and_pages_subscribers_with_counts(client, db, identity, channels):
    import_text(db, identity, channels, "\n".join([
        "phone,language,place,groups", f"{BENI_FR},fr,Beni,focal points", f"{KAMANGO_SW},sw,Kamango,focal points",
        f"{GOMA_LN},ln,Goma,", f"{BUKAVU},sw,Bukavu,"]))
    response = client.get("/api/v1/subscribers", headers=TOKEN)
    body = response.json
    assert body["counts"]["active"] == 4 and len(body["subscribers"]) == 4 and body["next"] is None
    assert_no_number(response.get_data(as_text=True))
    assert all(r.key not in response.get_data(as_text=True) for r in db.scalars(select(Reporter)))

    def places(query):
        listed = client.get("/api/v1/subscribers?" + query, headers=TOKEN).json["subscribers"]
        return [s["place"]["name"] for s in listed]

    assert places("province=CD61") == ["Beni", "Kamango", "Goma"]
    assert places("province=Sud-Kivu") == ["Bukavu"]
    assert places("territory=CD6107") == ["Kamango"]
    assert places("language=sw") == ["Kamango", "Bukavu"]
    assert places("group=Focal%20Points") == ["Beni", "Kamango"]
    assert places("status=left") == []
    first = client.get("/api/v1/subscribers?limit=2", headers=TOKEN).json
    assert len(first["subscribers"]) == 2 and first["next"] == first["subscribers"][1]["id"]
    assert places(f"limit=2&after={first['next']}") == ["Goma", "Bukavu"]
    for query in ("language=en", "status=gone", "province=CD6109", "group=nobody", "limit=many"):
        assert client.get("/api/v1/subscribers?" + query, headers=TOKEN).status_code == 400, query


def test_groups_are_created_once_whatever_the_case_and_get_members(client, db, identity, channels):
    created = client.post("/api/v1/groups", headers=TOKEN, json={"name": " Focal points ", "description": "CAN"})
    assert created.status_code == 201
    group = created.json["group"]
    assert group == {"id": group["id"], "name": "Focal points", "description": "CAN", "members": 0, "active": 0}
    again = client.post("/api/v1/groups", headers=TOKEN, json={"name": "FOCAL POINTS"})
    assert again.status_code == 409 and again.json["id"] == group["id"]
    assert client.post("/api/v1/groups", headers=TOKEN, json={"name": "x" * 65}).status_code == 400
    assert client.post("/api/v1/groups", headers=TOKEN, json={"name": "  "}).status_code == 400

    import_text(db, identity, channels, f"phone\n{BENI_FR}\n{GOMA_LN}\n")
    ids = [s.id for s in db.scalars(select(Subscriber).order_by(Subscriber.id))]
    path = f"/api/v1/groups/{group['id']}/members"
    added = client.post(path, headers=TOKEN, json={"subscriber_ids": ids + [ids[-1] + 1000]})
    assert added.json == {"group": group["id"], "added": 2, "already": 0, "unknown": [ids[-1] + 1000]}
    assert client.post(path, headers=TOKEN, json={"subscriber_ids": ids}).json["already"] == 2
    assert client.post(path, headers=TOKEN, json={"subscriber_ids": "all"}).status_code == 400
    assert client.post("/api/v1/groups/99999/members", headers=TOKEN, json={"subscriber_ids": ids}).status_code == 404
    listed = client.get("/api/v1/groups", headers=TOKEN).json["groups"]
    assert listed == [dict(group, members=2, active=2)]


# --- the command line ----------------------------------------------------------------------

@pytest.fixture
def cli_environment(app, app_config, monkeypatch):
    """The environment `alerte` reads, pointing at the test database and Redis."""
    for name in ("ALERTE_ENV", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "API_TOKEN", "TWILIO_ACCOUNT_SID",
                 "TWILIO_AUTH_TOKEN", "TWILIO_API_BASE", "TWILIO_FROM", "PUBLIC_BASE_URL", "SPOOL_DIR"):
        monkeypatch.setenv(name, str(app_config[name]))
    for name in ("CHANNELS", "CHANNELS_FILE", "REPORTER_KEY_SECRET", "PHONE_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_alerte_subscribers_import_and_counts(cli_environment, db, identity, tmp_path, capsys):
    path = tmp_path / "committee.csv"
    path.write_text(f"phone;language;place\n{BENI_FR};fr;Beni\n{TOO_SHORT};fr;Beni\n", encoding="utf-8")
    assert main(["subscribers", "import", str(path), "--consent-note", NOTE]) == 0  # 0 even with a rejection
    out = capsys.readouterr().out
    assert "created: 1" in out and "rejected: 1" in out and "line 3: phone: not a possible phone number" in out
    assert_no_number(out)
    beni = subscriber_of(db, identity, BENI_FR)
    assert (beni.source, beni.consent_method, beni.consent_note) == ("csv:committee.csv", "import", NOTE)

    assert main(["subscribers", "counts"]) == 0
    assert json.loads(capsys.readouterr().out)["by_language"] == {"fr": 1}
    assert main(["subscribers", "import", str(tmp_path / "missing.csv"), "--consent-note", NOTE]) == 2
    (tmp_path / "latin1.csv").write_bytes("phone;place\n+243990002001;Kanyabayonga é\n".encode("latin-1"))
    assert main(["subscribers", "import", str(tmp_path / "latin1.csv"), "--consent-note", NOTE]) == 2


def test_people_who_write_or_sign_up_during_an_import_are_imported_once(app, db, identity, channels, database_url):
    """PostgreSQL, where another process can commit between the import's read and its
    insert: a first SMS from one person, an SMS sign-up of another, both mid-batch."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite writers take turns: nothing commits inside an import's transaction")
    signing_up = reporters.seen(db, identity, GOMA_LN)  # known before, not yet a subscriber
    db.commit()
    other = app.extensions["db"].engine

    def first_sms(number, real=identity.encrypt):  # as inbox.receive would, in its own transaction
        if number == BENI_FR and not first_sms.done:
            first_sms.done = True
            with other.begin() as conn:
                conn.execute(Reporter.__table__.insert().values(key=identity.key(BENI_FR), opted_out=False))
        return real(number)
    first_sms.done = False

    def sign_up(number, real=channels.for_recipient):
        if number == GOMA_LN and not sign_up.done:
            sign_up.done = True
            with other.begin() as conn:
                conn.execute(Subscriber.__table__.insert().values(reporter_id=signing_up.id, status="pending"))
        return real(number)
    sign_up.done = False

    identity.encrypt, channels.for_recipient = first_sms, sign_up
    try:
        report = import_text(db, identity, channels, f"phone,language\n{BENI_FR},fr\n{GOMA_LN},ln\n{BUKAVU},sw\n")
    finally:
        del identity.encrypt, channels.for_recipient
    assert first_sms.done and sign_up.done
    assert (report.created, report.updated, report.rejected) == (2, 1, [])
    db.expire_all()
    assert len(db.scalars(select(Reporter)).all()) == 3
    subscriptions = db.scalars(select(Subscriber)).all()
    assert len(subscriptions) == 3 and {s.status for s in subscriptions} == {"active"}
    assert subscriber_of(db, identity, GOMA_LN).language == "ln"
    assert identity.decrypt(reporters.find(db, identity, BENI_FR).phone_encrypted) == BENI_FR
