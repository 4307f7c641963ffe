#!/usr/bin/env bash
# Install what the tests need (quick when already done) and run the whole suite:
# unit tests, then real conversations against a trained Rasa server, a real Redis and
# real PostgreSQL and SQLite databases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
bash scripts/test-services.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
