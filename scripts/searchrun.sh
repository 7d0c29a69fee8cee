#!/usr/bin/env bash
# Search benchmark of issue #4: 100,000 Patients and 1,000,000 Observations
# (ward bench generate), loaded with ward import through the ordinary write
# path (validated, sealed, indexed, audited), then the six benchmarked
# searches at 8 concurrent clients (ward bench --mix search) against
# ward serve on 127.0.0.1, with each search's query plan (ward explain) and
# the index size per Observation (ward stats), as an admin user (admins reach
# every patient; a clinician is restricted to their care set). SQLite always; PostgreSQL too
# when DB_URL is set. Usage:
#   scripts/searchrun.sh
#   DB_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable scripts/searchrun.sh
# Settings (environment): OUT (default bench-out/search: the data set and the
# loaded databases are kept there and reused by the next run), PATIENTS,
# OBSERVATIONS, CONCURRENCY (8), DURATION (20s), SKIP_LOAD=1 (reuse loaded
# databases). Loading the full set takes tens of minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/searchsettings.sh
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
go build -o "$OUT/ward" ./cmd/ward
ward="$OUT/ward"
timer=""
[ -x /usr/bin/time ] && timer="/usr/bin/time -v" # peak memory of the import
ds="$OUT/ds-$PATIENTS-$OBSERVATIONS"
if [ ! -f "$ds/queries/chain.txt" ]; then
  "$ward" bench generate --out "$ds" --patients "$PATIENTS" --observations "$OBSERVATIONS"
fi

run() { # name, port, then env assignments for every ward command
  local name=$1 port=$2; shift 2
  local data="$OUT/$name-$PATIENTS-$OBSERVATIONS"
  if [ "${SKIP_LOAD:-}" != 1 ] || [ ! -f "$data.loaded" ]; then
    echo "== $name: import"
    rm -rf "$data" "$data.loaded"
    env "$@" $timer "$ward" import --quiet --workers 2 --data-dir "$data" "$ds" 2>"$OUT/$name-import.err" | tee "$OUT/$name-import.out"
    grep -E 'Maximum resident|Elapsed' "$OUT/$name-import.err" || true
    printf '%s\n' "$pw" | env "$@" "$ward" users add --data-dir "$data" --username bench --role admin --password-stdin >/dev/null
    # What autovacuum would have done by now (this machine's server runs
    # without it): statistics and the visibility map for index-only scans.
    if [ "$name" = postgres ]; then psql "$PGDB" -qc 'VACUUM ANALYZE'; fi
    touch "$data.loaded"
  fi
  echo "== $name: index size"
  env "$@" "$ward" stats --data-dir "$data" --type Observation
  echo "== $name: query plans (first query of each kind)"
  for kind in $kinds; do
    q=$(head -1 "$ds/queries/$kind.txt")
    echo "-- $kind: ${q%%\?*}?..."
    env "$@" "$ward" explain --data-dir "$data" "$q" | sed 's/^/   /'
    if [ "$name" = postgres ]; then
      # Ward's sessions reuse generic plans: this is the plan that runs.
      echo "   (generic plan)"
      env "$@" "$ward" explain --generic --data-dir "$data" "$q" | sed 's/^/   /'
    fi
  done
  env "$@" "$ward" serve --addr "127.0.0.1:$port" --data-dir "$data" --log-level warn >"$OUT/$name.serve.out" 2>&1 &
  local spid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  for kind in $kinds; do
    echo "== $name $kind (concurrency $CONCURRENCY, $DURATION)"
    printf '%s\n' "$pw" | "$ward" bench --url "http://127.0.0.1:$port/fhir" --username bench --password-stdin \
      --mix search --paths "$ds/queries/$kind.txt" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 3s
  done
  kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
}

run sqlite 18190
if [ -n "${DB_URL:-}" ]; then
  keyfile="$OUT/postgres.key"
  [ -f "$keyfile" ] || { head -c32 /dev/urandom | base64 >"$keyfile"; chmod 600 "$keyfile"; }
  if [ "${SKIP_LOAD:-}" != 1 ] || [ ! -f "$OUT/postgres-$PATIENTS-$OBSERVATIONS.loaded" ]; then
    psql "$DB_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    psql "$DB_URL" -qc "CREATE DATABASE $db"
  fi
  run postgres 18191 WARD_DATABASE_URL="$PGDB" WARD_KEY_FILE="$keyfile"
fi
