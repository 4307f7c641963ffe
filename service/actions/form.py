"""The alert form: reading answers, filling what a message already says, asking the rest.

Rasa's form loop calls `validate_alert_form` after every message while a report is
open, then asks the first field still empty with `action_ask_<field>`. The flow file
decides the fields, their order, menus and give-up rules; this module only applies it.

The flow is read as last saved (bot.flow.alert_flow reloads a changed file), while the
form Rasa runs is the trained domain's: when the two differ in the order or the set of
fields, the validation names the next question itself (``requested_slot``, as
rasa-sdk's FormValidationAction does for dynamic forms). A field the trained domain
does not have (added since `alerte train`) has no slot in Rasa yet: it is skipped until
the model is trained again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from rasa_sdk import Action
from rasa_sdk.events import SlotSet

from bot import answers
from bot.flow import ALERT_FIELDS, Field, Flow, alert_flow
from bot.parsing import EAST
from bot.perpetrators import UNIDENTIFIED_SOLDIERS
from bot.places import default_gazetteer
from bot.summary import (
    PEOPLE_MAX, PERPETRATOR_MAX, PLACE_TEXT_MAX, WHEN_FORMAT, WHEN_TEXT_MAX, place_label, shorten,
)
from bot.understanding import UNIDENTIFIED, Understanding
from service import alerts
from service.actions.common import (
    forced, home_area, language, metadata, original_text, received_at, say, session_scope, understand,
    user_text,
)

INTERRUPTIONS = {"help", "choose_language", "opt_out"}
HELPERS = ("place_candidates", "place_pending", "place_written", "correcting", "retries")
REQUESTED = "requested_slot"

log = logging.getLogger(__name__)
_untrained_logged: set[tuple[str, ...]] = set()


class ValidateAlertForm(Action):
    def name(self) -> str:
        return "validate_" + alert_flow().form

    async def run(self, dispatcher, tracker, domain):
        flow = alert_flow()
        requested = tracker.get_slot("requested_slot")
        u = understand(tracker)
        if requested and forced(tracker):
            return []  # a command (help, language): Rasa's rules take it, then the form goes on
        lang = language(tracker)
        slots = {name: tracker.get_slot(name) for name in flow.slots + list(HELPERS)}
        changes: dict = {}
        if tracker.get_slot("draft_id") is None:
            changes.update(draft_id=uuid.uuid4().hex[:16], description=original_text(tracker)[:1000])
        error = None
        if requested == "confirmed":
            error = _confirm(flow, slots, changes, u)
        elif requested in slots:
            field = flow.field(requested)
            answer = _read(field, u, slots, received_at(tracker), home_area(tracker))
            if answer.extra:
                changes.update(answer.extra)
            if answer.ok:
                changes[requested] = answer.value
                changes["retries"] = None
            elif answer.error:
                if u.intent in INTERRUPTIONS and u.confidence >= 0.8:
                    return []  # "I want to stop", "parle lingala": not an answer
                error = answer.error
                _give_up_or_retry(field, slots, changes, user_text(tracker))
        _fill_from_message(flow, u, slots, changes, overwrite=requested == "confirmed")
        _mark_not_applicable(flow, slots, changes)
        if error and not any(k in changes for k in flow.slots):
            say(dispatcher, error, lang)
        events = [SlotSet("language", lang)] + [SlotSet(k, v) for k, v in changes.items()]
        events += next_question(flow, {**slots, **changes}, domain)
        _save_draft(tracker, flow, {**slots, **changes}, lang,
                    changes.get("draft_id") or tracker.get_slot("draft_id"),
                    changes.get("description") or tracker.get_slot("description"))
        return events


def trained_slots(flow: Flow, domain: dict | None) -> list[str] | None:
    """The form's slots in the trained domain Rasa sent (None when it sent none)."""
    form = (((domain or {}).get("forms") or {}).get(flow.form) or {}).get("required_slots")
    return list(form) if isinstance(form, list) else None


def next_question(flow: Flow, values: dict, domain: dict | None) -> list:
    """[SlotSet(requested_slot, the flow's first empty field)] when the flow as saved no
    longer matches the trained form (reordered or removed fields); [] when it does, and
    Rasa picks the same question from its domain."""
    trained = trained_slots(flow, domain)
    if trained is None:
        return []
    slots = [s for s in flow.slots if s in trained]
    untrained = tuple(s for s in flow.slots if s not in trained)
    if untrained and untrained not in _untrained_logged:
        _untrained_logged.add(untrained)
        log.error("flow %s: fields %s are not in the trained domain: not asked until `alerte train` and "
                  "a reload of Rasa's model", flow.form, ", ".join(untrained))
    if slots == trained:
        return []
    return [SlotSet(REQUESTED, next((s for s in slots if values.get(s) is None), None))]


def _read(field: Field, u: Understanding, slots: dict, now: datetime, near: str | None) -> answers.Answer:
    text = u.text
    if field.type == "category":
        return answers.read_category(text, u, field)
    if field.type == "place":
        return answers.read_place(text, u, field, default_gazetteer(),
                                  slots.get("place_candidates"), slots.get("place_pending"), near)
    if field.type == "time":
        return answers.read_time(text, u, field, now)
    if field.type == "count":
        return answers.read_count(text, u, field)
    return answers.read_text(text, u, field)


