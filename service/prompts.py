"""The voice line's audio prompts: operators' recordings, else generated placeholders.

A prompt is keyed by the same id as the text catalogs (``voice.ask_category``, ``voice.digit.7``,
``place.CD6101``...). Recordings uploaded by operators live with the locales, under
``<PROMPT_RECORDINGS_DIR>/<lang>/voice/<prompt_id>.wav|mp3``. Where a prompt has no
recording, a placeholder spoken by espeak-ng is played: generated offline into
``PROMPT_CACHE_DIR`` (never committed), again only when its text, voice or espeak-ng
changed. espeak-ng has no Lingala voice: Lingala placeholders are the Lingala text read by
the Swahili voice, whose sounds are the closest; they are for development, and `alerte
prompts missing` says which recordings a language still lacks.

The provider's ``<Play>`` fetches audio by plain GET, without our bearer token: the voice
webhook gives it ``signed_url(...)``, an HMAC of the prompt and an expiry.
"""

from __future__ import annotations

import array
import base64
import functools
import hashlib
import hmac
import io
import math
import operator
import os
import re
import subprocess
import tempfile
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import quote, urlencode

from babel import Locale

from bot import voice
from bot.flow import alert_flow
from bot.languages import LANGUAGES
from bot.places import default_gazetteer
from service.privacy import derive

FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}  # what Twilio's <Play> plays
# espeak-ng voice per language; Lingala has none: the Swahili voice reads the Lingala text
VOICES = {"fr": "fr", "sw": "sw", "ln": "sw"}
SPEED = 150  # words per minute: slower than espeak-ng's 175, for a phone line
RATE = 8000  # Hz: telephone audio, mono, 16-bit
MAX_SECONDS = 120  # a prompt longer than two minutes is a mistake
ID = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")  # dotted words: no "/", no ".."
ID_MAX = 100
RESAMPLER = "hann-sinc-12"  # part of the cache key: a better filter regenerates everything


class PromptError(ValueError):
    """A prompt id, a language or an upload the line cannot take; the message says why."""


class EspeakMissing(RuntimeError):
    """espeak-ng is not installed (Debian: apt-get install espeak-ng)."""


# --- ids and needed prompts ------------------------------------------------------------

def check_id(prompt_id: str, language: str) -> None:
    """Raise PromptError unless the id and language can name a file under our folders."""
    if language not in LANGUAGES:
        raise PromptError(f"unknown language {language!r}; one of {', '.join(LANGUAGES)}")
    if not isinstance(prompt_id, str) or len(prompt_id) > ID_MAX or not ID.fullmatch(prompt_id):
        raise PromptError("a prompt id is words of letters, digits, _ or - joined by dots")


def prompt_ids() -> set[str]:
    """Every prompt id the voice line can play (the same in every language)."""
    return voice.prompt_ids(alert_flow(), default_gazetteer())


def needed(language: str) -> list[tuple[str, str]]:
    """(prompt id, text to speak) of every prompt the voice line can play in a language."""
    gazetteer = default_gazetteer()
    return [(prompt_id, voice.prompt_text(prompt_id, language, gazetteer)) for prompt_id in sorted(prompt_ids())]


def english_name(language: str) -> str:
    return Locale.parse(language).english_name


# --- where the audio is ----------------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    path: Path
    placeholder: bool  # True: espeak-ng's placeholder, no recording yet

    @property
    def mimetype(self) -> str:
        return FORMATS[self.path.suffix[1:]]


