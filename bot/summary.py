"""How long the free text in a confirmation summary may be, so it always fits one SMS.

The summary ("Pillage/feu, Kitshanga (Masisi), Hier. Personnes: 12. Par: ADF.") is
sent inside the ``confirm`` question. What a reporter wrote (a place the gazetteer does
not know, a time in their words, the perpetrator) can be long: the summary shows it cut
to the limits below, with ``MORE`` at the cut; the stored alert keeps the whole text.

Both the dialogue (``service.actions.form.summary``) and the catalog check
(``python -m bot.catalogs check``, which renders ``confirm`` with the longest label of
each language, the longest place name of the gazetteer and free text at these limits)
use these numbers: raise one and the check tells you in which language it no longer fits.
"""

from __future__ import annotations

from bot.gsm7 import septets, to_gsm7

# Longest free text kept from one answer (bot.answers): a place, a time, a perpetrator.
FREE_TEXT_MAX = 80

# What the summary shows of each free text, in GSM-7 characters, MORE included.
PLACE_TEXT_MAX = 32       # a place written as text (as long as the longest gazetteer name)
WHEN_TEXT_MAX = 16        # a time in the reporter's words ("dimanche vers 20h")
PERPETRATOR_MAX = 26      # a group name or the reporter's words
MORE = "..."              # marks a cut; GSM-7, unlike the one-character ellipsis

# A number of people above this is shown as value.many (the alert keeps the number).
PEOPLE_MAX = 99999
# A time the reporter gave precisely, as the summary shows it (always 11 characters).
WHEN_FORMAT = "%d/%m %Hh%M"


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut so that it takes at most ``limit`` GSM-7 characters once
    sent (a character outside GSM-7 counts as what it becomes, `€ [ ] { } ~ ^ | \\` as
    two), ending with MORE when something was cut; at a space when one is near the end."""
    text = " ".join(text.split())
    if septets(to_gsm7(text)) <= limit:
        return text
    room = limit - len(MORE)
    kept, used = [], 0
    for ch in text:
        cost = septets(to_gsm7(ch))
        if used + cost > room:
            break
        kept.append(ch)
        used += cost
    cut = "".join(kept)
    space = cut.rfind(" ")
    if space >= room * 2 // 3:  # rather "Mai-Mai du...", than "Mai-Mai du ch..."
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + MORE


def place_label(record) -> str:
    """A gazetteer place as the summary names it: "Kitshanga (Masisi)" for a village,
    with its territory; a territory or a province by its name alone."""
    if record.level != "locality" or not record.admin2_name:
        return record.name
    return f"{record.name} ({record.admin2_name})"


def longest_place_label(gazetteer) -> str:
    """The longest place_label of a gazetteer, in GSM-7 characters once sent."""
    records = gazetteer._by_key.values()  # bot.places has no public iterator over its records
    return max((place_label(r) for r in records), key=lambda s: (septets(to_gsm7(s)), s), default="")