def _confirm(flow: Flow, slots: dict, changes: dict, u: Understanding) -> str | None:
    if slots.get("correcting"):
        n = answers.number_choice(u.text)
        if n is not None and 1 <= n <= len(flow.fields):
            changes.update({flow.fields[n - 1].name: None, "correcting": None, "confirmed": None,
                            "place_candidates": None, "place_pending": None})
            return None
        changes["retries"] = {"slot": "correcting", "n": ((slots.get("retries") or {}).get("n") or 0) + 1}
        return "invalid_choice"
    verdict = answers.read_yes_no(u.text, u)
    if verdict is True:
        changes["confirmed"] = True
    elif verdict is False:
        changes["correcting"] = True
    else:
        changes["retries"] = {"slot": "confirmed", "n": ((slots.get("retries") or {}).get("n") or 0) + 1}
        return "not_understood"
    return None


def _give_up_or_retry(field: Field, slots: dict, changes: dict, text: str) -> None:
    """Count wrong answers; past the flow's limit, record what we can and move on."""
    retries = slots.get("retries") or {}
    n = (retries.get("n") or 0) + 1 if retries.get("slot") == field.name else 1
    changes["retries"] = {"slot": field.name, "n": n}
    if field.give_up_after and n >= field.give_up_after:
        changes[field.name] = _unknown_value(field)
        changes["retries"] = None


def _unknown_value(field: Field):
    if field.give_up_value:
        return field.give_up_value
    return {"time": {"at": None, "option": None, "text": None}, "count": {"n": None, "many": False},
            "text": ""}.get(field.type, "")


def _fill_from_message(flow: Flow, u: Understanding, slots: dict, changes: dict, overwrite: bool) -> None:
    """A report often answers several questions at once: keep what it says."""
    merged = {**slots, **changes}
    found: dict = {}
    long_enough = len(u.text.split()) >= 3
    if u.category and u.confidence >= 0.5 and long_enough:
        found["category"] = u.category
    if u.place.status == "found":
        found["place"] = u.place.place.key
        if "place" not in changes and (merged.get("place") is None or overwrite):
            changes.setdefault("place_written", (u.place.written or u.place.text)[:80])
    elif u.place.status == "ambiguous" and merged.get("place") is None and not merged.get("place_candidates"):
        changes["place_candidates"] = [c.key for c in u.place.candidates][:5]
        changes.setdefault("place_written", (u.place.written or u.place.text)[:80])
    if u.when:
        found["occurred_at"] = {"at": u.when.at.isoformat(), "option": None, "text": u.when.text}
    if u.people is not None and long_enough:
        found["people_affected"] = {"n": u.people.number, "many": u.people.many}
    if u.perpetrator:
        found["perpetrator"] = u.perpetrator
    for name, value in found.items():
        if name in changes:
            continue
        if merged.get(name) in (None, answers.NOT_APPLICABLE) or (overwrite and merged.get(name) != value):
            changes[name] = value
            if overwrite and name != "confirmed":
                changes["confirmed"] = None  # show the corrected summary again


def _mark_not_applicable(flow: Flow, slots: dict, changes: dict) -> None:
    category = {**slots, **changes}.get("category")
    for field in flow.fields:
        value = {**slots, **changes}.get(field.name)
        if not field.applies_to(category) and value is None:
            changes[field.name] = answers.NOT_APPLICABLE
        elif field.applies_to(category) and value == answers.NOT_APPLICABLE:
            changes[field.name] = None


def draft_fields(values: dict, lang: str, description: str | None) -> alerts.DraftFields:
    """Slot values to the columns of an alert."""
    fields = alerts.DraftFields(language=lang, description=description)
    fields.category = values.get("category") if values.get("category") != answers.NOT_APPLICABLE else None
    place = values.get("place")
    if isinstance(place, str) and place.startswith("text:"):
        fields.place_text = place[5:]
    elif place:
        fields.place = default_gazetteer().get(place)
        fields.place_text = values.get("place_written")  # the display name is the place's; this is the reporter's
    elif values.get("place_pending"):
        fields.place_text = values["place_pending"]
    when = values.get("occurred_at")
    if isinstance(when, dict):
        fields.occurred_at = datetime.fromisoformat(when["at"]) if when.get("at") else None
        fields.occurred_text = when.get("text") or when.get("option")
    people = values.get("people_affected")
    if isinstance(people, dict):
        fields.people_affected, fields.people_many = people.get("n"), bool(people.get("many"))
    perpetrator = values.get("perpetrator")
    fields.perpetrator = perpetrator if perpetrator and perpetrator != answers.NOT_APPLICABLE else None
    return fields