@dataclass(frozen=True)
class Store:
    """The two folders of prompts, from the service's configuration."""

    recordings: Path
    cache: Path

    @classmethod
    def from_config(cls, config: Mapping) -> "Store":
        return cls(Path(config["PROMPT_RECORDINGS_DIR"]), Path(config["PROMPT_CACHE_DIR"]))

    def recording(self, prompt_id: str, language: str) -> Path | None:
        check_id(prompt_id, language)
        folder = self.recordings / language / "voice"
        return next((p for ext in FORMATS if (p := folder / f"{prompt_id}.{ext}").is_file()), None)

    def placeholder(self, prompt_id: str, language: str) -> Path:
        check_id(prompt_id, language)
        return self.cache / language / f"{prompt_id}.wav"

    def resolve(self, prompt_id: str, language: str) -> Resolved | None:
        """The recording if there is one, else the placeholder (even one whose text has
        changed since: an old sentence beats silence), else None."""
        recorded = self.recording(prompt_id, language)
        if recorded:
            return Resolved(recorded, False)
        path = self.placeholder(prompt_id, language)
        return Resolved(path, True) if path.is_file() else None

    def save(self, prompt_id: str, language: str, data: bytes, limit: int) -> tuple[str, float]:
        """Store an operator's recording, replacing any other; returns (format, seconds)."""
        check_id(prompt_id, language)
        ext, seconds = audio_format(data, limit)
        folder = self.recordings / language / "voice"
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / f"{prompt_id}.{ext}", data)
        for other in FORMATS:
            if other != ext:
                (folder / f"{prompt_id}.{other}").unlink(missing_ok=True)
        return ext, seconds

    def delete(self, prompt_id: str, language: str) -> bool:
        """Remove a recording (the placeholder plays again); False if there was none."""
        found = self.recording(prompt_id, language)
        if found:
            found.unlink()
        return found is not None

    def recorded_ids(self, language: str) -> set[str]:
        folder = self.recordings / language / "voice"
        return {p.stem for p in folder.iterdir() if p.suffix[1:] in FORMATS and ID.fullmatch(p.stem)} \
            if folder.is_dir() else set()


def store(config: Mapping | None = None) -> Store:
    if config is None:
        from flask import current_app
        config = current_app.config
    return Store.from_config(config)


def resolve(prompt_id: str, language: str, config: Mapping | None = None) -> Resolved | None:
    """The audio to play for a prompt (see Store.resolve); the app's settings by default."""
    return store(config).resolve(prompt_id, language)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# --- what an upload must be -----------------------------------------------------------

def audio_format(data: bytes, limit: int) -> tuple[str, float]:
    """("wav" | "mp3", seconds) of an upload, or PromptError: only real audio is kept."""
    if len(data) > limit:
        raise PromptError(f"a recording is at most {limit} bytes")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav", _wav_seconds(data)
    return "mp3", _mp3_seconds(data)


