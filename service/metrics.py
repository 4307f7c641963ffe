"""Response times and silent areas, for the operator console and other tools.

A network that gets no response dies: per area (province and territory p-codes) and per
ISO week of submission, how long from a report (submitted_at, else created_at) to its
first "acknowledged" step and to its "dispatched" step. And in this conflict silence can
mean the network is cut: territories that usually report and have gone quiet.

Each metric is one grouped query (plus one for the places' areas); medians and percentiles
are computed here from per-alert durations, the same way on SQLite and PostgreSQL (linear
interpolation, like PostgreSQL's percentile_cont). Eastern DRC days and weeks (UTC+2, no DST)
come from epoch seconds by integer arithmetic (`epoch_us`, `east_day`), not per-row datetimes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import BigInteger, Integer, case, cast, func, select
from sqlalchemy.orm import Session

from bot.categories import BY_CODE
from bot.parsing import EAST
from service import reporters
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
    """Never the console simulator's reports; restricted categories only when asked."""
    query = reporters.real_alerts(query)
    if include_restricted:
        return query
    return query.where(Alert.category.is_(None) | Alert.category.not_in(HIDDEN))


EAST_OFFSET_S = 2 * 3600  # eastern DRC is UTC+2 all year (no DST): days and weeks by integer arithmetic
_EPOCH = date(1970, 1, 1)


