"""Voice prompts: every prompt the line needs has audio in every language; placeholders
are made by the real espeak-ng, once; operators upload recordings that then win; the
provider fetches audio only by a signed URL that expires."""

from __future__ import annotations

import array
import io
import math
import shutil
import time
import wave
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from service import cli, config, prompts
from service.app import create_app
from tests.conftest import FakeEngine, PUBLIC_BASE_URL

TOKEN = {"Authorization": "Bearer test-api-token"}
# prompts every version of the line has (category labels, in the catalogs and on the keypad)
PROMPT, OTHER = "category.ATTACK", "category.CLASH"
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng); .ci/run installs it, so CI never skips")


def tone(hz: float = 440, seconds: float = 1.0, rate: int = 8000, channels: int = 1) -> bytes:
    """A WAV file of a sine tone, as an operator's recording would be."""
    samples = array.array("h", [int(8000 * math.sin(2 * math.pi * hz * n / rate))
                                for n in range(int(seconds * rate)) for _ in range(channels)])
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def mp3(frames: int = 40, id3: bool = True) -> bytes:
    """MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, 417 bytes each) behind an ID3v2 tag."""
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 20]) + b"\0" * 20 if id3 else b""
    return tag + (b"\xff\xfb\x90\x00" + b"\0" * 413) * frames


def read_wav(path_or_bytes) -> tuple[wave._wave_params, array.array]:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    with wave.open(source) as reader:
        return reader.getparams(), array.array("h", reader.readframes(reader.getnframes()))


@pytest.fixture
def app(tmp_path):
    return create_app({
        "ALERTE_ENV": "test", "TESTING": True, "ENGINE": FakeEngine(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'alerte.db'}", "REDIS_URL": "redis://127.0.0.1:6392/0",
        "SECRET_KEY": "test-secret", "API_TOKEN": "test-api-token", "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "PROMPT_RECORDINGS_DIR": str(tmp_path / "locales"), "PROMPT_CACHE_DIR": str(tmp_path / "cache"),
        "PROMPT_UPLOAD_MAX": 200_000, "PROMPT_URL_TTL": 600,
    })


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(app) -> prompts.Store:
    return prompts.Store.from_config(app.config)


def fake_placeholders(store: prompts.Store, ids, languages=prompts.LANGUAGES) -> None:
    """Placeholder files without espeak-ng, for tests about who wins and what is listed."""
    for lang in languages:
        for prompt_id in ids:
            path = store.placeholder(prompt_id, lang)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tone(220, 0.2))


# --- the line has something to say for every prompt ------------------------------------

def test_every_prompt_the_flow_needs_has_a_recording_or_a_placeholder_in_every_language():
    """The test setup makes the placeholders (quick when cached, as scripts/setup.sh does);
    a prompt with neither a recording nor a placeholder would be silence on the line."""
    settings = config.load()
    try:
        prompts.generate({lang: prompts.needed(lang) for lang in prompts.LANGUAGES},
                         Path(settings["PROMPT_CACHE_DIR"]))
    except prompts.EspeakMissing:
        pass  # recordings may still cover everything; if not, the assertion below says what to do
    store = prompts.Store.from_config(settings)
    missing = {lang: found.missing for lang in prompts.LANGUAGES
               if (found := prompts.inventory(lang, store)).missing}
    assert not missing, (f"prompts with nothing to play: {missing}; install espeak-ng and run "
                         "`alerte prompts placeholders`, or upload recordings")
    assert prompts.prompt_ids() >= {PROMPT, OTHER}


# --- placeholders by the real espeak-ng ------------------------------------------------

@needs_espeak
def test_placeholders_are_telephone_audio_spoken_by_espeak_ng(tmp_path):
    made = prompts.generate({"fr": [("welcome", "Bonjour, ici la ligne d'alerte.")],
                             "sw": [("welcome", "Habari, hii ni laini ya tahadhari.")]}, tmp_path)
    assert made["fr"].generated == ["welcome"] and made["sw"].generated == ["welcome"]
    for lang in ("fr", "sw"):
        params, samples = read_wav(tmp_path / lang / "welcome.wav")
        assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
        assert params.nframes / 8000 > 0.8  # a sentence, not a click
        assert max(map(abs, samples)) > 2000  # speech, not silence


