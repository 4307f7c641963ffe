"""Alert categories: the codes are a contract (APIs and exports use exactly these)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    horizon: str  # immediate | short | structural | none
    restricted: bool = False  # never broadcast, never in public exports


CATEGORIES = (
    Category("ATTACK", "immediate"),
    Category("ARMED_PRESENCE", "short"),
    Category("CLASH", "immediate"),
    Category("ABDUCTION", "immediate"),
    Category("SEXUAL_VIOLENCE", "immediate", restricted=True),
    Category("LOOTING", "immediate"),
    Category("DISPLACEMENT", "short"),
    Category("HATE_SPEECH", "structural"),
    Category("LAND_CONFLICT", "structural"),
    Category("EXTORTION", "short"),
    Category("THREAT", "short"),
    Category("OTHER", "none"),
)

CODES = tuple(c.code for c in CATEGORIES)
BY_CODE = {c.code: c for c in CATEGORIES}

# NLU intents: one "report_<code in lower case>" intent per category; all of them are
# the public intent "report_alert".
REPORT_PREFIX = "report_"


def intent_for(code: str) -> str:
    return REPORT_PREFIX + code.lower()


def code_for_intent(intent: str | None) -> str | None:
    if not intent or not intent.startswith(REPORT_PREFIX):
        return None
    code = intent[len(REPORT_PREFIX):].upper()
    return code if code in BY_CODE else None


def label_msgid(code: str) -> str:
    """Message id of the short label of a category in the catalogs (see bot.messages)."""
    return "category." + code