def _save_draft(tracker, flow: Flow, values: dict, lang: str, draft_id: str, description: str | None) -> None:
    """Every answer is saved at once, so an abandoned report is never lost: a turn whose
    draft could not be saved fails (and is tried again), it never goes on without it."""
    meta = metadata(tracker)
    with session_scope() as session:
        alerts.save_draft(session, f"{tracker.sender_id}:{draft_id}", tracker.sender_id,
                          draft_fields(values, lang, description),
                          conversation_id=meta.get("conversation_id"))


def summary(flow: Flow, values: dict) -> dict:
    """The confirmation summary as a nested payload (rendered in the reporter's language).

    What the reporter wrote (a place as text, a time in words, the perpetrator) is cut
    to the limits of bot.summary, so that ``confirm`` is one SMS in every language;
    the draft and the alert keep the whole text (draft_fields)."""
    category = values.get("category")
    return {"msg": flow.summary, "args": {
        "category": "@category." + category if category else "@value.unknown",
        "place": _place_label(values.get("place")),
        "when": _when_label(values.get("occurred_at")),
        "people": _people_label(values.get("people_affected")),
        "perpetrator": _perpetrator_label(values.get("perpetrator")),
    }}


def _place_label(place) -> str:
    if isinstance(place, str) and place.startswith("text:"):
        return shorten(place[5:], PLACE_TEXT_MAX) or "@value.unknown"
    record = default_gazetteer().get(place) if place else None
    return "@value.unknown" if record is None else place_label(record)


def _when_label(when) -> str:
    if not isinstance(when, dict):
        return "@value.unknown"
    if when.get("option"):
        return "@when." + when["option"]
    if when.get("at"):
        return datetime.fromisoformat(when["at"]).astimezone(EAST).strftime(WHEN_FORMAT)
    return shorten(when.get("text") or "", WHEN_TEXT_MAX) or "@value.unknown"


def _people_label(people) -> str:
    if not isinstance(people, dict):
        return "-"
    if people.get("many") or (people.get("n") or 0) > PEOPLE_MAX:
        return "@value.many"
    if people.get("n") is None:
        return "@value.unknown"
    return "@value.none" if people["n"] == 0 else str(people["n"])


def _perpetrator_label(value) -> str:
    if value == UNIDENTIFIED:
        return "@value.armed_men"
    if value == UNIDENTIFIED_SOLDIERS:  # soldiers of no named force (bot/perpetrators.py)
        return "@value.soldiers"
    if not value or value == answers.NOT_APPLICABLE:
        return "@value.unknown"
    return shorten(value, PERPETRATOR_MAX) or "@value.unknown"


class AskFieldAction(Action):
    """`action_ask_<slot>`: the question for a field, with its menu, in the reporter's language."""

    slot = ""

    def name(self) -> str:
        return "action_ask_" + self.slot

    async def run(self, dispatcher, tracker, domain):
        flow = alert_flow()
        lang = tracker.get_slot("language") or language(tracker)
        slot, events = self.slot, []
        if slot != "confirmed" and slot not in flow.slots:
            # removed from the flow since Rasa chose it (the file changed between two calls of
            # this turn, or Rasa sent no domain): ask the flow's next question instead
            values = {name: tracker.get_slot(name) for name in flow.slots}
            trained = trained_slots(flow, domain) or flow.slots
            slot = next((s for s in flow.slots if s in trained and values.get(s) is None), "confirmed")
            log.warning("action_ask_%s: no longer a field of the flow, asking %s", self.slot, slot)
            events = [SlotSet(REQUESTED, slot)]
        ask(dispatcher, tracker, flow, slot, lang)
        return events


def ask(dispatcher, tracker, flow: Flow, slot: str, lang: str) -> None:
    """The question of a field of the flow, or the confirmation."""
    if slot == "confirmed":
        if tracker.get_slot("correcting"):
            say(dispatcher, flow.correct_ask, lang, options=flow.correction_menu())
        else:
            values = {name: tracker.get_slot(name) for name in flow.slots}
            say(dispatcher, flow.confirm_ask, lang, args={"summary": summary(flow, values)})
        return
    field = flow.field(slot)
    candidates = tracker.get_slot("place_candidates") if field.type == "place" else None
    if candidates:
        gaz = default_gazetteer()
        records = [gaz.get(k) for k in candidates]
        options = [[i + 1, f"{r.name} ({r.admin2_name or r.admin1_name})"] for i, r in enumerate(records) if r]
        say(dispatcher, field.ask_choice, lang, args={"name": records[0].name if records[0] else ""},
            options=options)
    elif field.type == "place" and tracker.get_slot("place_pending"):
        say(dispatcher, field.ask_unknown, lang)
    else:  # the flow may word the question after the kind of report (ask_for)
        say(dispatcher, field.question(tracker.get_slot("category")), lang, options=field.menu() or None)


# one ask action per field a flow may have (bot.flow.ALERT_FIELDS), not only the fields of
# the flow read at import: a field added to the file later is served once Rasa is trained
for _slot in (*ALERT_FIELDS, "confirmed"):
    _name = f"Ask_{_slot}"
    # module attributes, so Sanic's worker process can unpickle them
    globals()[_name] = type(_name, (AskFieldAction,), {"slot": _slot, "__qualname__": _name})
