"""Logging in and out, who is signed in, and the permission gate of every page.

A session's id is "<operator id>:<session generation>": the loader refuses one whose
generation is not the operator's any more (a new password, new roles, a disable). The login
form counts attempts per address (request.remote_addr, as the audit log records it) before
the per-account lock-out; beyond LOGIN_IP_MAX_ATTEMPTS in LOGIN_IP_WINDOW it answers 429.
"""

from __future__ import annotations

import functools
import logging
import time
from urllib.parse import urlsplit

import redis
from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select
from flask_login import LoginManager, current_user, login_required, login_user, logout_user

from service import accounts, audit
from service.console import bp, i18n
from service.console.i18n import _
from service.db import get_session
from service.models import Operator

log = logging.getLogger(__name__)
login_manager = LoginManager()
login_manager.session_protection = "basic"  # "strong" would log out an operator whose mobile IP changes


class SignedIn:
    """Flask-Login's user: the operator row, loaded again on every request."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, operator: Operator):
        self.operator = operator

    @property
    def is_active(self) -> bool:
        return bool(self.operator.active)

    def get_id(self) -> str:
        return f"{self.operator.id}:{self.operator.session_generation or 0}"


def init_app(app) -> None:
    login_manager.init_app(app)
    app.jinja_env.globals.update(operator=current_operator, can=lambda permission: accounts.can(
        current_operator(), permission))


LOGIN_AT = "console_login_at"  # the session's login time: it lasts CONSOLE_SESSION_HOURS, however busy


@login_manager.user_loader
def _load(operator_id: str):
    started = session.get(LOGIN_AT)
    if not isinstance(started, (int, float)) or \
            time.time() - started > current_app.config["CONSOLE_SESSION_HOURS"] * 3600:
        return None  # the cookie is refreshed on every request: the login itself must expire
    try:
        found, generation = (int(part) for part in operator_id.split(":"))
    except ValueError:
        return None  # also a session from before generations: log in again
    operator = get_session().get(Operator, found)
    if operator is None or not operator.active or (operator.session_generation or 0) != generation:
        return None
    return SignedIn(operator)


@login_manager.unauthorized_handler
def _to_login():
    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))


def current_operator() -> Operator | None:
    return current_user.operator if current_user and current_user.is_authenticated else None


def keep_signed_in(operator: Operator) -> None:
    """After a change that ended `operator`'s sessions, made by that operator: this session
    (and only this one) goes on with the new generation."""
    if current_operator() is not None and current_operator().id == operator.id:
        login_user(SignedIn(operator))


def requires(permission: str):
    """A view for signed-in operators who may do `permission` (403 otherwise)."""
    def decorate(view):
        @functools.wraps(view)
        @login_required
        def guarded(*args, **kwargs):
            if not accounts.can(current_operator(), permission):
                abort(403)
            return view(*args, **kwargs)
        return guarded
    return decorate


def _local(target: str | None) -> str | None:
    """Only a path on this site (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target if not urlsplit(target).netloc else None


def _too_many_attempts() -> int | None:
    """Count this login attempt of the address; the seconds to wait if it is one too many.
    Redis down: the attempt goes on (the per-account lock-out still holds)."""
    config = current_app.config
    limit = int(config.get("LOGIN_IP_MAX_ATTEMPTS", accounts.LOGIN_IP_MAX_ATTEMPTS))
    if limit <= 0:
        return None
    try:
        attempts = accounts.count_attempt(current_app.extensions["redis"], request.remote_addr,
                                          int(config.get("LOGIN_IP_WINDOW", accounts.LOGIN_IP_WINDOW)))
    except redis.RedisError as exc:
        log.warning("login attempts not counted (Redis: %s)", type(exc).__name__)
        return None
    if attempts.count <= limit:
        return None
    if attempts.count == limit + 1:  # the first refusal of the window is audited, not each of a flood
        db = get_session()
        audit.record(db, None, "operator.login_rate_limited", after={"address": request.remote_addr,
                                                                     "attempts": limit})
        db.commit()
    return attempts.retry_after


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        wait = _too_many_attempts()
        if wait is not None:  # before any name is looked up: the answer says nothing of the account
            error = i18n.ngettext("Too many login attempts from this connection. Try again in %(num)d minute.",
                                  "Too many login attempts from this connection. Try again in %(num)d minutes.",
                                  max(1, -(-wait // 60)))
            return render_template("console/login.html", error=error), 429, {"Retry-After": str(wait)}
        db = get_session()
        username = request.form.get("username", "")
        config = current_app.config
        operator = accounts.authenticate(db, username, request.form.get("password", ""),
                                         max_failures=config["LOGIN_MAX_FAILURES"], lockout=config["LOGIN_LOCKOUT"])
        if operator is None:
            known = db.scalar(select(Operator.id).where(Operator.username == username.strip().lower()))
            # never the name typed (it may be a password typed in the wrong field)
            audit.record(db, None, "operator.login_failed", "operator", known,
                         after={"address": request.remote_addr})
            db.commit()  # the failure count is kept even though the login is refused
            error = _("Wrong username or password, or the account is locked for a while.")
        else:
            audit.record(db, operator, "operator.login", "operator", operator.id,
                         after={"address": request.remote_addr})
            db.commit()
            lang = session.get(i18n.SESSION_KEY)
            session.clear()  # a new session on login: nothing carried from before
            if lang:
                session[i18n.SESSION_KEY] = lang
            session.permanent = True  # the cookie: CONSOLE_SESSION_HOURS
            session[LOGIN_AT] = time.time()
            login_user(SignedIn(operator))
            return redirect(_local(request.args.get("next")) or url_for("console.home"))
    return render_template("console/login.html", error=error), 200


@bp.post("/logout")
@login_required
def logout():
    db = get_session()
    operator = current_operator()
    audit.record(db, operator, "operator.logout", "operator", operator.id)
    db.commit()
    logout_user()
    lang = session.get(i18n.SESSION_KEY)
    session.clear()
    if lang:
        session[i18n.SESSION_KEY] = lang
    flash(_("You are logged out."))
    return redirect(url_for("console.login"))


@bp.get("/language/<lang>")
def language(lang: str):
    """The language switch: a plain link, kept in the session."""
    if lang in i18n.LANGUAGES:
        session[i18n.SESSION_KEY] = lang
    return redirect(_local(request.args.get("next")) or url_for("console.home"))


@bp.get("/")
@login_required
def home():
    operator = current_operator()
    if accounts.can(operator, "triage"):
        return redirect(url_for("console.alerts"))
    if accounts.can(operator, "audit"):
        return redirect(url_for("console.audit_log"))
    return render_template("console/home.html")