@needs_espeak
def test_a_second_run_generates_nothing_and_a_changed_text_only_its_prompt(tmp_path):
    pairs = [("option.yes", "Oui"), ("option.no", "Non"), ("when.today", "Aujourd'hui")]
    assert len(prompts.generate({"fr": pairs}, tmp_path)["fr"].generated) == 3
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "fr").iterdir()}

    again = prompts.generate({"fr": pairs}, tmp_path)["fr"]
    assert again.generated == [] and again.kept == 3
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "fr").iterdir()} == before

    changed = prompts.generate({"fr": [("option.yes", "Oui"), ("option.no", "Non merci"),
                                       ("when.today", "Aujourd'hui")]}, tmp_path)["fr"]
    assert changed.generated == ["option.no"]


@needs_espeak
def test_a_new_espeak_ng_version_regenerates_and_an_unused_prompt_is_pruned(tmp_path, monkeypatch):
    prompts.generate({"sw": [("option.yes", "Ndiyo"), ("option.no", "Hapana")]}, tmp_path)
    monkeypatch.setattr(prompts, "espeak_version", lambda: "99.0")
    report = prompts.generate({"sw": [("option.yes", "Ndiyo")]}, tmp_path, prune=True)["sw"]
    assert report.generated == ["option.yes"] and report.removed == 1
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == ["option.yes.key", "option.yes.wav"]


@needs_espeak
def test_lingala_placeholders_are_the_lingala_text_read_by_the_swahili_voice(tmp_path):
    assert prompts.VOICES["ln"] == "sw"
    text = "Boyei malamu na molongo ya likama."
    prompts.generate({"ln": [("welcome", text)], "sw": [("welcome", text)]}, tmp_path)
    assert prompts.placeholder_key(text, "ln") == prompts.placeholder_key(text, "sw")
    assert (tmp_path / "ln" / "welcome.wav").read_bytes() == (tmp_path / "sw" / "welcome.wav").read_bytes()


@needs_espeak
def test_a_text_starting_with_a_dash_is_spoken_not_taken_for_an_option(tmp_path):
    leak = tmp_path / "leak.wav"  # where espeak-ng would write if it took the text for its -w option
    prompts.generate({"fr": [("value.unknown", f"-w {leak} inconnu")]}, tmp_path)
    params, _ = read_wav(tmp_path / "fr" / "value.unknown.wav")
    assert params.nframes > 8000 and not leak.exists()


def test_resampling_keeps_the_phone_band_and_removes_what_would_alias():
    def level(hz: float) -> float:
        out = prompts.resample(array.array("h", [int(10000 * math.sin(2 * math.pi * hz * n / 22050))
                                                 for n in range(22050)]), 22050, 8000)
        assert len(out) == 8000
        middle = out[200:-200]
        return math.sqrt(sum(v * v for v in middle) / len(middle)) / (10000 / math.sqrt(2))

    assert 0.97 < level(1000) < 1.03
    assert level(6000) < 0.01  # would fold back to 2 kHz without the low-pass


# --- resolving: a recording wins over the placeholder ---------------------------------

def test_resolve_prefers_the_recording_then_the_placeholder_then_nothing(store):
    assert store.resolve("welcome", "sw") is None
    fake_placeholders(store, ["welcome"], ["sw"])
    assert store.resolve("welcome", "sw") == prompts.Resolved(store.placeholder("welcome", "sw"), True)
    store.save("welcome", "sw", tone(), limit=10**6)
    found = store.resolve("welcome", "sw")
    assert found.path == store.recordings / "sw" / "voice" / "welcome.wav" and not found.placeholder
    assert store.resolve("welcome", "fr") is None  # one language's recording is not another's


@pytest.mark.parametrize("prompt_id", ["../secret", "a/b", ".hidden", "a..b", "end.", "wel come", "x" * 101,
                                       "/etc/passwd", "a\\b", "é", ""])
def test_a_prompt_id_can_never_name_a_path(prompt_id, store):
    with pytest.raises(prompts.PromptError):
        store.resolve(prompt_id, "fr")


def test_audio_checks_accept_real_wav_and_mp3_only():
    assert prompts.audio_format(tone(seconds=1.5), 10**6) == ("wav", 1.5)
    assert prompts.audio_format(tone(rate=44100, channels=2, seconds=0.5), 10**6) == ("wav", 0.5)
    assert prompts.audio_format(mp3(40), 10**6) == ("mp3", round(40 * 1152 / 44100, 2))
    assert prompts.audio_format(mp3(40, id3=False) + b"TAG" + b"\0" * 125, 10**6)[0] == "mp3"
    for bad in (b"hello", b"RIFF\0\0\0\0WAVEfmt garbage", tone()[:-100] + b"", mp3(1), mp3(40)[:-50] + b"junk",
                b"\x89PNG\r\n\x1a\n" + b"\0" * 1000, b"<?php echo 1; ?>"):
        with pytest.raises(prompts.PromptError):
            prompts.audio_format(bad, 10**6)
    with pytest.raises(prompts.PromptError, match="at most 120 seconds"):
        prompts.audio_format(tone(seconds=121, rate=8000), 10**7)


