"""The HXL CSV export of alerts (service/export.py) and its API (service/api_console.py):
DOMAIN.md's hashtags, no reporter identity, sexual violence only when allowed, no
formulas, the alerts API's filters."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest

from service import export
from service.models import Alert, Place, Reporter

AUTH = {"Authorization": "Bearer test-api-token"}
T0 = datetime(2024, 3, 4, 21, 30, tzinfo=timezone.utc)  # 23:30 in Goma: still the 4th there


@pytest.fixture
def kalehe(db):
    row = Place(key="x:kalehe-village", name="Bushushu", level="locality", admin1_pcode="CD62",
                admin1_name="Sud-Kivu", admin2_pcode="CD6201", admin2_name="Kalehe", lat=-2.05, lon=28.92)
    db.add(row)
    db.flush()
    return row


@pytest.fixture
def reporter(db):
    row = Reporter(key="ab" * 32, phone_encrypted="gAAAA-secret-token")
    db.add(row)
    db.flush()
    return row


def alert(db, where=None, category="ATTACK", **fields) -> Alert:
    values = {"status": "new", "channel": "sms", "occurred_at": T0, "created_at": T0, "reference": None, **fields}
    row = Alert(category=category, place=where, **values)
    db.add(row)
    db.flush()
    return row


def parsed(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_second_row_is_domain_md_hxl_hashtags_and_a_row_holds_no_reporter_identity(db, kalehe, reporter):
    row = alert(db, kalehe, people_affected=4, perpetrator="hommes armés", reporter_id=reporter.id,
                description="appelez-moi au +243 99 000 0001, Maman Furaha a vu", reference="123456")
    db.commit()
    table = parsed(export.to_csv(db))
    assert table[1] == ["#date +occurred", "#adm1 +name", "#adm2 +code", "#loc +name", "#geo +lat", "#geo +lon",
                        "#event +type", "#affected +killed", "#group +name", "#description", "#meta +id"]
    assert table[2] == ["2024-03-04", "Sud-Kivu", "CD6201", "Bushushu", "-2.05", "28.92", "ATTACK", "4",
                        "hommes armés", "", str(row.id)]
    text = export.to_csv(db)
    assert reporter.key not in text and "gAAAA" not in text and "123456" not in text and "Furaha" not in text
    described = parsed(export.to_csv(db, include_descriptions=True))[2][9]
    assert "Furaha" in described and "000" not in described and "[phone]" in described


def test_sexual_violence_is_left_out_unless_the_caller_may_see_it(db, kalehe):
    alert(db, kalehe, "SEXUAL_VIOLENCE")
    shown = alert(db, kalehe, "LOOTING")
    alert(db, kalehe, "ATTACK", status="draft")
    db.commit()
    assert [r[10] for r in parsed(export.to_csv(db))[2:]] == [str(shown.id)]
    assert [r[6] for r in parsed(export.to_csv(db, include_restricted=True))[2:]] == ["SEXUAL_VIOLENCE", "LOOTING"]


def test_a_cell_that_would_be_a_formula_is_quoted_and_numbers_stay_numbers(db, kalehe):
    alert(db, kalehe, perpetrator="=HYPERLINK(\"http://x\")", people_affected=3)
    alert(db, kalehe, perpetrator="@SUM(A1)")
    alert(db, kalehe, perpetrator="-groupe")
    db.commit()
    table = parsed(export.to_csv(db))
    assert [r[8] for r in table[2:]] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "'-groupe"]
    assert table[2][4] == "-2.05"  # a southern latitude is not a formula
    assert export.safe("+243") == "'+243" and export.safe(-1.5) == -1.5


def test_the_alerts_api_filters_apply(db, kalehe):
    beni = Place(key="CD6104", name="Beni", level="adm2", admin1_pcode="CD61", admin1_name="Nord-Kivu",
                 admin2_pcode="CD6104", admin2_name="Beni")
    db.add(beni)
    first = alert(db, kalehe, "ATTACK", channel="voice", language="sw")
    second = alert(db, beni, "CLASH", language="fr", created_at=datetime(2024, 3, 10, tzinfo=timezone.utc),
                   status="acknowledged")
    db.commit()

    def ids(**args):
        return [int(r[10]) for r in parsed(export.to_csv(db, filters=export.Filters.from_args(args)))[2:]]

    assert ids() == [first.id, second.id]
    assert ids(category="clash") == ids(status="acknowledged") == ids(language="fr") == [second.id]
    assert ids(channel="voice") == ids(province="CD62") == ids(territory="cd6201") == [first.id]
    assert ids(territory="CD6104") == ids(since="2024-03-05") == [second.id]
    assert ids(until="2024-03-05T00:00:00Z") == [first.id]
    for bad in ({"category": "RUMOUR"}, {"status": "draft"}, {"since": "yesterday"}, {"channel": "fax"}):
        with pytest.raises(ValueError):
            export.Filters.from_args(bad)
    table = parsed(export.to_csv(db))
    assert table[3][2] == "CD6104" and table[3][3] == ""  # a territory-level report names no village


def test_get_alerts_csv_needs_the_token_and_hides_restricted_reports_unless_asked(client, db, kalehe):
    alert(db, kalehe, "SEXUAL_VIOLENCE")
    alert(db, kalehe, "ATTACK")
    db.commit()
    assert client.get("/api/v1/alerts.csv").status_code == 401
    answer = client.get("/api/v1/alerts.csv", headers=AUTH)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    table = parsed(answer.get_data(as_text=True))
    assert table[1][0] == "#date +occurred" and [r[6] for r in table[2:]] == ["ATTACK"]
    table = parsed(client.get("/api/v1/alerts.csv?include_restricted=1", headers=AUTH).get_data(as_text=True))
    assert [r[6] for r in table[2:]] == ["SEXUAL_VIOLENCE", "ATTACK"]
    assert client.get("/api/v1/alerts.csv?category=NOPE", headers=AUTH).status_code == 400
