"""Which of French, Swahili and Lingala a message is written in.

Why two signals: py3langid (offline, bundled model, knows Lingala) is reliable on a
sentence but guesses on one or two words, and SMS are often that short ("bjr",
"mbote", "ndiyo"). A small vote of marker words covers the short ones. A reporter's
stated choice always wins, and a weak guess never overrides what the conversation
already knows (the previous language).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

from bot.languages import DEFAULT_LANGUAGE, LANGUAGES, normalise

CONFIDENT = 0.8  # below this, a detection does not change the conversation's language
MARKER_CONFIDENCE = 0.85

# Words that point to one language in short messages (SMS abbreviations included).
MARKERS = {
    "fr": set("""bjr bsr slt svp stp pr ds mm bonjour bonsoir salut merci oui non aide je j nous vous ils
elles sont est ont les des dans avec pour pas suis qu c etait quoi comment""".split()),
    "sw": set("""habari jambo sasa ndiyo ndio hapana asante sijui wako wapo watu leo jana kwa gani hakuna
kuna tafadhali msaada mambo poa wanamgambo wameua wamekufa nyumba kijiji""".split()),
    "ln": set("""mbote boni iyo te nayebi bato lelo lobi ezali bazali malamu mpo pe kasi soki lisalisi ndenge
nde bandeko oyo wana awa""".split()),
}
_MARKER_OF = {w: lang for lang, words in MARKERS.items() for w in words}


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", (text or "").replace("ɛ", "e").replace("ɔ", "o"))
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


@lru_cache(maxsize=1)
def _identifier():
    """The py3langid model restricted to our languages, loaded once (about 1 s)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def _analyse(text: str) -> tuple[str | None, float, bool, int]:
    """(language, confidence, decided by marker words, number of words)."""
    folded = _fold(text)
    words = re.findall(r"[a-z]+", folded)
    if not words:
        return None, 0.0, False, 0
    lang, prob = _identifier().classify(" ".join(words))
    prob = float(prob)
    votes = Counter(_MARKER_OF[w] for w in words if w in _MARKER_OF)
    if votes:
        ranked = votes.most_common()
        best = [l for l, n in ranked if n == ranked[0][1]]
        top = lang if lang in best else best[0]
        if len(words) <= 3 and (len(best) == 1 or lang in best):
            return top, max(MARKER_CONFIDENCE, prob if lang == top else 0.0), True, len(words)
        if lang == top:
            return lang, max(prob, MARKER_CONFIDENCE), True, len(words)
        # the model hesitates and the markers agree on another language
        if prob < CONFIDENT and len(best) == 1 and ranked[0][1] >= 2:
            return top, CONFIDENT, True, len(words)
    return lang, prob, False, len(words)


def detect(text: str) -> tuple[str | None, float]:
    """(language code, confidence in 0..1); (None, 0.0) without any letters."""
    lang, prob, _, _ = _analyse(text)
    return lang, prob


def choose(text: str, stated: str | None = None, previous: str | None = None,
           default: str = DEFAULT_LANGUAGE) -> str:
    """The language to answer in: stated > confident detection > previous > default."""
    stated = normalise(stated)
    if stated:
        return stated
    lang, prob, by_marker, n_words = _analyse(text)
    if lang and prob >= CONFIDENT and (n_words >= 2 or by_marker):
        return lang
    return normalise(previous) or default
