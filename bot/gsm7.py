"""GSM-7: keep SMS in the 7-bit alphabet so a message costs one segment, not three.

Only what is outside GSM-7 is replaced: é è à ù ì ò stay (they are in the alphabet and
carry meaning in French), ê becomes e, ɛ becomes e, curly quotes become straight ones.

What is never text is dropped first (``safe_text``): control characters a reporter may
type and see echoed back, which would make a TwiML reply invalid XML (the provider then
rejects the whole reply) or be read by a handset as GSM-7's escape to the extension table.
"""

import re
import unicodedata

# GSM 03.38 basic character set and the extension table (each extension char costs 2).
# GSM 03.38: the default alphabet (position = septet value; 0x1B is the escape) and
# the extension table (septet after the escape -> character)
ALPHABET = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
            "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
EXTENSION_CODES = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
                   0x3E: "]", 0x40: "|", 0x65: "€"}
BASIC = set(ALPHABET)
EXTENSION = set(EXTENSION_CODES.values())

REPLACEMENTS = {
    "ɛ": "e", "Ɛ": "E", "ɔ": "o", "Ɔ": "O", "œ": "oe", "Œ": "OE",
    "‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "«": '"', "»": '"',
    "–": "-", "—": "-", "…": "...", "\u00a0": " ", "\t": " ", "ç": "c",
}


# Never text: C0 controls except \t \n \r (ESC included: in GSM-7 it only switches to the
# extension table; \f: XML 1.0 cannot carry it), DEL and the C1 controls, lone surrogates,
# and the noncharacters (U+FDD0..U+FDEF, U+FFFE and U+FFFF of every plane).
UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17)) + "]")


def safe_text(text: str) -> str:
    """The text without the characters that XML 1.0 or an SMS cannot carry as text."""
    return UNSAFE.sub("", text)


def is_gsm7(text: str) -> bool:
    return all(ch in BASIC or ch in EXTENSION for ch in text)


def septets(text: str) -> int:
    return sum(2 if ch in EXTENSION else 1 for ch in text)


def segments(text: str) -> int:
    """How many SMS parts the text needs (GSM-7 if it fits the alphabet, else UCS-2)."""
    if is_gsm7(text):
        n = septets(text)
        return 1 if n <= 160 else -(-n // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def to_gsm7(text: str) -> str:
    """Replace only the characters outside GSM-7, keeping é è à ù ì ò; drop control characters."""
    out = []
    for ch in safe_text(text):
        if ch in BASIC or ch in EXTENSION:
            out.append(ch)
        elif ch in REPLACEMENTS:
            out.append(REPLACEMENTS[ch])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base and all(c in BASIC for c in base) else "?")
    return "".join(out)