def epoch_us(session: Session, value):
    """SQL for a timestamp as integer microseconds since 1970-01-01 UTC, on SQLite and PostgreSQL.

    PostgreSQL's extract(epoch ...) is exact (numeric); SQLite stores SQLAlchemy's
    "YYYY-MM-DD HH:MM:SS.ffffff" (UTC, no offset): whole seconds by strftime('%s') of the
    text without its fraction, the microseconds from the text. Integers, so durations come out as timedelta.total_seconds()."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", value) * 1000000, BigInteger)
    return (_sqlite_seconds(value) * 1000000
            + case((func.substr(value, 20, 1) == ".", cast(func.substr(value, 21, 6), Integer)), else_=0))


def east_day(session: Session, value):
    """SQL for the eastern DRC day of a timestamp, as days since 1970-01-01 (see `day_of`)."""
    if session.get_bind().dialect.name == "postgresql":  # date_part: double precision, cheaper than numeric
        return cast(func.floor((func.date_part("epoch", value) + EAST_OFFSET_S) / 86400), BigInteger)
    # SQLite's integer division truncates: fine for timestamps after 1970
    return (_sqlite_seconds(value) + EAST_OFFSET_S) / 86400


def _sqlite_seconds(value):
    """Whole seconds since 1970 of SQLite's text: of its first 19 characters, as SQLite would
    round .9995 and more up to the next second (it keeps milliseconds)."""
    return cast(func.strftime("%s", func.substr(value, 1, 19)), Integer)


def day_of(number: int) -> date:
    return _EPOCH + timedelta(days=number)


def _place_areas(session: Session, ids) -> dict[int, list[tuple[str, str, str | None]]]:
    """Per place id, the (level, p-code, name) areas its alerts count in (`_areas`)."""
    ids, found = sorted({i for i in ids if i is not None}), {}
    for n in range(0, len(ids), 5000):
        for row in session.execute(select(Place.id, Place.level, Place.key, Place.admin1_pcode, Place.admin1_name,
                                          Place.admin2_pcode, Place.admin2_name, Place.name)
                                   .where(Place.id.in_(ids[n:n + 5000]))):
            found[row[0]] = _areas(*row[1:])
    return found


def response_times(session: Session, weeks: int = WEEKS, now: datetime | None = None,
                   include_restricted: bool = False) -> list[dict]:
    """One row per (area, ISO week) of the last `weeks` weeks, plus "all" areas per week.

    Times are in seconds. `alerts` counts reports submitted that week; `acknowledged` and
    `dispatched` those that reached the step (at any time since).

    One query: per alert of the window its submission and first acknowledged and dispatched
    times (alerts joined with their steps and grouped per alert, not a subquery per row), as
    integer microseconds; the places' areas in a second small query; then integer
    arithmetic (weeks from days since 1970, eastern DRC time) and the percentiles."""
    now = _utc(now or datetime.now(timezone.utc))
    start = _week_start(now) - timedelta(weeks=weeks - 1)
    submitted = func.coalesce(Alert.submitted_at, Alert.created_at)
    # one scan of each table: the window's alerts joined with their steps, grouped per alert
    ack = func.min(case((AlertEvent.to_status == "acknowledged", AlertEvent.at)))
    dispatch = func.min(case((AlertEvent.to_status == "dispatched", AlertEvent.at)))
    query = (select(epoch_us(session, submitted), epoch_us(session, ack), epoch_us(session, dispatch), Alert.place_id)
             .outerjoin(AlertEvent, (AlertEvent.alert_id == Alert.id)
                        & AlertEvent.to_status.in_(("acknowledged", "dispatched")))
             .where(Alert.status != "draft", submitted >= start, submitted <= now)
             .group_by(Alert.id))
    rows = session.execute(_restrict(query, include_restricted)).all()
    # first per (eastern day, place): one dict look-up per alert; then into each area and week
    buckets: dict[tuple, list] = {}  # (day, place id) -> [alerts, ack times, dispatch times]
    for at, ack, dispatch, place_id in rows:
        key = ((at // 1000000 + EAST_OFFSET_S) // 86400, place_id)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = [0, [], []]
        bucket[0] += 1
        if ack is not None:
            bucket[1].append(max(ack - at, 0) / 1000000)
        if dispatch is not None:
            bucket[2].append(max(dispatch - at, 0) / 1000000)
    areas = _place_areas(session, {place_id for _day, place_id in buckets})
    unplaced = [("none", None, None)]
    weeks_of: dict[int, str] = {}
    groups: dict[tuple, dict] = {}
    for (day, place_id), (alerts, acks, dispatches) in buckets.items():
        week = weeks_of.get(day)
        if week is None:
            year, number, _ = day_of(day).isocalendar()
            week = weeks_of[day] = f"{year}-W{number:02d}"
        for level, pcode, name in [("all", None, None), *areas.get(place_id, unplaced)]:
            group = groups.get((level, pcode, week))
            if group is None:
                group = groups[level, pcode, week] = {"level": level, "pcode": pcode, "name": name, "week": week,
                                                      "alerts": 0, "ack": [], "dispatch": []}
            group["alerts"] += alerts
            group["ack"] += acks
            group["dispatch"] += dispatches
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
    Longest silence first. Counted in SQL per place (recent, all, last), summed here per territory."""
    now = _utc(now or datetime.now(timezone.utc))
    quiet_from = now - timedelta(days=quiet_days)
    baseline_from = quiet_from - timedelta(weeks=weeks)
    received = func.coalesce(Alert.submitted_at, Alert.created_at)
    query = (select(Alert.place_id, func.sum(case((received >= quiet_from, 1), else_=0)), func.count(),
                    func.max(received))
             .where(Alert.place_id.is_not(None), received >= baseline_from, received <= now))
    per_place = session.execute(_restrict(query, include_restricted).group_by(Alert.place_id)).all()
    places = {row[0]: row[1:] for row in session.execute(
        select(Place.id, Place.level, Place.key, Place.admin1_pcode, Place.admin1_name, Place.admin2_name, Place.name,
               Place.admin2_pcode).where(Place.id.in_([r[0] for r in per_place])))} if per_place else {}
    areas: dict[str, dict] = {}
    for place_id, recent, count, last in per_place:
        if place_id not in places:  # a dangling place_id (SQLite without foreign keys): the old inner join
            continue
        level, key, admin1, admin1_name, admin2_name, name, admin2 = places[place_id]
        territory = key if level == "adm2" else admin2
        if not territory:
            continue
        last = _utc(last)
        area = areas.setdefault(territory, {"pcode": territory, "name": name if level == "adm2" else admin2_name,
                                            "admin1": admin1, "admin1_name": admin1_name,
                                            "baseline": 0, "recent": 0, "last": last})
        area["last"] = max(area["last"], last)
        area["recent"] += int(recent)
        area["baseline"] += count - int(recent)
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
