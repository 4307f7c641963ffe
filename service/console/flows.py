"""Flow editors' pages: the alert conversation of flows/alert.yml (its questions, their
order, the numbered answers of a menu and who is asked), changed from the console.

Every change is made on the file's own YAML (its comments kept, ruamel.yaml round trip),
written to a temporary file and read back by bot/flow.py's own loader: a flow the loader
refuses is never saved, and the editor reads the loader's reason. A saved change keeps
the file it replaces in ``<FLOWS_DIR>/.history/alert-<UTC time>-<operator>.yml``; the
history page shows each change as a diff and restores any earlier file, checked the same
way. Saves and restores are in the audit log (``flow.save``, ``flow.rollback``) with the
YAML before and after and their SHA-256.

The files are those under the FLOWS_DIR setting (the repository's flows/ by default),
replaced whole (a temporary file, then os.replace). Every process of the bot reloads a
changed file within about two seconds (bot.flow.alert_flow), and the form follows the
saved order of the questions even where Rasa's trained form differs
(service/actions/form.py). Only a field the trained model does not have waits for
``alerte train``: none of the changes made here adds one, a restored version may.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from bot import flow as bot_flow
from bot.categories import CODES
from bot.messages import MESSAGES
from service import audit
from service.console import bp, files
from service.console.auth import current_operator, requires
from service.console.i18n import _
from service.db import get_session

FLOW = "alert"
HISTORY = ".history"
VERSION = re.compile(r"^alert-(\d{8}T\d{12}Z)-([a-z0-9._-]{1,64})\.yml$")
OPS = ("move_field", "move_option", "remove_option", "add_option", "set_ask", "set_ask_for", "set_only_for")
# The answers a menu may offer are those the bot's parsers know for that field: the ones of
# the shipped flow. A removed one can be added back; a new value would be one the bot could
# not read (that is a developer's change, in bot/ and flows/ together).
SHIPPED = Path(bot_flow.__file__).resolve().parent.parent / "flows" / f"{FLOW}.yml"


class Refused(Exception):
    """The change cannot be saved; the message says why (shown to the editor)."""


def flows_dir() -> Path:
    return Path(current_app.config.get("FLOWS_DIR") or bot_flow.FLOWS_DIR)


def flow_file() -> Path:
    return flows_dir() / f"{FLOW}.yml"


def history_dir() -> Path:
    return flows_dir() / HISTORY


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _yaml() -> YAML:
    yaml = YAML()  # round trip: the operators' comments stay where they are
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def parse_yaml(data: bytes):
    return _yaml().load(data.decode("utf-8"))


def dump_yaml(doc) -> bytes:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return _spaced(out.getvalue()).encode("utf-8")


FIELD_START = re.compile(r"^  - name:")


def _spaced(text: str) -> str:
    """One blank line before each field, as the file is written by hand: ruamel keeps a
    blank line with the key before it, so a moved field would take its gap with it."""
    lines = []
    for line in text.splitlines(keepends=True):
        blank = not line.strip()
        if blank and (not lines or not lines[-1].strip()):
            continue
        if FIELD_START.match(line) and lines and lines[-1].strip() and lines[-1].rstrip() != "fields:":
            lines.append("\n")
        lines.append(line)
    return "".join(lines)


# --- checking and writing ---------------------------------------------------------------

def validate(data: bytes) -> bot_flow.Flow:
    """The candidate as bot/flow.py loads it, from a file beside the real one; Refused
    with the loader's own message (naming alert.yml, not the temporary file)."""
    folder = flows_dir()
    tmp = folder / f".{FLOW}.yml.{os.getpid()}.check.tmp"
    tmp.write_bytes(data)
    try:
        return bot_flow.load(tmp)
    except bot_flow.FlowError as exc:
        raise Refused(str(exc).replace(str(tmp), f"{FLOW}.yml")) from None
    except Exception as exc:  # YAML that does not parse, or not a mapping at all
        raise Refused(f"{FLOW}.yml: {type(exc).__name__}: {exc}".replace(str(tmp), f"{FLOW}.yml")) from None
    finally:
        tmp.unlink(missing_ok=True)


def locked():
    """One save at a time (two editors, several workers)."""
    return files.locked(flows_dir())


def _who(operator) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", (operator.username if operator else "system").lower()).strip("-")
    return (name or "operator")[:64]


def keep(previous: bytes, operator) -> str:
    """The replaced file, kept in the history; its file name."""
    folder = history_dir()
    folder.mkdir(exist_ok=True)
    while True:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = folder / f"{FLOW}-{stamp}-{_who(operator)}.yml"
        if not path.exists():
            break
    files.replace(path, previous)
    return path.name


