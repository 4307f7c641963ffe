# The service image: `alerte web` (default), `alerte worker`, `alerte actions`, `alerte db upgrade`.
# Rasa runs from its own image (see Dockerfile.rasa and compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install --only-binary=:all: -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

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
 && python -c "from bot.languages import LANGUAGES; from bot.messages import compile_catalog; [compile_catalog(l) for l in LANGUAGES]" \
 && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin alerte

USER alerte
EXPOSE 8000 5055
CMD ["alerte", "web", "--bind", "0.0.0.0:8000"]
