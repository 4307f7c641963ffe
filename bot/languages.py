"""The one place that knows which languages the service speaks."""

LANGUAGES = ("fr", "sw", "ln")
DEFAULT_LANGUAGE = "fr"

# Babel/CLDR locales used to load catalogs and format numbers and dates.
LOCALES = {"fr": "fr_CD", "sw": "sw_CD", "ln": "ln_CD"}

# How each language names itself, for menus ("1 Francais 2 Kiswahili 3 Lingala").
NATIVE_NAMES = {"fr": "Francais", "sw": "Kiswahili", "ln": "Lingala"}


def normalise(code: str | None) -> str | None:
    """Map a language code (fr, fr_CD, swc, swh, lin...) to one of LANGUAGES, or None."""
    if not code:
        return None
    code = code.lower().replace("-", "_").split("_")[0]
    aliases = {"swc": "sw", "swh": "sw", "swa": "sw", "lin": "ln", "fra": "fr", "fre": "fr"}
    code = aliases.get(code, code)
    return code if code in LANGUAGES else None
