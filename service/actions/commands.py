"""Actions outside the form's questions: greeting, help, language, opt-out/in,
saving a confirmed report, and deciding what an unclear message is."""

from __future__ import annotations

from rasa_sdk import Action
from rasa_sdk.events import FollowupAction, SlotSet
from sqlalchemy import select

from bot import keywords
from bot.flow import alert_flow
from bot.languages import LANGUAGES
from bot.places import fold as fold_words
from service import alerts, reporters
from service.actions.common import forced, language, metadata, say, session_scope, understand, user_text
from service.actions.form import HELPERS, _save_draft
from service.models import Reporter


def _update_reporter(sender: str, **values) -> None:
    """A stored choice (language, subscription); the reporter is told only once it is saved."""
    with session_scope() as session:
        reporter = session.scalar(select(Reporter).where(Reporter.key == sender))
        if reporter is not None:
            for key, value in values.items():
                setattr(reporter, key, value)


def _change_subscription(tracker, subscribe: bool) -> None:
    """The same rules as a STOP/START keyword (service.reporters): an opt-out keeps its
    first time and the message that asked, whose confirmation may still be sent."""
    raw = metadata(tracker).get("message_id")
    message_id = int(raw) if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()) else None
    with session_scope() as session:
        reporter = session.scalar(select(Reporter).where(Reporter.key == tracker.sender_id))
        if reporter is None:
            return
        if subscribe:
            reporters.opt_in(session, reporter)
        else:
            reporters.opt_out(session, reporter, message_id)


class Greet(Action):
    def name(self):
        return "action_greet"

    async def run(self, dispatcher, tracker, domain):
        lang = language(tracker)
        if not forced(tracker) and understand(tracker).intent == "report_alert":
            # a bare place name the model took for a greeting: a report starts and asks what happened
            return [SlotSet("language", lang), FollowupAction(alert_flow().form)]
        say(dispatcher, "welcome", lang)
        return [SlotSet("language", lang)]


class Help(Action):
    def name(self):
        return "action_help"

    async def run(self, dispatcher, tracker, domain):
        lang = language(tracker)
        say(dispatcher, "help", lang)
        return [SlotSet("language", lang)]


class ChooseLanguage(Action):
    """The reporter's stated language wins over detection from now on, and is stored."""

    def name(self):
        return "action_choose_language"

    async def run(self, dispatcher, tracker, domain):
        message = tracker.latest_message or {}
        chosen = next((e.get("value") for e in message.get("entities") or ()
                       if e.get("entity") == "language" and e.get("value") in LANGUAGES), None)
        if chosen is None:  # "parle lingala svp": look for a language word
            for word in user_text(tracker).split():
                chosen = chosen or keywords.LANGUAGE_WORDS.get(keywords.fold(word))
        if chosen is None:
            say(dispatcher, "language_menu", language(tracker))
            return []
        _update_reporter(tracker.sender_id, language=chosen)
        say(dispatcher, "language_changed", chosen)
        return [SlotSet("language", chosen)]


# Negations in an opt-in the model read ("nalingi kozwa ba message lisusu te" means the
# opposite): then the subscription is left as it is.
NEGATION = frozenset("pas plus ne jamais sitaki hataki hatutaki sipendi usinitumie msitume te".split())


SURE, OPPOSITE_AT_MOST = 0.8, 0.1


def _sure_of(tracker, intent: str, opposite: str) -> bool:
    """The model changes a subscription only when it is sure and does not also see the
    opposite request (the words of "send me again" and "stop sending me" are close);
    otherwise the reporter is told the STOP and START words."""
    if forced(tracker):
        return True
    ranking = {i.get("name"): float(i.get("confidence") or 0.0)
               for i in (tracker.latest_message or {}).get("intent_ranking") or ()}
    return ranking.get(intent, 0.0) >= SURE and ranking.get(opposite, 0.0) <= OPPOSITE_AT_MOST