def save(before: bytes, after: bytes, action: str, change: dict) -> str:
    """Checked already: keep `before`, audit, write `after`; the history file's name."""
    operator = current_operator()
    db = get_session()
    kept = keep(before, operator)
    audit.record(db, operator, action, "flow", FLOW,
                 before={"sha256": sha256(before), "yaml": before.decode("utf-8")},
                 after={"sha256": sha256(after), "yaml": after.decode("utf-8"), "kept": kept, **change})
    db.flush()
    files.replace(flow_file(), after)
    db.commit()
    return kept


# --- the changes ------------------------------------------------------------------------

def _field(doc, name: str):
    fields = doc.get("fields") if hasattr(doc, "get") else None
    for i, raw in enumerate(fields or []):
        if hasattr(raw, "get") and raw.get("name") == name:
            return i, raw
    raise Refused(_("There is no field %(name)s in the flow.", name=name))


def _step(direction: str) -> int:
    if direction not in ("up", "down"):
        raise Refused(_("Move a field or an answer up or down."))
    return -1 if direction == "up" else 1


def _move(seq, index: int, step: int) -> None:
    target = index + step
    if not 0 <= target < len(seq):
        raise Refused(_("This is already the first or the last one."))
    seq.insert(target, seq.pop(index))


def _option_list(raw, name: str):
    options = raw.get("options")
    if not isinstance(options, list):
        raise Refused(_("The answers of %(name)s are not a list that can be edited here (the categories "
                        "follow bot/categories.py).", name=name))
    return options


def _index(options, value: str) -> int:
    try:
        index = int(value)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < len(options):
        raise Refused(_("There is no such answer."))
    return index


def apply(doc, form) -> dict:
    """Make the change the form asks for on the YAML document; what changed (for the audit)."""
    op = form.get("op", "")
    name = form.get("field", "")
    if op not in OPS:
        raise Refused(_("Unknown change."))
    index, raw = _field(doc, name)
    if op == "move_field":
        direction = form.get("direction", "")
        _move(doc["fields"], index, _step(direction))
        return {"op": op, "field": name, "direction": direction}
    if op in ("move_option", "remove_option"):
        options = _option_list(raw, name)
        at = _index(options, form.get("option", ""))
        value = str(options[at].get("value")) if hasattr(options[at], "get") else str(options[at])
        if op == "move_option":
            direction = form.get("direction", "")
            _move(options, at, _step(direction))
            return {"op": op, "field": name, "option": value, "direction": direction}
        if len(options) == 1:  # bot/flow.py reads an empty list as "no menu"
            raise Refused(_("%(name)s needs at least one answer: its last one cannot be removed.", name=name))
        options.pop(at)
        return {"op": op, "field": name, "option": value}
    if op == "add_option":
        options = _option_list(raw, name)
        value = form.get("value", "")
        present = {str(o.get("value")) for o in options if hasattr(o, "get")}
        known = {str(o.get("value")): o for o in shipped_options(name)}
        if value not in known or value in present:
            raise Refused(_("%(value)s is not an answer %(name)s can take back.", value=value or "—", name=name))
        options.append(known[value])
        return {"op": op, "field": name, "option": value}
    if op == "set_ask_for":
        code, ask = form.get("category", ""), form.get("ask", "").strip()
        if code not in CODES:
            raise Refused(_("There is no such kind of report."))
        previous = dict(raw.get("ask_for") or {})
        if ask:
            if ask not in MESSAGES:
                raise Refused(_("%(id)s is not a message id of the catalogs (bot/messages.py).", id=ask))
            if raw.get("ask_for") is None:
                raw["ask_for"] = {}
            raw["ask_for"][code] = ask
        elif raw.get("ask_for") and code in raw["ask_for"]:
            del raw["ask_for"][code]
            if not raw["ask_for"]:
                del raw["ask_for"]
        return {"op": op, "field": name, "category": code, "from": previous.get(code), "to": ask or None}
    if op == "set_ask":
        ask = form.get("ask", "").strip()
        if ask not in MESSAGES:
            raise Refused(_("%(id)s is not a message id of the catalogs (bot/messages.py).", id=ask or "—"))
        previous = raw.get("ask")
        raw["ask"] = ask
        return {"op": op, "field": name, "from": previous, "to": ask}
    codes = [c.strip() for c in form.getlist("only_for") if c.strip()]
    chosen = list(dict.fromkeys(codes))  # the order of the form, once each
    previous = list(raw.get("only_for") or [])
    if chosen:
        seq = CommentedSeq(sorted(chosen, key=lambda c: (CODES.index(c) if c in CODES else len(CODES), c)))
        seq.fa.set_flow_style()
        raw["only_for"] = seq
    elif "only_for" in raw:
        del raw["only_for"]
    return {"op": op, "field": name, "from": previous, "to": chosen}


