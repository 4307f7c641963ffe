"""The one place that holds the SMS command words (opt-out, opt-in, help, join, language).

A command is a message that is *only* the word (case, accents and surrounding
punctuation ignored), as carriers and Twilio do: "stop" is a command, "ils ont dit
stop" is not. Swahili and Lingala have no standard carrier keywords; the ones below
were chosen to be short, common imperatives that nobody writes alone in a report.

JOIN starts the sign-up for safety broadcasts (bot/subscription.py), in the word's
language. Its Swahili and Lingala words await a native speaker's review: JIUNGE (join),
JIANDIKISHE (register yourself); Lingala KOTA (enter, as in kokota na lisanga: join a
group), MIKOMISA and KOMIKOMISA (register oneself, as for voter registration).
"""

import re
import unicodedata
from dataclasses import dataclass

OPT_OUT = "opt_out"
OPT_IN = "opt_in"
HELP = "help"
LANGUAGE = "choose_language"
JOIN = "join"

WORDS: dict[str, dict[str, str | None]] = {
    OPT_OUT: {
        # carrier standard (English), French, Swahili, Lingala
        "STOP": None, "STOPALL": None, "UNSUBSCRIBE": None, "CANCEL": None, "END": None,
        "QUIT": None, "ARRET": "fr", "ARRETER": "fr", "ACHA": "sw", "SIMAMA": "sw",
        "TIKA": "ln", "KOTIKA": "ln",
    },
    OPT_IN: {
        "START": None, "UNSTOP": None, "YES": None, "DEMARRER": "fr", "REPRENDRE": "fr",
        "ANZA": "sw", "ANZISHA": "sw", "BANDA": "ln", "KOBANDA": "ln",
    },
    HELP: {
        "HELP": None, "INFO": None, "AIDE": "fr", "MSAADA": "sw", "SAIDIA": "sw",
        "LISALISI": "ln", "SALISA": "ln",
    },
    JOIN: {
        # English; French (S'ABONNER, S'INSCRIRE fold to SABONNER, SINSCRIRE); Swahili;
        # Lingala: to be confirmed by native speakers (see the module docstring)
        "JOIN": None, "SUBSCRIBE": None, "ABONNER": "fr", "SABONNER": "fr", "ABONNEMENT": "fr",
        "INSCRIRE": "fr", "SINSCRIRE": "fr", "INSCRIPTION": "fr", "JIUNGE": "sw", "JIANDIKISHE": "sw",
        "KOTA": "ln", "MIKOMISA": "ln", "KOMIKOMISA": "ln",
    },
}

# Words that choose a language, mapped to the language chosen.
LANGUAGE_WORDS = {
    "FR": "fr", "FRANCAIS": "fr", "FRANCE": "fr", "FRENCH": "fr",
    "SW": "sw", "SWAHILI": "sw", "KISWAHILI": "sw", "KISWAHILII": "sw",
    "LN": "ln", "LINGALA": "ln", "LINGALLA": "ln",
}


@dataclass(frozen=True)
class Command:
    intent: str  # one of OPT_OUT, OPT_IN, HELP, JOIN, LANGUAGE
    language: str | None  # the language the word belongs to (or chosen), if any


def fold(text: str) -> str:
    """Upper-case, strip accents and everything but letters and digits."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^A-Z0-9]", "", plain.upper())


def match(text: str | None) -> Command | None:
    """The command this message is, or None if it is not a lone command word."""
    if not text or len(text) > 40 or len(text.split()) > 2:
        return None
    word = fold(text)
    for intent, words in WORDS.items():
        if word in words:
            return Command(intent, words[word])
    if word in LANGUAGE_WORDS:
        return Command(LANGUAGE, LANGUAGE_WORDS[word])
    return None
