"""Which of French, Swahili and Lingala a message is written in.

Why three signals: py3langid (offline, bundled model, knows Lingala) is reliable on a
sentence but guesses on one or two words, and SMS are often that short ("bjr",
"mbote", "etumba"). So its probabilities are multiplied by the Rasa model's evidence:
the intent the model predicts, and how likely the message's words are under that
intent's training examples in each language (nlu/data/nlu_<lang>.yml, the data the
model learnt from; words it never saw, such as place names, are ignored). A small vote
of marker words covers SMS abbreviations. A reporter's stated choice always wins, and a
weak guess never overrides what the conversation already knows (the previous language).
"""

from __future__ import annotations

import contextlib
import math
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

from bot.languages import DEFAULT_LANGUAGE, LANGUAGES, normalise

CONFIDENT = 0.8  # below this, a detection does not change the conversation's language
MARKER_CONFIDENCE = 0.85
ONE_WORD_CONFIDENT = 0.9  # a single word decides only with this much combined confidence

# Words that point to one language in short messages (SMS abbreviations included).
MARKERS = {
    "fr": set("""bjr bsr slt svp stp pr ds mm bonjour bonsoir salut merci oui non aide je j nous vous ils
elles sont est ont les des dans avec pour pas suis qu c etait quoi comment""".split()),
    "sw": set("""habari jambo sasa ndiyo ndio hapana asante sijui wako wapo watu leo jana kwa gani hakuna
kuna tafadhali msaada mambo poa wanamgambo wameua wamekufa nyumba kijiji""".split()),
    "ln": set("""mbote boni iyo te nayebi bato lelo lobi ezali bazali malamu mpo pe kasi soki lisalisi ndenge
nde bandeko oyo wana awa matondo""".split()),
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


NLU_DATA = Path(__file__).resolve().parent.parent / "nlu" / "data"
_ANNOTATION = re.compile(r"\[([^\]]+)\](\([^)]*\)|\{[^}]*\})")
ALL_INTENTS = "*"


@lru_cache(maxsize=1)
def _lexicon() -> dict[str, dict[str, Counter]]:
    """intent -> language -> word counts of the model's training examples ("*": all)."""
    import yaml

    lexicon: dict[str, dict[str, Counter]] = {}
    for lang in LANGUAGES:
        path = NLU_DATA / f"nlu_{lang}.yml"
        if not path.exists():
            continue
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu") or ():
            intent = block.get("intent")
            if not intent:
                continue
            for line in (block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    words = re.findall(r"[a-z]+", _fold(_ANNOTATION.sub(r"\1", line[2:])))
                    for key in (intent, ALL_INTENTS):
                        lexicon.setdefault(key, {}).setdefault(lang, Counter()).update(words)
    return lexicon


@lru_cache(maxsize=1)
def _shared_words() -> frozenset[str]:
    """Words in the training data of every language: place and armed-group names, "m23",
    loan words. They say nothing of the language, so they are not evidence."""
    every = [set(c) for c in (_lexicon().get(ALL_INTENTS) or {}).values()]
    return frozenset(set.intersection(*every)) if len(every) == len(LANGUAGES) else frozenset()


_USE_MODEL = [True]


@contextlib.contextmanager
def without_model_evidence():
    """Identifier and markers only (for measuring what the model's evidence adds)."""
    _USE_MODEL[0] = False
    try:
        yield
    finally:
        _USE_MODEL[0] = True


def model_evidence(text: str, intent: str | None = None) -> tuple[dict[str, float], int]:
    """P(language | words, intent) under the model's training data, by naive Bayes with
    add-one smoothing over the words the data knows; and how many such words there are.
    Uniform (and 0 words) when the data knows none of them."""
    lexicon = _lexicon()
    counts = lexicon.get(intent or ALL_INTENTS) or lexicon.get(ALL_INTENTS) or {}
    langs = [lang for lang in LANGUAGES if lang in counts]
    if not langs:
        return {lang: 1 / len(LANGUAGES) for lang in LANGUAGES}, 0
    vocabulary = set().union(*(counts[lang] for lang in langs)) - _shared_words()
    words = [w for w in re.findall(r"[a-z]+", _fold(text)) if w in vocabulary]
    if not words:
        return {lang: 1 / len(LANGUAGES) for lang in LANGUAGES}, 0
    log = {}
    for lang in langs:
        total = sum(counts[lang].values()) + len(vocabulary)
        log[lang] = sum(math.log((counts[lang][w] + 1) / total) for w in words)
    top = max(log.values())
    weights = {lang: math.exp(log.get(lang, top - 50) - top) for lang in LANGUAGES}
    norm = sum(weights.values())
    return {lang: w / norm for lang, w in weights.items()}, len(words)


def _analyse(text: str, intent: str | None = None) -> tuple[str | None, float, bool, int]:
    """(language, confidence, decided by marker words, number of words)."""
    folded = _fold(text)
    words = re.findall(r"[a-z]+", folded)
    if not words:
        return None, 0.0, False, 0
    ranked = dict(_identifier().rank(" ".join(words)))
    evidence, known = model_evidence(folded, intent) if _USE_MODEL[0] else ({}, 0)
    if known:  # the identifier's and the model's evidence, taken as independent
        ranked = {lang: ranked.get(lang, 0.0) * evidence[lang] for lang in LANGUAGES}
        norm = sum(ranked.values()) or 1.0
        ranked = {lang: p / norm for lang, p in ranked.items()}
    lang = max(ranked, key=ranked.get)
    prob = float(ranked[lang])
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


def detect(text: str, intent: str | None = None) -> tuple[str | None, float]:
    """(language code, confidence in 0..1); (None, 0.0) without any letters.
    `intent` is the Rasa model's intent for the text, when known."""
    lang, prob, _, _ = _analyse(text, intent)
    return lang, prob


def choose(text: str, stated: str | None = None, previous: str | None = None,
           default: str = DEFAULT_LANGUAGE, intent: str | None = None) -> str:
    """The language to answer in: stated > confident detection > previous > default.
    A one-word message is decided only when marker words or the model's training data
    agree with the identifier strongly; otherwise the conversation's language stays."""
    stated = normalise(stated)
    if stated:
        return stated
    lang, prob, by_marker, n_words = _analyse(text, intent)
    if lang and (by_marker or (n_words >= 2 and prob >= CONFIDENT) or prob >= ONE_WORD_CONFIDENT):
        return lang
    return normalise(previous) or default
