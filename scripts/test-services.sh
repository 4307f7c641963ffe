#!/usr/bin/env bash
# The tests need a Redis on 127.0.0.1:6379 and a PostgreSQL on 127.0.0.1:5432 with a
# `test` database reachable as user postgres without password (TEST_REDIS_URL and
# TEST_POSTGRES_URL override these). Start or install them when they are missing.
set -euo pipefail
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"

if [[ -z "${TEST_REDIS_URL:-}" ]] && ! listening 6379; then
  command -v redis-server >/dev/null || { $sudo apt-get update -qq; $sudo apt-get install -y -qq redis-server >/dev/null; }
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
if [[ -z "${TEST_POSTGRES_URL:-}" ]] && ! listening 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    $sudo apt-get update -qq; $sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  v=$(ls /etc/postgresql | head -1)
  $sudo pg_ctlcluster --skip-systemctl-redirect "$v" main start || $sudo pg_ctlcluster "$v" main start
  for _ in $(seq 30); do listening 5432 && break; sleep 1; done
  $sudo -u postgres psql -qc "ALTER USER postgres PASSWORD NULL" >/dev/null 2>&1 || true
  $sudo -u postgres createdb test 2>/dev/null || true
  grep -q "127.0.0.1/32 *trust" /etc/postgresql/"$v"/main/pg_hba.conf || {
    sed -i '1i host all all 127.0.0.1/32 trust' /etc/postgresql/"$v"/main/pg_hba.conf
    $sudo pg_ctlcluster "$v" main reload || true; }
fi
