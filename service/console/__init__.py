"""The operator console: server-rendered pages under /console/, light enough for a slow
link and working with no internet (one CSS file served here, no JS, no fonts).

* Login with Flask-Login (service/accounts.py decides), CSRF on every console POST
  (validated here, so the webhooks and the bearer-token API are untouched), session
  cookies HttpOnly, SameSite=Lax, Secure outside development and test.
* French first, English (service/console/i18n.py); what a role may see or do is
  accounts.can, the triage steps are service/triage.py, every look at restricted data is
  in the audit log.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

from flask import Blueprint, current_app, render_template, request
from flask_wtf.csrf import CSRFError, ValidationError, generate_csrf, validate_csrf

from service.console import i18n

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")
INSECURE_ENVIRONMENTS = ("development", "test")  # plain http on a laptop: no Secure cookie


@bp.record_once
def _setup(state) -> None:
    app = state.app
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=app.config["ALERTE_ENV"] not in INSECURE_ENVIRONMENTS,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=app.config["CONSOLE_SESSION_HOURS"]),
    )
    i18n.init_app(app)
    auth.init_app(app)
    app.jinja_env.globals.update(csrf_token=generate_csrf, page=_page_url)


def _page_url(endpoint: str, **values) -> str | None:
    """The URL of a console page, or None if that group of pages is not installed (the nav)."""
    from flask import url_for
    return url_for(endpoint, **values) if endpoint in current_app.view_functions else None


@bp.before_request
def _check_csrf():
    """Every state-changing console request carries the session's token (a form field)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    try:
        validate_csrf(request.form.get("csrf_token"),
                      time_limit=current_app.config["CONSOLE_SESSION_HOURS"] * 3600)
    except ValidationError as exc:
        raise CSRFError(str(exc)) from None
    return None


@bp.after_request
def _headers(response):
    """Nothing from elsewhere, no framing, no copy of a page in a shared cache."""
    response.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "console.static":
        response.headers.setdefault("Cache-Control", "private, no-store")
    return response


@bp.errorhandler(CSRFError)
def _csrf_refused(exc):
    return render_template("console/error.html", title=i18n._("This form has expired"),
                           text=i18n._("Reload the page and send the form again.")), 400


@bp.errorhandler(403)
def _forbidden(exc):
    return render_template("console/error.html", title=i18n._("Not allowed"),
                           text=i18n._("Your roles do not give access to this page.")), 403


@bp.errorhandler(404)
def _not_found(exc):
    return render_template("console/error.html", title=i18n._("Not found"),
                           text=i18n._("There is nothing here, or not for your roles.")), 404


from service.console import auth, inbox, audit_log  # noqa: E402,F401  the views, on bp

# Groups of pages written on their own (each its module, templates and console_<page>.po):
# registered when present, so each arrives without touching the others.
PAGES = ("incidents", "dashboard", "map", "composer", "translations", "operators", "flows", "simulator",
         "retrain")
for _page in PAGES:
    try:
        importlib.import_module(f"service.console.{_page}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"service.console.{_page}":
            raise
