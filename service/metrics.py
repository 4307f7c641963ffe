"""Response times and silent areas, for the operator console and other tools.

A network that gets no response dies: per area (province and territory p-codes) and per
ISO week of submission, how long from a report (submitted_at, else created_at) to its
first "acknowledged" step and to its "dispatched" step. And in this conflict silence can
mean the network is cut: territories that usually report and have gone quiet.

Each metric is one query; medians and percentiles are computed here, the same way on
SQLite and PostgreSQL (linear interpolation, like PostgreSQL's percentile_cont).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.categories import BY_CODE
from bot.parsing import EAST
from service.models import Alert, AlertEvent, Place

WEEKS = 8
SILENT_BASELINE_WEEKS = 8
SILENT_MIN_WEEKLY = 1.0  # a territory "usually reports" at this weekly average or more
SILENT_DAYS = 7
HIDDEN = tuple(c.code for c in BY_CODE.values() if c.restricted)


def percentile(values: list[float], p: float) -> float | None:
    """The p-th quantile (0..1) by linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = p * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def iso_week(at: datetime) -> str:
    """The ISO week of `at` in eastern DRC's time (a Monday 01:00 there is not Sunday's)."""
    year, week, _ = at.astimezone(EAST).isocalendar()
    return f"{year}-W{week:02d}"


def _areas(level, key, admin1, admin1_name, admin2, admin2_name, name) -> list[tuple[str, str, str | None]]:
    """The (level, p-code, name) rows an alert's place counts in: its province, its territory."""
    if level is None:
        return [("none", None, None)]
    territory = key if level == "adm2" else admin2
    found = []
    province = key if level == "adm1" else admin1
    if province:
        found.append(("adm1", province, name if level == "adm1" else admin1_name))
    if territory:
        found.append(("adm2", territory, name if level == "adm2" else admin2_name))
    return found or [("none", None, None)]


def _restrict(query, include_restricted: bool):
    if include_restricted:
        return query
    return query.where(Alert.category.is_(None) | Alert.category.not_in(HIDDEN))


def response_times(session: Session, weeks: int = WEEKS, now: datetime | None = None,
                   include_restricted: bool = False) -> list[dict]:
    """One row per (area, ISO week) of the last `weeks` weeks, plus "all" areas per week.

    Times are in seconds. `alerts` counts reports submitted that week; `acknowledged` and
    `dispatched` those that reached the step (at any time since)."""
    now = _utc(now or datetime.now(timezone.utc))
    start = _week_start(now) - timedelta(weeks=weeks - 1)
    submitted = func.coalesce(Alert.submitted_at, Alert.created_at)
    first_ack = (select(func.min(AlertEvent.at)).where(AlertEvent.alert_id == Alert.id,
                                                        AlertEvent.to_status == "acknowledged")
                 .correlate(Alert).scalar_subquery())
    first_dispatch = (select(func.min(AlertEvent.at)).where(AlertEvent.alert_id == Alert.id,
                                                             AlertEvent.to_status == "dispatched")
                      .correlate(Alert).scalar_subquery())
    query = (select(Alert.submitted_at, Alert.created_at, first_ack, first_dispatch, Place.level, Place.key,
                    Place.admin1_pcode, Place.admin1_name, Place.admin2_pcode, Place.admin2_name, Place.name)
             .outerjoin(Place, Alert.place_id == Place.id)
             .where(Alert.status != "draft", submitted >= start, submitted <= now))
    groups: dict[tuple, dict] = {}
    for row in session.execute(_restrict(query, include_restricted)):
        at = _utc(row.submitted_at or row.created_at)
        week = iso_week(at)
        ack = (_utc(row[2]) - at).total_seconds() if row[2] is not None else None
        dispatch = (_utc(row[3]) - at).total_seconds() if row[3] is not None else None
        for level, pcode, name in [("all", None, None), *_areas(*row[4:])]:
            group = groups.setdefault((level, pcode, week), {
                "level": level, "pcode": pcode, "name": name, "week": week, "alerts": 0, "ack": [], "dispatch": []})
            group["alerts"] += 1
            if ack is not None:
                group["ack"].append(max(ack, 0.0))
            if dispatch is not None:
                group["dispatch"].append(max(dispatch, 0.0))
    order = {"all": 0, "adm1": 1, "adm2": 2, "none": 3}
    result = []
    for key in sorted(groups, key=lambda k: (k[2], order[k[0]], k[1] or "")):
        group = groups[key]
        ack, dispatch = group.pop("ack"), group.pop("dispatch")
        group.update(acknowledged=len(ack), dispatched=len(dispatch),
                     ack_median_s=percentile(ack, 0.5), ack_p90_s=percentile(ack, 0.9),
                     dispatch_median_s=percentile(dispatch, 0.5), dispatch_p90_s=percentile(dispatch, 0.9))
        result.append(group)
    return result


def silent_areas(session: Session, now: datetime | None = None, weeks: int = SILENT_BASELINE_WEEKS,
                 min_weekly: float = SILENT_MIN_WEEKLY, quiet_days: int = SILENT_DAYS,
                 include_restricted: bool = False) -> list[dict]:
    """Territories whose weekly average over the `weeks` weeks before the quiet window is
    at least `min_weekly`, and with no report at all in the last `quiet_days` days.

    Every report counts, whatever its status (even a draft or an abandoned one shows that
    the line works); its time is when it reached us (submitted_at, else created_at).
    Longest silence first."""
    now = _utc(now or datetime.now(timezone.utc))
    quiet_from = now - timedelta(days=quiet_days)
    baseline_from = quiet_from - timedelta(weeks=weeks)
    received = func.coalesce(Alert.submitted_at, Alert.created_at)
    query = (select(received, Place.level, Place.key, Place.admin1_pcode, Place.admin1_name,
                    Place.admin2_pcode, Place.admin2_name, Place.name)
             .join(Place, Alert.place_id == Place.id)
             .where(received >= baseline_from, received <= now))
    areas: dict[str, dict] = {}
    for at, level, key, admin1, admin1_name, admin2, admin2_name, name in session.execute(
            _restrict(query, include_restricted)):
        at = _utc(at)
        territory = key if level == "adm2" else admin2
        if not territory:
            continue
        area = areas.setdefault(territory, {"pcode": territory, "name": name if level == "adm2" else admin2_name,
                                            "admin1": admin1, "admin1_name": admin1_name,
                                            "baseline": 0, "recent": 0, "last": at})
        area["last"] = max(area["last"], at)
        if at >= quiet_from:
            area["recent"] += 1
        else:
            area["baseline"] += 1
    silent = []
    for area in areas.values():
        usual = area["baseline"] / weeks
        if area["recent"] == 0 and usual >= min_weekly:
            silent.append({"pcode": area["pcode"], "name": area["name"], "admin1": area["admin1"],
                           "admin1_name": area["admin1_name"], "usual_weekly": round(usual, 2),
                           "last_report_at": area["last"].isoformat(),
                           "days_since_last": round((now - area["last"]).total_seconds() / 86400, 1)})
    return sorted(silent, key=lambda a: (-a["days_since_last"], a["pcode"]))


def _week_start(at: datetime) -> datetime:
    """Monday 00:00 (eastern DRC) of `at`'s ISO week, in UTC."""
    day = at.astimezone(EAST).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day - timedelta(days=day.weekday())).astimezone(timezone.utc)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
