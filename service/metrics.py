"""Response times and silent areas, for the operator console and other tools.

A network that gets no response dies: per area (province and territory p-codes) and per
ISO week of submission, how long from a report (submitted_at, else created_at) to its
first "acknowledged" step and to its "dispatched" step. And in this conflict silence can
mean the network is cut: territories that usually report and have gone quiet.

Each metric is one grouped query (silent areas: plus one for the places). Response times are
grouped per week and place in SQL, their durations as arrays on PostgreSQL; medians and
percentiles are taken here, once per area and week, the same way on SQLite and PostgreSQL
(linear interpolation, like PostgreSQL's percentile_cont). Eastern DRC days and weeks (UTC+2,
no DST) come from epoch seconds by integer arithmetic (`epoch_us`, `east_day`), not per-row
datetimes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import BigInteger, Float, Integer, case, cast, func, select
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
    return _interpolated(sorted(values), p)


def _interpolated(ordered: list[float], p: float) -> float | None:
    """`percentile` of values already in order."""
    if not ordered:
        return None
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
    # an integer division (SQLAlchemy's `/` would be SQLite's real one); it truncates: fine after 1970
    return (_sqlite_seconds(value) + EAST_OFFSET_S) // 86400


def _sqlite_seconds(value):
    """Whole seconds since 1970 of SQLite's text: of its first 19 characters, as SQLite would
    round .9995 and more up to the next second (it keeps milliseconds)."""
    return cast(func.strftime("%s", func.substr(value, 1, 19)), Integer)


def day_of(number: int) -> date:
    return _EPOCH + timedelta(days=number)


def response_times(session: Session, weeks: int = WEEKS, now: datetime | None = None,
                   include_restricted: bool = False) -> list[dict]:
    """One row per (area, ISO week) of the last `weeks` weeks, plus "all" areas per week.

    Times are in seconds. `alerts` counts reports submitted that week; `acknowledged` and
    `dispatched` those that reached the step (at any time since).

    SQL does the per-alert work (`_durations`) and, on PostgreSQL, groups the durations per
    week and place into arrays (a few hundred rows, not one per alert); here they go into
    each place's areas, and the percentiles are taken once per area and week. percentile_cont
    per area in SQL was measured slower: four grouping sets of 29,000 rows, 95 to 125 ms against
    20 ms for the arrays (bench_console data, docs/BENCHMARKS.md)."""
    now = _utc(now or datetime.now(timezone.utc))
    start = _week_start(now) - timedelta(weeks=weeks - 1)
    groups: dict[tuple, list] = {}  # (monday, level, p-code) -> [name, alerts, ack times, dispatch times]
    for monday, alerts, acks, dispatches, *place in _per_week_and_place(session, start, now, include_restricted):
        for level, pcode, name in [("all", None, None), *_areas(*place)]:
            group = groups.get((monday, level, pcode))
            if group is None:
                group = groups[monday, level, pcode] = [name, 0, [], []]
            elif name is not None and (group[0] is None or name < group[0]):
                group[0] = name  # one name per p-code whatever the order of the rows
            group[1] += alerts
            group[2] += acks
            group[3] += dispatches
    weeks_of: dict[int, str] = {}
    found = []
    for (monday, level, pcode), (name, alerts, acks, dispatches) in groups.items():
        if monday not in weeks_of:
            year, number, _ = day_of(monday).isocalendar()
            weeks_of[monday] = f"{year}-W{number:02d}"
        acks.sort()
        dispatches.sort()
        found.append({"level": level, "pcode": pcode, "name": name, "week": weeks_of[monday], "alerts": alerts,
                      "acknowledged": len(acks), "dispatched": len(dispatches),
                      "ack_median_s": _interpolated(acks, 0.5), "ack_p90_s": _interpolated(acks, 0.9),
                      "dispatch_median_s": _interpolated(dispatches, 0.5),
                      "dispatch_p90_s": _interpolated(dispatches, 0.9)})
    order = {"all": 0, "adm1": 1, "adm2": 2, "none": 3}
    return sorted(found, key=lambda g: (g["week"], order[g["level"]], g["pcode"] or ""))


def _durations(session: Session, start: datetime, now: datetime, include_restricted: bool):
    """A subquery, one row per submitted alert of the window: the Monday of its eastern week
    (days since 1970), its place, its seconds to the first "acknowledged" and to the
    "dispatched" step (NULL if not reached; 0 for a step before submission).

    The window's alerts joined once with their steps and grouped per alert (one scan of each
    table, no subquery per row). Durations from integer microseconds, as a float division:
    the same double as Python's `us / 1000000`."""
    submitted = func.coalesce(Alert.submitted_at, Alert.created_at)
    ack = func.min(case((AlertEvent.to_status == "acknowledged", AlertEvent.at)))
    dispatch = func.min(case((AlertEvent.to_status == "dispatched", AlertEvent.at)))
    per_alert = (select(Alert.place_id, east_day(session, submitted).label("day"),
                        epoch_us(session, submitted).label("at"), epoch_us(session, ack).label("ack"),
                        epoch_us(session, dispatch).label("dispatch"))
                 .outerjoin(AlertEvent, (AlertEvent.alert_id == Alert.id)
                            & AlertEvent.to_status.in_(("acknowledged", "dispatched")))
                 .where(Alert.status != "draft", submitted >= start, submitted <= now)
                 .group_by(Alert.id))
    a = _restrict(per_alert, include_restricted).subquery("per_alert")

    def seconds(step):  # NULL when not reached (PostgreSQL's greatest() would say 0)
        return cast(case((step >= a.c.at, step - a.c.at), (step < a.c.at, 0)), Float) / 1000000

    return select((a.c.day - (a.c.day + 3) % 7).label("monday"),  # 1970-01-01 was a Thursday
                  a.c.place_id, seconds(a.c.ack).label("ack_s"), seconds(a.c.dispatch).label("dispatch_s")) \
        .subquery("durations")


_PLACE = (Place.level, Place.key, Place.admin1_pcode, Place.admin1_name, Place.admin2_pcode, Place.admin2_name,
          Place.name)  # `_areas`' arguments


def _per_week_and_place(session: Session, start: datetime, now: datetime, include_restricted: bool):
    """(monday, alerts, ack times, dispatch times, *`_PLACE`) rows. PostgreSQL: one per week and
    place, the times as arrays (array_agg); SQLite has no arrays: one per alert."""
    d = _durations(session, start, now, include_restricted)
    if session.get_bind().dialect.name == "postgresql":
        g = (select(d.c.monday, d.c.place_id, func.count().label("alerts"),
                    func.array_agg(d.c.ack_s).filter(d.c.ack_s.is_not(None)).label("acks"),
                    func.array_agg(d.c.dispatch_s).filter(d.c.dispatch_s.is_not(None)).label("dispatches"))
             .group_by(d.c.monday, d.c.place_id).subquery("per_place"))
        query = select(g.c.monday, g.c.alerts, g.c.acks, g.c.dispatches, *_PLACE)
        # an outer join: no place, or a dangling place id (SQLite without foreign keys), is "none"
        for monday, alerts, acks, dispatches, *place in session.execute(
                query.select_from(g).outerjoin(Place, Place.id == g.c.place_id)):
            yield (int(monday), alerts, acks or [], dispatches or [], *place)
        return
    for monday, ack, dispatch, *place in session.execute(
            select(d.c.monday, d.c.ack_s, d.c.dispatch_s, *_PLACE).select_from(d)
            .outerjoin(Place, Place.id == d.c.place_id)):
        yield (int(monday), 1, [] if ack is None else [ack], [] if dispatch is None else [dispatch], *place)


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
