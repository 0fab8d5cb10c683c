#!/usr/bin/env bash
# Starts the local PostgreSQL when it is not running and makes sure the
# `test` database exists: the ledger tests use it over a real connection and
# fail (they never skip) when they cannot reach it. Fails loudly when it
# cannot start it. (Redis is not used by enrichd yet; the scale-out work will
# add it here.)
set -euo pipefail

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 1
  done
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "error: PostgreSQL on 127.0.0.1:5432 is not accepting connections" >&2
  exit 1
fi
if ! psql -h 127.0.0.1 -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
  echo "creating the test database"
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test"
fi
