"""The operators' API: alerts as data about events (never who reported), understanding,
health. Real databases and Redis; the engine is the in-memory fake (the real model is
exercised in tests/integration)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.engine import EngineUnavailable
from bot.places import default_gazetteer
from service import alerts, reporters
from service.privacy import Identity
from tests.conftest import REPORTER

TOKEN = {"Authorization": "Bearer test-api-token"}


@pytest.fixture
def stored_alerts(db, app):
    """Three alerts from one reporter: Butembo (new), Lubero (new, older), a draft."""
    identity = Identity.from_config(app.config)
    reporter = reporters.seen(db, identity, REPORTER)
    gaz = default_gazetteer()
    made = []
    for key, category, status, age in (("CD6110", "LOOTING", "new", 1), ("CD6105", "ABDUCTION", "new", 30),
                                       ("CD6101", "ATTACK", "draft", 0)):
        fields = alerts.DraftFields(category=category, place=gaz.get(key), people_affected=3,
                                    perpetrator="ADF", description="x", language="sw")
        alert = alerts.save_draft(db, f"{reporter.key}:{key}", reporter.key, fields)
        if status == "new":
            alerts.submit(db, f"{reporter.key}:{key}")
        alert.created_at = datetime.now(timezone.utc) - timedelta(days=age)
        made.append(alert)
    db.commit()
    return made


def test_alerts_need_the_token(client):
    assert client.get("/api/v1/alerts").status_code == 401
    assert client.get("/api/v1/alerts", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_alerts_newest_first_without_drafts_or_numbers(client, stored_alerts):
    response = client.get("/api/v1/alerts", headers=TOKEN)
    body = response.get_json()
    assert [a["location"]["pcode"] for a in body["alerts"]] == ["CD6110", "CD6105"]
    first = body["alerts"][0]
    assert set(first) >= {"id", "reference", "category", "location", "occurred_at", "people_affected",
                          "perpetrator", "description", "language", "channel", "status", "created_at"}
    assert first["location"] == {"name": "Butembo", "admin1": "Nord-Kivu", "admin2": "Butembo", "pcode": "CD6110"}
    text = response.get_data(as_text=True)
    assert REPORTER not in text and REPORTER[1:] not in text and "phone" not in text


@pytest.mark.parametrize("query,expected", [
    ("category=ABDUCTION", ["CD6105"]),
    ("admin2=CD6110", ["CD6110"]),
    ("since=" + (datetime.now(timezone.utc) - timedelta(days=2)).date().isoformat(), ["CD6110"]),
])
def test_alert_filters(client, stored_alerts, query, expected):
    body = client.get(f"/api/v1/alerts?{query}", headers=TOKEN).get_json()
    assert [a["location"]["pcode"] for a in body["alerts"]] == expected


@pytest.mark.parametrize("query", ["category=BOMB", "since=yesterday", "limit=many"])
def test_bad_filters_are_clear_errors(client, query):
    response = client.get(f"/api/v1/alerts?{query}", headers=TOKEN)
    assert response.status_code == 400 and response.get_json()["error"]


def test_understand_combines_the_model_with_gazetteer_and_parsers(client, engine):
    engine.parse = lambda text: {"intent": {"name": "report_abduction", "confidence": 0.93},
                                 "entities": [{"entity": "armed_group", "value": "ADF"}]}
    response = client.post("/api/v1/understand", headers=TOKEN,
                           json={"text": "Watu wenye silaha wameteka watoto watatu Lubero jana"})
    assert response.get_json() == {
        "language": "sw", "intent": "report_alert",
        "alert": {"category": "ABDUCTION", "people_affected": 3, "perpetrator": "ADF", "place_text": "Lubero",
                  "location": {"name": "Lubero", "admin1": "Nord-Kivu", "admin2": "Lubero", "pcode": "CD6105"}}}


def test_understand_knows_commands_without_the_model(client, engine):
    engine.down = True
    body = client.post("/api/v1/understand", headers=TOKEN, json={"text": "Tika"}).get_json()
    assert body["intent"] == "opt_out" and body["alert"]["category"] is None


@pytest.mark.parametrize("payload,status", [(None, 400), ({"txt": "x"}, 400), ({"text": 3}, 400),
                                            ({"text": "x" * 2001}, 413)])
def test_understand_rejects_bad_requests(client, payload, status):
    kwargs = {"json": payload} if payload is not None else {"data": "not json"}
    assert client.post("/api/v1/understand", headers=TOKEN, **kwargs).status_code == status


def test_understand_says_when_the_model_is_down(client, engine):
    engine.down = True

    def down(text):
        raise EngineUnavailable("down")
    engine.parse = down
    response = client.post("/api/v1/understand", headers=TOKEN, json={"text": "attaque a Beni"})
    assert response.status_code == 503


def test_health_reports_each_part(client, engine):
    body = client.get("/healthz").get_json()
    assert client.get("/healthz").status_code == 200
    assert body == {"status": "ok", "database": "ok", "redis": "ok", "rasa": "ok", "actions": "unchecked"}
    engine.down = True
    response = client.get("/healthz")
    assert response.status_code == 503 and response.get_json()["rasa"] == "down"


def test_health_with_redis_down(app_config):
    from service.app import create_app

    app = create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["redis"] == "down"