# --- the operators' API ------------------------------------------------------------

def test_the_prompts_api_needs_the_operators_token(client):
    for method, path in (("get", "/api/v1/prompts"), ("get", f"/api/v1/prompts/fr/{PROMPT}"),
                         ("put", f"/api/v1/prompts/fr/{PROMPT}"), ("delete", f"/api/v1/prompts/fr/{PROMPT}")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-api-token"}):
            response = getattr(client, method)(path, data=tone() if method == "put" else None, headers=headers)
            assert response.status_code == 401, (method, path, headers)


def test_an_operator_uploads_a_recording_and_the_line_then_plays_it(client, app, store):
    fake_placeholders(store, [PROMPT])
    recording = tone(440, 2.0)
    response = client.put(f"/api/v1/prompts/ln/{PROMPT}", data=recording, headers=TOKEN,
                          content_type="audio/wav")
    assert response.status_code == 201
    assert response.get_json() == {"language": "ln", "prompt_id": PROMPT, "format": "wav", "seconds": 2.0,
                                   "bytes": len(recording), "replaced": False}
    with app.app_context():
        found = prompts.resolve(PROMPT, "ln")
    assert not found.placeholder and found.path.read_bytes() == recording

    heard = client.get(f"/api/v1/prompts/ln/{PROMPT}", headers=TOKEN)
    assert heard.status_code == 200 and heard.data == recording
    assert heard.mimetype == "audio/wav" and heard.headers["X-Prompt-Source"] == "recording"
    assert client.get(f"/api/v1/prompts/sw/{PROMPT}", headers=TOKEN).headers["X-Prompt-Source"] == "placeholder"

    replaced = client.put(f"/api/v1/prompts/ln/{PROMPT}", data=mp3(), headers=TOKEN, content_type="audio/mpeg")
    assert replaced.status_code == 200 and replaced.get_json()["replaced"] is True
    assert sorted(p.name for p in (store.recordings / "ln" / "voice").iterdir()) == [f"{PROMPT}.mp3"]
    assert client.get(f"/api/v1/prompts/ln/{PROMPT}", headers=TOKEN).mimetype == "audio/mpeg"

    assert client.delete(f"/api/v1/prompts/ln/{PROMPT}", headers=TOKEN).status_code == 204
    assert store.resolve(PROMPT, "ln").placeholder
    assert client.delete(f"/api/v1/prompts/ln/{PROMPT}", headers=TOKEN).status_code == 404


@pytest.mark.parametrize("path, status", [
    ("/api/v1/prompts/fr/..%2F..%2Fservice%2Fapp", 400),
    ("/api/v1/prompts/fr/../../service/app", 400),
    ("/api/v1/prompts/fr/.hidden", 400),
    ("/api/v1/prompts/fr/wel%20come", 400),
    (f"/api/v1/prompts/xx/{PROMPT}", 404),
    ("/api/v1/prompts/fr/no.such.prompt", 404),
])
def test_an_upload_under_a_bad_id_or_language_is_refused(client, tmp_path, path, status):
    response = client.put(path, data=tone(), headers=TOKEN)
    assert response.status_code == status and "error" in response.get_json()
    assert not any(p.is_file() for p in tmp_path.rglob("*") if p.suffix in (".wav", ".mp3"))


@pytest.mark.parametrize("body", [b"not audio at all", b"RIFF\x10\0\0\0WAVEjunk", mp3(1),
                                  b"\x89PNG\r\n\x1a\n" + b"\0" * 2000])
def test_an_upload_that_is_not_audio_is_refused(client, store, body):
    response = client.put(f"/api/v1/prompts/fr/{PROMPT}", data=body, headers=TOKEN, content_type="audio/wav")
    assert response.status_code == 400 and "error" in response.get_json()
    assert store.recording(PROMPT, "fr") is None


def test_an_upload_over_the_size_limit_is_refused(client, store):
    too_big = tone(seconds=7)  # 112 KB of 8 kHz 16-bit: over the app's 64 KB, under PROMPT_UPLOAD_MAX
    assert client.put(f"/api/v1/prompts/fr/{PROMPT}", data=too_big, headers=TOKEN).status_code == 201
    response = client.put(f"/api/v1/prompts/fr/{PROMPT}", data=tone(seconds=13), headers=TOKEN)  # 208 KB
    assert response.status_code == 413
    assert store.recording(PROMPT, "fr").read_bytes() == too_big


def test_the_list_counts_recorded_placeholder_and_missing_per_language(client, store):
    ids = sorted(prompts.prompt_ids())
    fake_placeholders(store, ids[1:])
    store.save(ids[2], "fr", tone(), limit=10**6)
    body = client.get("/api/v1/prompts", headers=TOKEN).get_json()["languages"]
    assert set(body) == set(prompts.LANGUAGES)
    fr = body["fr"]
    assert (fr["recorded"], fr["placeholder"], fr["missing"]) == (1, len(ids) - 2, 1)
    assert fr["ids"]["recorded"] == [ids[2]] and fr["ids"]["missing"] == [ids[0]]
    assert fr["placeholder_voice"] == "fr" and fr["note"] is None
    assert body["ln"]["placeholder_voice"] == "sw" and "read by the Swahili voice" in body["ln"]["note"]


# --- signed URLs for the provider's <Play> ------------------------------------------

def test_a_signed_url_plays_without_the_token_until_it_expires(client, app, store):
    fake_placeholders(store, [PROMPT])
    now = time.time()
    with app.app_context():
        url = prompts.signed_url(PROMPT, "sw", now=now)
        assert prompts.signed_url(OTHER, "sw") is None  # nothing to play: no URL
    assert url.startswith(f"{PUBLIC_BASE_URL}/voice/prompts/sw/{PROMPT}?")
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    assert response.data == store.placeholder(PROMPT, "sw").read_bytes()

    expires = int(parse_qs(parts.query)["expires"][0])
    assert now + 600 <= expires <= now + 1200  # at least one PROMPT_URL_TTL, at most two
    signature = parse_qs(parts.query)["signature"][0]
    check = lambda **kw: prompts.check_signature(**{"prompt_id": PROMPT, "language": "sw", "expires": expires,
                                                   "signature": signature, "config": app.config, **kw})
    assert check(now=expires - 1) and not check(now=expires)


def test_a_forged_or_expired_signed_url_is_refused(client, app, store):
    fake_placeholders(store, [PROMPT, OTHER])
    with app.app_context():
        url = urlsplit(prompts.signed_url(PROMPT, "sw"))
        expired = urlsplit(prompts.signed_url(PROMPT, "sw", now=time.time() - 1300))
    query = parse_qs(url.query)
    forged = [
        url.path,  # no signature
        f"{url.path}?expires={query['expires'][0]}&signature=AAAA",
        f"/voice/prompts/sw/{OTHER}?{url.query}",  # another prompt's signature
        f"/voice/prompts/fr/{PROMPT}?{url.query}",  # another language
        f"{url.path}?expires={int(query['expires'][0]) + 3600}&signature={query['signature'][0]}",  # longer life
        f"{expired.path}?{expired.query}",
    ]
    for path in forged:
        assert client.get(path).status_code == 403, path
    other = create_app({**app.config, "SECRET_KEY": "another-secret", "ENGINE": FakeEngine()}).test_client()
    assert other.get(f"{url.path}?{url.query}").status_code == 403  # signed with the service's own secret


# --- `alerte prompts missing` -------------------------------------------------------

def test_the_missing_command_lists_per_language_what_to_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROMPT_RECORDINGS_DIR", str(tmp_path / "locales"))
    monkeypatch.setenv("PROMPT_CACHE_DIR", str(tmp_path / "cache"))
    store = prompts.Store(tmp_path / "locales", tmp_path / "cache")
    ids = sorted(prompts.prompt_ids())
    fake_placeholders(store, ids)
    store.save(PROMPT, "ln", tone(), limit=10**6)

    assert cli.main(["prompts", "missing"]) == 0
    out = capsys.readouterr().out
    ln = out[out.index("ln (Lingala)"):]
    assert f"ln (Lingala): {len(ids)} prompts: 1 recorded, {len(ids) - 1} only a placeholder, 0 with nothing" in out
    assert "every Lingala placeholder is the Lingala text read by the Swahili voice" in ln
    to_record = ln.split("to record (placeholder only): ")[1].splitlines()[0].split(", ")
    assert OTHER in to_record and PROMPT not in to_record and len(to_record) == len(ids) - 1
    assert f"fr (French): {len(ids)} prompts: 0 recorded, {len(ids)} only a placeholder" in out
    assert "Swahili voice" not in out[:out.index("ln (Lingala)")]

    store.placeholder(OTHER, "sw").unlink()
    assert cli.main(["prompts", "missing", "sw"]) == 1  # something would be silence
    out = capsys.readouterr().out
    assert "1 with nothing to play" in out
    assert f"nothing to play (run `alerte prompts placeholders`, or record): {OTHER}" in out
    assert "fr (" not in out
