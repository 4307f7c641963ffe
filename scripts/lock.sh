#!/usr/bin/env bash
# Refreshes every lock file under requirements/ with pip-tools (`pip-compile`), then
# commit them. Exact versions with the hashes of every release file, so that
# `pip install --require-hashes` installs the same bits on every machine:
#   service.txt  the service's runtime dependencies (pyproject.toml): the image (Dockerfile)
#   test.txt     the same pins plus the extras `embedded` and `test`: .venv (setup.sh)
#   rasa.txt     Rasa Open Source (rasa.in), resolved on Python 3.10: .venv-rasa (setup.sh)
# service.txt and test.txt are resolved on Python 3.11 (the image's Python and setup.sh's
# first choice), rasa.txt on 3.10 on Linux x86_64: a dependency needed only on another
# Python or platform is not in them.
#
#   bash scripts/lock.sh                  # lock what changed, keep the other pins
#   bash scripts/lock.sh --upgrade        # newest releases of everything allowed
#   bash scripts/lock.sh --upgrade-package flask    # just that one (any pip-compile option)
#
# pip-tools runs from throwaway environments, never from .venv or .venv-rasa. It needs
# Python 3.11 and 3.10 (on PATH or under pyenv, as for setup.sh) and the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh"
# Locks come from the package index alone: this machine's pip configuration (find-links
# folders, extra or local indexes) is left out, or a lock could pin a file found nowhere
# else. LOCK_USE_PIP_CONFIG=1 keeps it (a company mirror, say).
if [[ -z "${LOCK_USE_PIP_CONFIG:-}" ]]; then
  export PIP_CONFIG_FILE=/dev/null
  unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_NO_INDEX PIP_CONSTRAINT
fi
PIP_TOOLS="pip-tools>=7.4,<8"

say() { printf '[lock] %s\n' "$*" >&2; }

# shellcheck source=scripts/find-python.sh
source scripts/find-python.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pip_compile() {  # VERSION ARGS...: pip-compile from a throwaway venv of that Python
  local v=$1; shift
  if [[ ! -x "$work/$v/bin/pip-compile" ]]; then
    local py; py=$(find_python "$v") || { say "Python $v is needed"; exit 1; }
    say "pip-tools for Python $v ($py)"
    "$py" -m venv "$work/$v"
    "$work/$v/bin/pip" install -q "$PIP_TOOLS"
  fi
  # The lock must not depend on this machine: no index or find-links lines (they would
  # name local paths or hosts), extras folded into plain names, setuptools pinned too
  # (--require-hashes refuses any unpinned package).
  "$work/$v/bin/pip-compile" -q --generate-hashes --strip-extras --allow-unsafe \
    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host "$@"
}

check_portable() {  # FILE: no local path, URL or host may end up in a lock
  local bad
  bad=$(grep -vE '^[[:space:]]+--hash=sha256:[0-9a-f]+( \\)?$' "$1" \
        | grep -nE '://|(^|[[:space:]=])/|--(index-url|extra-index-url|find-links|trusted-host)' || true)
  if [[ -n "$bad" ]]; then
    say "$1 names a local path or a host:"; printf '%s\n' "$bad" >&2; exit 1
  fi
}

say "requirements/service.txt"
pip_compile 3.11 "$@" -o requirements/service.txt pyproject.toml
say "requirements/test.txt (pinned like service.txt)"
pip_compile 3.11 "$@" --extra embedded --extra test -c requirements/service.txt \
  -o requirements/test.txt pyproject.toml
say "requirements/rasa.txt"
pip_compile 3.10 "$@" -o requirements/rasa.txt requirements/rasa.in
{ cat <<'EOF'
# Rasa's environment (.venv-rasa): Rasa Open Source and everything it needs, resolved on
# Python 3.10 for Linux x86_64, exact versions WITH the hashes of every release file
# (pip-compile --generate-hashes: about ten minutes, TensorFlow included, as the index gives
# the hashes). Complete, so scripts/setup.sh installs it with `--require-hashes
# --no-deps`. On Python 3.11 setup.sh derives constraints from it (scripts/rasa-py311/).
# Refresh with `bash scripts/lock.sh`, never by hand.
EOF
  cat requirements/rasa.txt; } > "$work/rasa.txt" && mv "$work/rasa.txt" requirements/rasa.txt
for f in requirements/service.txt requirements/test.txt requirements/rasa.txt; do check_portable "$f"; done
say "done; commit requirements/"