# --- pages ------------------------------------------------------------------------------

def _page(problems=(), status: int = 200):
    data = flow_file().read_bytes()
    try:
        flow, broken = validate(data), None
    except Refused as exc:
        flow, broken = None, str(exc)
    return render_template("console/flows.html", flow=flow, broken=broken, problems=problems,
                           base=sha256(data), categories=CODES, message_ids=sorted(MESSAGES),
                           menus={f.name: _listed(data, f.name) for f in (flow.fields if flow else ())},
                           addable={f.name: _addable(data, f.name) for f in (flow.fields if flow else ())}), status


def shipped_options(name: str) -> list:
    """The answers of the field in the shipped flow (what the bot can read), as YAML maps."""
    try:
        raw = _field(parse_yaml(SHIPPED.read_bytes()), name)[1].get("options")
    except (OSError, Refused):
        return []
    return [o for o in raw if hasattr(o, "get")] if isinstance(raw, list) else []


def _addable(data: bytes, name: str) -> list[dict]:
    """Answers of the shipped flow this field no longer offers (to add back)."""
    try:
        present = {str(o.get("value")) for o in _field(parse_yaml(data), name)[1].get("options") or []
                   if hasattr(o, "get")}
    except Refused:
        return []
    return [{"value": str(o.get("value")), "label": str(o.get("label"))} for o in shipped_options(name)
            if str(o.get("value")) not in present]


def _listed(data: bytes, name: str) -> bool:
    """The field's answers are a list in the file (editable here), not `categories`."""
    try:
        return isinstance(_field(parse_yaml(data), name)[1].get("options"), list)
    except Refused:
        return False


@bp.get("/flows", endpoint="flows")
@requires("translate")
def index():
    return _page()


@bp.post("/flows", endpoint="flows_save")
@requires("translate")
def change():
    with locked():
        before = flow_file().read_bytes()
        if request.form.get("base", "") != sha256(before):
            return _page([_("Someone changed the flow while you were reading it: look at it as it is now, "
                            "then make your change again.")], 409)
        try:
            doc = parse_yaml(before)
            what = apply(doc, request.form)
            after = dump_yaml(doc)
            validate(after)
        except Refused as exc:
            return _page([_("Not saved: %(reason)s", reason=str(exc))], 422)
        if after == before:
            flash(_("Nothing changed."))
            return redirect(url_for("console.flows"))
        save(before, after, "flow.save", what)
    flash(_("Saved and checked. Reporters get it within a few seconds, without a restart."))
    return redirect(url_for("console.flows"))


def versions() -> list[dict]:
    """The kept files, newest first, each with the change that replaced it (a diff to the
    file that came after it: the next kept one, or the current file)."""
    folder = history_dir()
    names = sorted((p.name for p in folder.iterdir() if VERSION.match(p.name)), reverse=True) \
        if folder.is_dir() else []
    current = flow_file().read_bytes()
    out, newer, newer_label = [], current, f"{FLOW}.yml"
    for name in names:
        data = (folder / name).read_bytes()
        stamp, who = VERSION.match(name).groups()
        at = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=timezone.utc)
        diff = "".join(difflib.unified_diff(data.decode("utf-8").splitlines(keepends=True),
                                            newer.decode("utf-8").splitlines(keepends=True),
                                            fromfile=name, tofile=newer_label))
        out.append({"name": name, "at": at, "operator": who, "diff": diff, "sha256": sha256(data),
                    "current": data == current})
        newer, newer_label = data, name
    return out


@bp.get("/flows/history", endpoint="flow_history")
@requires("translate")
def history(problems=(), status: int = 200):
    return render_template("console/flow_history.html", versions=versions(), problems=problems,
                           base=sha256(flow_file().read_bytes())), status


@bp.post("/flows/history/<name>/rollback", endpoint="flow_rollback")
@requires("translate")
def rollback(name: str):
    if not VERSION.match(name) or not (history_dir() / name).is_file():
        abort(404)
    with locked():
        before = flow_file().read_bytes()
        if request.form.get("base", "") != sha256(before):
            return history([_("Someone changed the flow while you were reading it: look at the history as "
                              "it is now, then restore again.")], 409)
        after = (history_dir() / name).read_bytes()
        try:
            validate(after)
        except Refused as exc:
            return history([_("Not restored: %(reason)s", reason=str(exc))], 422)
        if after == before:
            flash(_("This version is the current flow already."))
            return redirect(url_for("console.flow_history"))
        save(before, after, "flow.rollback", {"restored": name})
    flash(_("Restored %(name)s. Reporters get it within a few seconds, without a restart; a field the "
            "trained model does not have is asked only after `alerte train`.", name=name))
    return redirect(url_for("console.flow_history"))
