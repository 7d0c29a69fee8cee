#!/usr/bin/env bash
# Load run of issue #3: ward bench (64 clients, create then read) against
# ward serve on SQLite, and on PostgreSQL when DB_URL is set, all on
# 127.0.0.1. Usage:
#   scripts/loadrun.sh                     # SQLite only
#   DB_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable scripts/loadrun.sh
# DURATION (default 15s) and CONCURRENCY (default 64) can be set too.
# The creates post ward bench's realistic Patient (loadgen.RealisticPatient);
# after the runs each database's search index bytes per Patient are printed
# (ward stats).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONCURRENCY=${CONCURRENCY:-64}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/ward" ./cmd/ward
pw='load run passphrase 123456'
# One bench token sends thousands of requests a second, far beyond the
# per-subject default (200/s, burst 400). The limit stays on the request
# path at a level it never reaches, so the numbers include its check.
export WARD_API_RATE_LIMIT=1000000 WARD_API_RATE_BURST=1000000

run() { # name, port, then env assignments for serve/users
  local name=$1 port=$2; shift 2
  env "$@" "$work/ward" serve --addr "127.0.0.1:$port" --data-dir "$work/$name" >"$work/$name.out" 2>"$work/$name.err" &
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  printf '%s\n' "$pw" | env "$@" "$work/ward" users add --data-dir "$work/$name" --username bench --role physician --password-stdin >/dev/null
  for mix in create read; do
    echo "== $name $mix"
    printf '%s\n' "$pw" | "$work/ward" bench --url "http://127.0.0.1:$port/fhir" --username bench --password-stdin \
      --mix "$mix" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 3s
  done
  kill %1 2>/dev/null || true; wait 2>/dev/null || true
  # What the run's Patients cost in search index (issue #24's budget: 2 KiB).
  echo "== $name index"
  env "$@" "$work/ward" stats --data-dir "$work/$name" --type Patient | tail -1
}

run sqlite 18180
if [ -n "${DB_URL:-}" ]; then
  db="ward_load_$$"
  psql "$DB_URL" -qc "CREATE DATABASE $db"
  url="${DB_URL/\/postgres\?/\/$db?}"
  run postgres 18181 WARD_DATABASE_URL="$url" WARD_KEY="$(head -c32 /dev/urandom | base64)"
  psql "$DB_URL" -qc "DROP DATABASE $db WITH (FORCE)"
fi