def _wav_seconds(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            channels, width, rate, frames = (reader.getnchannels(), reader.getsampwidth(),
                                             reader.getframerate(), reader.getnframes())
            complete = len(reader.readframes(frames)) == frames * channels * width
    except (wave.Error, EOFError) as exc:
        raise PromptError(f"not a PCM WAV file the line can play ({exc})") from None
    if channels not in (1, 2) or width not in (1, 2) or not 8000 <= rate <= 48000 or not frames or not complete:
        raise PromptError("a WAV recording must be PCM, 8 or 16 bits, mono or stereo, 8 to 48 kHz, "
                          "and not cut short (8 kHz mono 16-bit is best for the phone)")
    return _duration(frames / rate)


# MPEG audio Layer III: bitrates (kbit/s) by version and index, sample rates by version
_BITRATES = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(data: bytes, at: int) -> tuple[int, int, int] | None:
    """(frame length, samples, sample rate) of the Layer III frame header at `at`, or None."""
    if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (data[at + 1] >> 3) & 3, (data[at + 1] >> 1) & 3
    bitrate_index, rate_index, padding = data[at + 2] >> 4, (data[at + 2] >> 2) & 3, (data[at + 2] >> 1) & 1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _BITRATES[1 if mpeg1 else 2][bitrate_index] * 1000
    rate = _RATES[version][rate_index]
    samples = 1152 if mpeg1 else 576
    return samples // 8 * bitrate // rate + padding, samples, rate


def _mp3_seconds(data: bytes) -> float:
    at = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # ID3v2 tag: its size is 4 bytes of 7 bits
        at = 10 + sum((data[6 + i] & 0x7F) << (7 * (3 - i)) for i in range(4))
    frames, seconds = 0, 0.0
    while (frame := _mp3_frame(data, at)) is not None and at + frame[0] <= len(data):
        length, samples, rate = frame
        frames, seconds, at = frames + 1, seconds + samples / rate, at + length
    rest = data[at:]
    if frames < 2 or (rest and not rest.startswith((b"TAG", b"APETAGEX", b"LYRICS")) and rest.strip(b"\0")):
        raise PromptError("not an audio file the line can play: send WAV (PCM) or MP3")
    return _duration(seconds)


def _duration(seconds: float) -> float:
    if seconds > MAX_SECONDS:
        raise PromptError(f"a prompt lasts at most {MAX_SECONDS} seconds")
    return round(seconds, 2)


# --- placeholders ----------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def espeak_version() -> str:
    """espeak-ng's version ("1.51"): a new one may speak differently, so it is in the cache key."""
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise EspeakMissing("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)") from None
    match = re.search(r"text-to-speech:\s*(\S+)", out)
    return match.group(1) if match else out.strip()


def placeholder_key(text_: str, language: str) -> str:
    """What a placeholder was made from: the text, the voice and its settings, espeak-ng."""
    parts = (espeak_version(), VOICES[language], str(SPEED), str(RATE), RESAMPLER, text_)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def synthesise(text_: str, language: str) -> bytes:
    """The text spoken by espeak-ng in the language's voice, as 8 kHz mono 16-bit WAV."""
    espeak_version()
    with tempfile.TemporaryDirectory(prefix="alerte-espeak-") as tmp:
        out = Path(tmp) / "speech.wav"
        # the text on stdin, so a text starting with "-" is never read as an option
        subprocess.run(["espeak-ng", "-v", VOICES[language], "-s", str(SPEED), "-b", "1", "-w", str(out)],
                       input=text_.encode(), check=True, capture_output=True)
        with wave.open(str(out)) as reader:
            rate, width = reader.getframerate(), reader.getsampwidth()
            frames = reader.readframes(reader.getnframes())
    if width != 2:
        raise RuntimeError(f"espeak-ng wrote {8 * width}-bit audio, expected 16-bit")
    samples = array.array("h", frames)
    return wav_bytes(resample(samples, rate, RATE), RATE)


def wav_bytes(samples: array.array, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


@functools.lru_cache(maxsize=4)
def _phases(up: int, down: int, half: int) -> tuple[tuple[float, ...], ...]:
    """Hann-windowed sinc low-pass taps for each of the `up` fractional positions."""
    cutoff = min(1.0, up / down) * 0.92  # a little under the new Nyquist frequency
    table = []
    for phase in range(up):
        taps = []
        for k in range(-half + 1, half + 1):
            t = k - phase / up
            ideal = cutoff if t == 0 else math.sin(math.pi * cutoff * t) / (math.pi * t)
            taps.append(ideal * (0.5 + 0.5 * math.cos(math.pi * t / half)))
        table.append(tuple(taps))
    return tuple(table)


def resample(samples: array.array, rate_in: int, rate_out: int, half: int = 12) -> array.array:
    """16-bit samples from one rate to another (band-limited, polyphase; standard library)."""
    ratio = Fraction(rate_out, rate_in)
    up, down = ratio.numerator, ratio.denominator
    phases = _phases(up, down, half)
    padded = [0] * half + list(samples) + [0] * half
    out = array.array("h", bytes(2 * (len(samples) * up // down)))
    mul = operator.mul
    for n in range(len(out)):
        position, phase = divmod(n * down, up)
        value = sum(map(mul, padded[position + 1:position + 2 * half + 1], phases[phase]))
        out[n] = 32767 if value > 32767 else -32768 if value < -32768 else int(value)
    return out


@dataclass
class Generated:
    generated: list[str] = field(default_factory=list)
    kept: int = 0
    removed: int = 0


def generate(prompts: Mapping[str, Iterable[tuple[str, str]]], cache: Path, prune: bool = False,
             workers: int | None = None) -> dict[str, Generated]:
    """Make the placeholders that are missing or out of date, in several processes.

    Args:
        prompts: per language, its (prompt id, text) pairs, e.g. ``needed(language)``.
        cache: PROMPT_CACHE_DIR; files go to ``<cache>/<language>/<id>.wav``, each with a
            ``.key`` beside it naming what it was made from (``placeholder_key``).
        prune: also delete a language's placeholders of ids not among its pairs.
        workers: processes synthesising at once (default: one per CPU).

    Returns:
        Per language, the ids generated and how many were already up to date.
    """
    reports: dict[str, Generated] = {}
    todo: dict[str, tuple[str, str]] = {}  # key -> (text, language): one synthesis per key
    writes: list[tuple[Path, str, str]] = []
    for language, pairs in prompts.items():
        folder = Path(cache) / language
        folder.mkdir(parents=True, exist_ok=True)
        report, wanted = reports.setdefault(language, Generated()), set()
        for prompt_id, text_ in pairs:
            check_id(prompt_id, language)
            wanted.add(prompt_id)
            key = placeholder_key(text_, language)
            if _key_of(folder / f"{prompt_id}.key") == key and (folder / f"{prompt_id}.wav").is_file():
                report.kept += 1
                continue
            todo.setdefault(key, (text_, language))  # a place name read by one voice for sw and ln
            writes.append((folder, prompt_id, key))
            report.generated.append(prompt_id)
        if prune:
            report.removed = _prune(folder, wanted)
    if todo:
        keys = list(todo)
        with ProcessPoolExecutor(max_workers=min(len(keys), workers or os.cpu_count() or 1)) as pool:
            audio = dict(zip(keys, pool.map(_synthesise_pair, [todo[k] for k in keys], chunksize=4)))
        for folder, prompt_id, key in writes:
            _write_atomic(folder / f"{prompt_id}.wav", audio[key])
            _write_atomic(folder / f"{prompt_id}.key", key.encode())  # after the audio: a crash means "redo"
    return reports


def _synthesise_pair(pair: tuple[str, str]) -> bytes:
    return synthesise(*pair)


def _key_of(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _prune(folder: Path, wanted: set[str]) -> int:
    removed = 0
    for path in folder.iterdir():
        if path.suffix in (".wav", ".key") and path.stem not in wanted:
            path.unlink()
            removed += path.suffix == ".wav"
    return removed


def placeholder_current(cache: Path, prompt_id: str, language: str, text_: str) -> bool | None:
    """Whether a placeholder was made from this text with this espeak-ng (None: cannot tell)."""
    key_file = Path(cache) / language / f"{prompt_id}.key"
    try:
        return key_file.is_file() and key_file.read_text() == placeholder_key(text_, language)
    except EspeakMissing:
        return None


# --- the inventory: recorded, placeholder only, missing --------------------------------

@dataclass
class Inventory:
    language: str
    recorded: list[str]
    placeholder: list[str]  # no recording: the placeholder plays
    outdated: list[str]  # placeholders made from an older text (play until regenerated)
    missing: list[str]  # neither: the line has nothing to play
    unused: list[str]  # recordings of ids the line no longer needs

    @property
    def note(self) -> str | None:
        if VOICES[self.language] == self.language:
            return None
        name, voice = english_name(self.language), english_name(VOICES[self.language])
        return (f"no synthetic {name} voice: every {name} placeholder is the {name} text read by "
                f"the {voice} voice; record these first")

    def as_json(self) -> dict:
        return {"recorded": len(self.recorded), "placeholder": len(self.placeholder),
                "missing": len(self.missing), "outdated": len(self.outdated),
                "placeholder_voice": VOICES[self.language], "note": self.note,
                "ids": {"recorded": self.recorded, "placeholder": self.placeholder,
                        "outdated": self.outdated, "missing": self.missing, "unused": self.unused}}


def inventory(language: str, prompts: Store, pairs: Iterable[tuple[str, str]] | None = None) -> Inventory:
    pairs = list(needed(language) if pairs is None else pairs)
    recorded_ids = prompts.recorded_ids(language)
    result = Inventory(language, [], [], [], [], sorted(recorded_ids - {p for p, _ in pairs}))
    for prompt_id, text_ in pairs:
        if prompt_id in recorded_ids:
            result.recorded.append(prompt_id)
        elif prompts.placeholder(prompt_id, language).is_file():
            result.placeholder.append(prompt_id)
            if placeholder_current(prompts.cache, prompt_id, language, text_) is False:
                result.outdated.append(prompt_id)
        else:
            result.missing.append(prompt_id)
    return result


# --- signed URLs for the provider ------------------------------------------------------

def _signature(secret: str, prompt_id: str, language: str, expires: int) -> str:
    key = derive(secret, "voice-prompt-url")
    digest = hmac.new(key, f"{language}/{prompt_id}/{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_url(prompt_id: str, language: str, config: Mapping | None = None, now: float | None = None) -> str | None:
    """An absolute URL the provider can GET without our token, or None if nothing plays.

    The expiry is rounded to PROMPT_URL_TTL, so one prompt keeps one URL for a while (the
    provider caches it) and stays valid between one and two TTLs; ``v`` changes with the
    audio, so a new recording is never hidden behind a cached placeholder."""
    if config is None:
        from flask import current_app
        config = current_app.config
    found = resolve(prompt_id, language, config)
    if found is None:
        return None
    ttl = int(config["PROMPT_URL_TTL"])
    expires = (int(now if now is not None else time.time()) // ttl + 2) * ttl
    stat = found.path.stat()
    version = hashlib.sha256(f"{found.path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    query = urlencode({"expires": expires, "v": version,
                       "signature": _signature(config["SECRET_KEY"], prompt_id, language, expires)})
    base = str(config["PUBLIC_BASE_URL"]).rstrip("/")
    return f"{base}/voice/prompts/{quote(language)}/{quote(prompt_id)}?{query}"


def check_signature(prompt_id: str, language: str, expires: str, signature: str, config: Mapping,
                    now: float | None = None) -> bool:
    """True if the URL was signed by us and has not expired."""
    try:
        deadline = int(expires)
    except (TypeError, ValueError):
        return False
    expected = _signature(config["SECRET_KEY"], prompt_id, language, deadline)
    return hmac.compare_digest(expected.encode(), str(signature or "").encode()) and \
        deadline > (now if now is not None else time.time())


# --- command line: `alerte prompts missing|placeholders` -------------------------------

def cli(parser):
    parser.add_argument("action", choices=["missing", "placeholders"],
                        help="missing: per language, the prompts with no recording (and those with "
                             "nothing to play); placeholders: generate espeak-ng placeholders "
                             "(only those whose text changed)")
    parser.add_argument("languages", nargs="*", metavar="LANG", help="fr, sw or ln (all by default)")
    return _run


def _run(args) -> int:
    from service import config

    unknown = sorted(set(args.languages) - set(LANGUAGES))
    if unknown:
        print(f"unknown languages {unknown}; choose among {', '.join(LANGUAGES)}")
        return 2
    settings = config.load()
    languages = args.languages or list(LANGUAGES)
    if args.action == "placeholders":
        return _placeholders(settings, languages)
    return _missing(Store.from_config(settings), languages)


def _placeholders(settings: Mapping, languages: list[str]) -> int:
    started = time.monotonic()
    try:
        reports = generate({lang: needed(lang) for lang in languages}, Path(settings["PROMPT_CACHE_DIR"]),
                           prune=True)
    except EspeakMissing as exc:
        print(f"alerte prompts: {exc}")
        return 1
    for lang, report in reports.items():
        voice = "" if VOICES[lang] == lang else f" (read by the {english_name(VOICES[lang])} voice)"
        print(f"{lang}: {len(report.generated)} generated, {report.kept} up to date, "
              f"{report.removed} removed{voice}")
    print(f"placeholders in {settings['PROMPT_CACHE_DIR']} ({time.monotonic() - started:.1f} s)")
    return 0


def _missing(prompts: Store, languages: list[str]) -> int:
    nothing = 0
    for lang in languages:
        found = inventory(lang, prompts)
        total = len(found.recorded) + len(found.placeholder) + len(found.missing)
        print(f"{lang} ({english_name(lang)}): {total} prompts: {len(found.recorded)} recorded, "
              f"{len(found.placeholder)} only a placeholder, {len(found.missing)} with nothing to play")
        if found.note:
            print(f"  {found.note}")
        for label, ids in (("to record (placeholder only)", found.placeholder),
                           ("nothing to play (run `alerte prompts placeholders`, or record)", found.missing),
                           ("placeholders older than their text (run `alerte prompts placeholders`)",
                            found.outdated),
                           ("recordings no prompt uses", found.unused)):
            if ids:
                print(f"  {label}: {', '.join(ids)}")
        nothing += len(found.missing)
    return 1 if nothing else 0
