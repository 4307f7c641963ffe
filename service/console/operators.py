"""Administrators manage the console's operators: create, change roles, disable or enable,
unlock, reset a password. Every change is in the audit log with its before and after,
never a password or its hash. An administrator cannot remove their own administrator
role nor disable themselves (the console would be left without its keys). A new password,
new roles or a disable end the operator's sessions (accounts.end_sessions); an administrator
changing their own account stays signed in on the page where they did it.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from service import accounts, audit
from service.console import bp
from service.console.auth import current_operator, keep_signed_in, requires
from service.console.i18n import ROLE_LABELS, _, label
from service.db import get_session
from service.models import Operator

ADMIN = "administrator"


def view(operator: Operator) -> dict:
    """What the audit log keeps of an operator: never the password or its hash."""
    return {"username": operator.username, "roles": sorted(operator.roles or []), "active": bool(operator.active),
            "locked": accounts.locked(operator)}


def _role_names() -> dict[str, str]:
    return {r: label(ROLE_LABELS, r) for r in accounts.ROLES}


def _operator_or_404(operator_id: int) -> Operator:
    found = get_session().get(Operator, operator_id)
    if found is None:
        abort(404)
    return found


def _roles_from_form() -> list[str]:
    return sorted({r for r in request.form.getlist("roles") if r in accounts.ROLES})


def refusal(exc: accounts.AccountError) -> str:
    """An AccountError in the operator's language (accounts.MESSAGES are in the catalogs)."""
    return _(exc.msgid, **exc.params)


def _back(operator_id: int | None = None):
    if operator_id is None:
        return redirect(url_for("console.operators"))
    return redirect(url_for("console.operator", operator_id=operator_id))


@bp.get("/operators", endpoint="operators")
@requires("manage_operators")
def index():
    rows = get_session().scalars(select(Operator).order_by(Operator.username)).all()
    return render_template("console/operators.html", operators=rows, role_names=_role_names(),
                           locked=accounts.locked, minimum=accounts.PASSWORD_MIN)


@bp.post("/operators", endpoint="operator_create")
@requires("manage_operators")
def create():
    db = get_session()
    try:
        created = accounts.create(db, request.form.get("username", ""), request.form.get("password", ""),
                                  _roles_from_form(),
                                  display_name=request.form.get("display_name", "").strip()[:128] or None)
    except accounts.AccountError as exc:
        db.rollback()
        flash(_("Not created: %(reason)s", reason=refusal(exc)), "error")
        return _back()
    audit.record(db, current_operator(), "operator.create", "operator", created.id, after=view(created))
    db.commit()
    flash(_("Operator %(name)s created.", name=created.username))
    return _back(created.id)


@bp.get("/operators/<int:operator_id>", endpoint="operator")
@requires("manage_operators")
def detail(operator_id: int):
    target = _operator_or_404(operator_id)
    return render_template("console/operator.html", target=target, role_names=_role_names(),
                           locked=accounts.locked(target), itself=target.id == current_operator().id,
                           minimum=accounts.PASSWORD_MIN)


@bp.post("/operators/<int:operator_id>/roles", endpoint="operator_roles")
@requires("manage_operators")
def roles(operator_id: int):
    db = get_session()
    target = _operator_or_404(operator_id)
    wanted = _roles_from_form()
    if target.id == current_operator().id and ADMIN in (target.roles or []) and ADMIN not in wanted:
        flash(_("You cannot remove your own administrator role: ask another administrator."), "error")
        return _back(operator_id)
    before = view(target)
    try:
        changed = accounts.set_roles(target, wanted)
    except accounts.AccountError as exc:
        flash(refusal(exc), "error")
        return _back(operator_id)
    if changed:
        audit.record(db, current_operator(), "operator.roles", "operator", target.id, before=before,
                     after=view(target))
        db.commit()
        keep_signed_in(target)
        flash(_("Roles changed."))
        flash(_("Sessions of this account opened elsewhere are signed out."))
    return _back(operator_id)


@bp.post("/operators/<int:operator_id>/active", endpoint="operator_active")
@requires("manage_operators")
def active(operator_id: int):
    db = get_session()
    target = _operator_or_404(operator_id)
    enable = request.form.get("active") == "1"
    if target.id == current_operator().id and not enable:
        flash(_("You cannot disable your own account."), "error")
        return _back(operator_id)
    before = view(target)
    if accounts.set_active(target, enable):
        audit.record(db, current_operator(), "operator.enable" if enable else "operator.disable", "operator",
                     target.id, before=before, after=view(target))
        db.commit()
        flash(_("Account enabled.") if enable else _("Account disabled: this operator is signed out."))
    return _back(operator_id)


@bp.post("/operators/<int:operator_id>/unlock", endpoint="operator_unlock")
@requires("manage_operators")
def unlock(operator_id: int):
    db = get_session()
    target = _operator_or_404(operator_id)
    before = view(target)
    target.locked_until, target.failed_logins = None, 0
    audit.record(db, current_operator(), "operator.unlock", "operator", target.id, before=before,
                 after=view(target))
    db.commit()
    flash(_("Account unlocked."))
    return _back(operator_id)


@bp.post("/operators/<int:operator_id>/password", endpoint="operator_password")
@requires("manage_operators")
def password(operator_id: int):
    db = get_session()
    target = _operator_or_404(operator_id)
    try:
        accounts.set_password(target, request.form.get("password", ""))
    except accounts.AccountError as exc:
        flash(refusal(exc), "error")
        return _back(operator_id)
    audit.record(db, current_operator(), "operator.password_reset", "operator", target.id,
                 after={"username": target.username, "password_changed": True})
    db.commit()
    keep_signed_in(target)
    flash(_("Password reset: give it to %(name)s by a safe way, never by SMS.", name=target.username))
    flash(_("Sessions of this account opened elsewhere are signed out."))
    return _back(operator_id)
