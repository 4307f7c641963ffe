"""The dashboard: places gone quiet first (silence can mean a cut network or reporters in
danger), then the last 30 days' alerts per day by category and by province, as bars
drawn here in inline SVG (no script, no library; a <title> on every bar and a table of
the same figures), and the response times per area and week (service/metrics.py).

Restricted categories are counted only for those who may see them, as in the inbox.

The figures take three scans of the alerts table (silent areas, response times, charts): on
PostgreSQL they run at once, each on its own connection, so the page waits for the slowest
rather than for the sum. They are then kept CACHE_S seconds in Redis, per visibility of restricted categories and
number of weeks, and the page says how old they are (a complement: the first visit computes).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from flask import current_app, render_template, request
from redis.exceptions import RedisError
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.categories import CODES
from bot.parsing import EAST
from service import accounts, metrics
from service.console import bp
from service.console.auth import current_operator, requires
from service.console.i18n import _, category_label
from service.console.inbox import visible
from service.db import get_session
from service.models import Alert, Place

DAYS = 30
COLOURS = 12  # classes k0..k11 in incidents.css
SERIES = 8  # bars per day at most (the page stays light): the smaller ones are summed as "others"
OTHERS = "*"
WEEKS = 4  # response times shown by default (?weeks= up to metrics.WEEKS)
BAR_W, GAP, PLOT_H, LEFT, BOTTOM, TOP = 18, 4, 150, 34, 22, 10
NO_PLACE = ""
CACHE_S = 45  # the figures are kept this long (the page shows their age)
CACHE_KEY = "console:dashboard:{restricted}:{weeks}"  # what changes the figures: visibility, weeks

log = logging.getLogger(__name__)


@dataclass
class Chart:
    """Daily stacked bars: one bar per day, one segment per series with alerts that day."""

    name: str
    title: str
    days: list[date]
    series: list[tuple[str, str]]  # (key, label), most alerts first
    counts: Counter = field(default_factory=Counter)  # (day, key) -> alerts

    @property
    def width(self) -> int:
        return LEFT + len(self.days) * (BAR_W + GAP)

    @property
    def height(self) -> int:
        return TOP + PLOT_H + BOTTOM

    @property
    def base(self) -> int:
        """The y of the bars' foot (SVG's y grows downwards)."""
        return TOP + PLOT_H

    @property
    def top(self) -> int:
        return max([sum(self.counts[d, k] for k, _name in self.series) for d in self.days] + [1])

    def total(self, day: date) -> int:
        return sum(self.counts[day, k] for k, _name in self.series)

    def colour(self, key: str) -> str:
        return f"k{min([k for k, _name in self.series].index(key), COLOURS - 1)}"

    def bars(self) -> list[tuple[str, list[dict]]]:
        """Per series (its colour class), the segments' geometry, stacked bottom up, with their tooltips."""
        scale, base = PLOT_H / self.top, {day: TOP + PLOT_H for day in self.days}
        found = []
        for key, name in self.series:
            segments = []
            for n, day in enumerate(self.days):
                count = self.counts[day, key]
                if count:
                    h = max(round(count * scale), 1)
                    base[day] -= h
                    segments.append({"x": LEFT + n * (BAR_W + GAP), "y": base[day], "h": h,
                                     "title": f"{day.strftime('%d/%m')} · {name}: {count}"})
            found.append((self.colour(key), segments))
        return found

    def fold(self, others: str) -> "Chart":
        """At most SERIES series: the smallest are summed into one named `others`."""
        if len(self.series) <= SERIES:
            return self
        kept, folded = self.series[:SERIES - 1], {k for k, _name in self.series[SERIES - 1:]}
        counts = Counter()
        for (day, key), n in self.counts.items():
            counts[day, OTHERS if key in folded else key] += n
        return Chart(self.name, self.title, self.days, kept + [(OTHERS, others)], counts)

    def ticks(self) -> list[tuple[int, str]]:
        """A date under every seventh bar (the last one is today)."""
        last = len(self.days) - 1
        return [(LEFT + n * (BAR_W + GAP) + BAR_W // 2, d.strftime("%d/%m")) for n, d in enumerate(self.days)
                if (last - n) % 7 == 0]


def _chart_query(db, now: datetime, operator):
    """The last DAYS eastern days' alerts counted per day, category and province: a few hundred
    (day number, category, province, province name, count) rows, not one per alert (grouped in
    an outer query: PostgreSQL's GROUP BY cannot repeat a bound parameter)."""
    received = func.coalesce(Alert.submitted_at, Alert.created_at)
    rows = visible(select(metrics.east_day(db, received).label("day"), Alert.category.label("category"),
                          case((Place.level == "adm1", Place.key), else_=Place.admin1_pcode).label("province"),
                          case((Place.level == "adm1", Place.name), else_=Place.admin1_name).label("name"))
                   .outerjoin(Place, Alert.place_id == Place.id), operator) \
        .where(received >= _first_day(now)).subquery()
    return (select(rows.c.day, rows.c.category, rows.c.province, rows.c.name, func.count())
            .group_by(rows.c.day, rows.c.category, rows.c.province, rows.c.name))


def _days(now: datetime) -> list[date]:
    today = now.astimezone(EAST).date()
    return [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]


def _first_day(now: datetime) -> datetime:
    first = _days(now)[0]
    return datetime(first.year, first.month, first.day, tzinfo=EAST)


def _charts(db, now: datetime) -> tuple[Chart, Chart]:
    """The two charts for the request's operator, straight from the database (no cache)."""
    return _draw(now, [tuple(r) for r in db.execute(_chart_query(db, now, current_operator()))])


def _draw(now: datetime, counted) -> tuple[Chart, Chart]:
    """The two charts from `_chart_query`'s rows."""
    by_category, by_province, provinces, dates = Counter(), Counter(), {}, {}
    for number, category, province, name, n in counted:
        day = dates.get(number) or dates.setdefault(number, metrics.day_of(int(number)))
        province = province or NO_PLACE
        provinces.setdefault(province, name or province)
        by_category[day, category or ""] += n
        by_province[day, province] += n
    categories = Counter()
    for (_day, code), n in by_category.items():
        categories[code] += n
    per_province = Counter()
    for (_day, code), n in by_province.items():
        per_province[code] += n
    days = _days(now)
    cat = Chart("categories", _("Alerts per day by category, last %(n)s days", n=DAYS), days,
                [(c, category_label(c)) for c in sorted(categories, key=lambda c: (-categories[c], CODES.index(c) if c in CODES else len(CODES)))],
                by_category).fold(_("other categories"))
    prov = Chart("provinces", _("Alerts per day by province, last %(n)s days", n=DAYS), days,
                 [(p, provinces[p] if p else _("place unknown"))
                  for p in sorted(per_province, key=lambda p: (-per_province[p], p))], by_province).fold(_("other provinces"))
    return cat, prov


def figures(db, now: datetime, operator, weeks: int) -> dict:
    """The page's figures as plain data (what the cache keeps): silent areas, response times,
    the charts' counted rows, and when they were computed (ISO 8601, UTC)."""
    restricted = accounts.can(operator, "see_restricted")
    charts = _chart_query(db, now, operator)  # built here: visibility is the request's operator's
    found = _at_once(db, {
        "silent": lambda session: metrics.silent_areas(session, now=now, include_restricted=restricted),
        "times": lambda session: metrics.response_times(session, weeks=weeks, now=now, include_restricted=restricted),
        "charts": lambda session: [list(r) for r in session.execute(charts)]})
    return {"computed_at": now.isoformat(), **found}


def _at_once(db, queries: dict) -> dict:
    """Each query(session) on its own connection and thread on PostgreSQL (its three scans then
    use both cores); one after another in `db` on SQLite (one file, one writer: nothing to gain)."""
    if db.get_bind().dialect.name != "postgresql":
        return {name: query(db) for name, query in queries.items()}

    def run(query):
        with Session(db.get_bind()) as session:
            return query(session)

    with ThreadPoolExecutor(len(queries)) as pool:
        futures = {name: pool.submit(run, query) for name, query in queries.items()}
        return {name: future.result() for name, future in futures.items()}


def cached_figures(db, redis, now: datetime, operator, weeks: int) -> dict:
    """`figures`, from Redis when computed less than CACHE_S seconds ago for the same
    visibility and weeks. Without Redis the page is computed, and says so in the log."""
    key = CACHE_KEY.format(restricted=int(bool(accounts.can(operator, "see_restricted"))), weeks=weeks)
    try:
        kept = redis.get(key)
    except RedisError as exc:
        log.warning("dashboard cache unreadable, figures computed: %s", exc)
        return figures(db, now, operator, weeks)
    if kept is not None:
        return json.loads(kept)
    found = figures(db, now, operator, weeks)
    try:
        redis.set(key, json.dumps(found, separators=(",", ":")), ex=CACHE_S)
    except RedisError as exc:
        log.warning("dashboard cache not written: %s", exc)
    return found


def duration(seconds: float | None) -> str:
    """A time as an operator says it: 40 s, 12 min, 3 h 05, 2 d 4 h."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return _("%(n)s s", n=s)
    if s < 3600:
        return _("%(n)s min", n=s // 60)
    if s < 86400:
        return _("%(h)s h %(m)02d", h=s // 3600, m=s % 3600 // 60)
    return _("%(d)s d %(h)s h", d=s // 86400, h=s % 86400 // 3600)


def _area(row: dict) -> str:
    if row["level"] == "all":
        return _("All areas")
    if row["level"] == "none":
        return _("place unknown")
    return row["name"] or row["pcode"]


@bp.get("/dashboard", endpoint="dashboard")
@requires("triage")
def dashboard():
    db = get_session()
    now = datetime.now(timezone.utc)
    weeks = request.args.get("weeks", "")
    weeks = min(int(weeks), metrics.WEEKS) if weeks.isdigit() and int(weeks) > 0 else WEEKS
    found = cached_figures(db, current_app.extensions["redis"], now, current_operator(), weeks)
    computed_at = datetime.fromisoformat(found["computed_at"])
    silent = found["silent"]
    for area in silent:
        area["last"] = datetime.fromisoformat(area["last_report_at"])
    times = found["times"]
    times.sort(key=lambda r: r["week"], reverse=True)  # this week first; areas in metrics' order
    by_category, by_province = _draw(computed_at, found["charts"])
    return render_template("console/dashboard.html", silent=silent, charts=(by_category, by_province), times=times,
                           duration=duration, area=_area, quiet_days=metrics.SILENT_DAYS,
                           baseline_weeks=metrics.SILENT_BASELINE_WEEKS, weeks=weeks,
                           more_weeks=metrics.WEEKS if weeks < metrics.WEEKS else None,
                           age_s=max(int((now - computed_at).total_seconds()), 0), cache_s=CACHE_S)