def _names_a_report(tracker, u) -> bool:
    """A message the model took for a subscription command but that names an armed
    group or a place ("adf wamerudi Beni": they came back) is a report: a report must
    never be lost to a misread opt-in or opt-out."""
    return not forced(tracker) and bool(u.perpetrator or u.place.status != "unknown")


class OptOut(Action):
    def name(self):
        return "action_opt_out"

    async def run(self, dispatcher, tracker, domain):
        lang = language(tracker)
        u = understand(tracker)
        if _names_a_report(tracker, u):
            return [SlotSet("language", lang), FollowupAction(alert_flow().form)]
        if not _sure_of(tracker, "opt_out", "opt_in"):
            say(dispatcher, "subscription_words", lang)  # not sure enough to stop someone's alerts
            return [SlotSet("language", lang)]
        _change_subscription(tracker, subscribe=False)
        say(dispatcher, "opted_out", lang)
        return [SlotSet("language", lang)]


class OptIn(Action):
    def name(self):
        return "action_opt_in"

    async def run(self, dispatcher, tracker, domain):
        lang = language(tracker)
        if _names_a_report(tracker, understand(tracker)):
            return [SlotSet("language", lang), FollowupAction(alert_flow().form)]
        if not _sure_of(tracker, "opt_in", "opt_out") or (
                not forced(tracker) and NEGATION & set(fold_words(user_text(tracker)).split())):
            say(dispatcher, "subscription_words", lang)  # "I don't want your messages any more" is
            return [SlotSet("language", lang)]  # not an opt-in: say which word stops, which restarts
        _change_subscription(tracker, subscribe=True)
        say(dispatcher, "opted_in", lang)
        return [SlotSet("language", lang)]


class Triage(Action):
    """An unclear message, a yes/no out of context, or one the model is unsure of:
    if it looks like a report (a known place, a category, several words), start one."""

    def name(self):
        return "action_triage"

    async def run(self, dispatcher, tracker, domain):
        lang = language(tracker)
        u = understand(tracker)
        words = len(u.text.split())
        looks_like_report = (
            u.place.status != "unknown" or (u.category and u.confidence >= 0.2) or words >= 5
        ) and u.intent not in ("affirm", "deny", "greet")
        if looks_like_report and not forced(tracker):
            return [SlotSet("language", lang), FollowupAction(alert_flow().form)]
        say(dispatcher, "acknowledged" if u.intent in ("affirm", "deny") else "out_of_scope", lang)
        return [SlotSet("language", lang)]


class SubmitAlert(Action):
    """The reporter confirmed: the draft becomes a new alert with a reference number."""

    def name(self):
        return "action_submit_alert"

    async def run(self, dispatcher, tracker, domain):
        flow = alert_flow()
        lang = tracker.get_slot("language") or language(tracker)
        draft_id = tracker.get_slot("draft_id")
        if tracker.get_slot("confirmed") is not True or draft_id is None:
            # Rasa goes on after a failed action with its events lost: a form whose
            # validation failed looks finished and the rules call us. Filing an empty
            # alert and telling the reporter "recorded" would lose the report: fail, so
            # the turn says nothing and the service tries the message again.
            raise RuntimeError("submit without a confirmed draft: the form's last turn failed")
        values = {name: tracker.get_slot(name) for name in flow.slots + list(HELPERS)}
        _save_draft(tracker, flow, values, lang, draft_id, tracker.get_slot("description"))
        with session_scope() as session:
            alert = alerts.submit(session, f"{tracker.sender_id}:{draft_id}")
            reference = alert.reference if alert else None
        if reference is None:  # no draft under this key: nothing to confirm
            say(dispatcher, "error", lang)
            return []
        say(dispatcher, flow.submit_reply, lang, args={"reference": reference})
        reset = flow.slots + list(HELPERS) + ["draft_id", "description"]
        return [SlotSet(name, None) for name in reset] + [SlotSet("language", lang)]
