#!/usr/bin/env bash
# Install everything (quick when already done) and run the whole service on embedded
# defaults: SQLite file and embedded Redis under ./var, Rasa, action server, worker, web.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m service.run "$@"
