# The service image: `alerte web` (default), `alerte worker`, `alerte actions`, `alerte db upgrade`.
# Rasa runs from its own image (see Dockerfile.rasa and compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ALERTE_ENV=production
WORKDIR /app

# espeak-ng speaks the voice line's placeholder prompts (French and Swahili voices; Lingala
# text is read by the Swahili voice) until operators upload recordings.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first, in their own layer: rebuilt only when the lock changes. Exactly the
# versions and files of requirements/service.txt (`bash scripts/lock.sh` refreshes it).
COPY requirements/service.txt requirements/service.txt
RUN pip install --require-hashes --only-binary=:all: -r requirements/service.txt

COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY service/ service/
COPY flows/ flows/
COPY locales/ locales/
COPY data/ data/
# The training examples: language identification weighs the words the model learnt from.
COPY nlu/data/ nlu/data/

# Editable on purpose: the code reads flows/, locales/ and data/ next to its packages.
# Catalogs are compiled here, as root, so the running (read-only) app never writes them.
RUN pip install --no-deps -e . \
 && install -d /var/lib/alerte && cp -r locales /var/lib/alerte/locales \
 && LOCALES_DIR=/var/lib/alerte/locales python -c "from bot.languages import LANGUAGES; from bot.messages import compile_catalog; [compile_catalog(l) for l in LANGUAGES]" \
 && python -c "from service.console import i18n; [i18n.compile_catalog(l) for l in i18n.LANGUAGES]" \
 && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin alerte \
 && chown -R alerte /var/lib/alerte/locales \
 && install -d -o alerte -m 0700 /var/spool/alerte
# SPOOL_DIR: inbound messages wait here while PostgreSQL is down (a volume shared by web
# and worker in compose.yaml; a new named volume takes this folder's owner).
ENV SPOOL_DIR=/var/spool/alerte
# The bot's catalogs, a writable copy (a volume in compose.yaml): translators save there from
# the console; web, worker and actions read them when they start.
ENV LOCALES_DIR=/var/lib/alerte/locales
# Callers' recordings, encrypted (service/recordings.py): the worker writes, web reads.
ENV RECORDINGS_DIR=/var/lib/alerte/recordings

# Voice prompts: placeholders are made here, from the catalogs in the image (the running
# app only reads them; a catalog change is a new image). Operators' uploads go to
# PROMPT_RECORDINGS_DIR, writable by the app and seeded with the recordings shipped under
# locales/<lang>/voice/: mount a volume there to keep uploads across containers.
# ALERTE_ENV=development for this step only: it needs no production secret.
ENV PROMPT_CACHE_DIR=/var/cache/alerte/prompts \
    PROMPT_RECORDINGS_DIR=/var/lib/alerte/prompts
RUN ALERTE_ENV=development alerte prompts placeholders \
 && install -d -o alerte -m 0755 "$PROMPT_RECORDINGS_DIR" \
 && (cd locales && find . -path './*/voice/*' -type f -exec cp --parents -t "$PROMPT_RECORDINGS_DIR" {} +) \
 && chown -R alerte "$PROMPT_RECORDINGS_DIR" \
 && install -d -o alerte -m 0700 "$RECORDINGS_DIR"

USER alerte
EXPOSE 8000 5055
# Liveness of the web process (/livez answers 200 while it runs, whatever Rasa's state).
# Another command (`alerte worker`, `alerte actions`) sets its own check or none.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=4).status != 200)"]
CMD ["alerte", "web", "--bind", "0.0.0.0:8000"]
