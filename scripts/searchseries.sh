#!/usr/bin/env bash
# A series of the issue #4 searches on the databases that scripts/searchrun.sh
# loaded (same OUT, PATIENTS, OBSERVATIONS, DB_URL): both servers start once,
# the page cache is read warm once (every file of the SQLite data directory
# and, when the PostgreSQL server's data directory is readable here, of its
# database), then ROUNDS rounds (default 3) of the six searches, PostgreSQL
# first, each at 8 clients for 20 s after a 3 s warm-up. After every run a
# STAT line gives the host's steal and iowait over the run (% of all CPU
# time, /proc/stat) and the page cache (Cached, MiB) before and after, so a
# run on a busy host or a cold cache shows as one. Usage:
#   scripts/searchrun.sh && scripts/searchseries.sh
#   DB_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable scripts/searchseries.sh
# Settings (environment): as scripts/searchrun.sh, and ROUNDS, WARM=0 (skip
# the page-cache read).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/searchsettings.sh
ROUNDS=${ROUNDS:-3}
ds="$OUT/ds-$PATIENTS-$OBSERVATIONS"
sqdata="$OUT/sqlite-$PATIENTS-$OBSERVATIONS"
[ -f "$sqdata.loaded" ] || { echo "no loaded SQLite database in $OUT: run scripts/searchrun.sh first" >&2; exit 1; }
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
go build -o "$OUT/ward" ./cmd/ward
ward="$OUT/ward"

cache() { awk '/^Cached:/{printf "%d", $2/1024}' /proc/meminfo; }
cpu() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $6, $9}' /proc/stat; } # total, iowait, steal

serve() { # port, data dir, then env assignments
  local port=$1 data=$2; shift 2
  env "$@" "$ward" serve --addr "127.0.0.1:$port" --data-dir "$data" --log-level warn >"$data.series.out" 2>&1 &
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "ward serve on $port did not start: $data.series.out" >&2; exit 1
}

dbs=(sq:18190)
serve 18190 "$sqdata"
warmdirs=("$sqdata")
if [ -n "${DB_URL:-}" ]; then
  pgdata="$OUT/postgres-$PATIENTS-$OBSERVATIONS"
  [ -f "$pgdata.loaded" ] || { echo "no loaded PostgreSQL database in $OUT: run scripts/searchrun.sh first" >&2; exit 1; }
  serve 18191 "$pgdata" WARD_DATABASE_URL="$PGDB" WARD_KEY_FILE="$OUT/postgres.key"
  dbs=(pg:18191 sq:18190)
  dir=$(psql "$PGDB" -Atc "SELECT current_setting('data_directory') || '/base/' || oid FROM pg_database WHERE datname = current_database()")
  if [ -r "$dir" ]; then warmdirs+=("$dir"); else echo "WARM: $dir is not readable here; PostgreSQL's files stay as they are"; fi
fi

if [ "${WARM:-1}" = 1 ]; then
  echo "WARM start $(date -u +%H:%M:%S) cache=$(cache)MiB"
  for d in "${warmdirs[@]}"; do find -H "$d" -maxdepth 1 -type f -exec cat {} + >/dev/null; done
  echo "WARM end $(date -u +%H:%M:%S) cache=$(cache)MiB"
fi

for r in $(seq 1 "$ROUNDS"); do
  for entry in "${dbs[@]}"; do
    name=${entry%%:*} port=${entry##*:}
    for kind in $kinds; do
      echo "== round $r $name $kind"
      c0=$(cache); read -r t0 io0 st0 < <(cpu)
      printf '%s\n' "$pw" | "$ward" bench --url "http://127.0.0.1:$port/fhir" --username bench --password-stdin \
        --mix search --paths "$ds/queries/$kind.txt" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 3s
      read -r t1 io1 st1 < <(cpu); c1=$(cache)
      awk -v t=$((t1 - t0)) -v io=$((io1 - io0)) -v st=$((st1 - st0)) -v c0="$c0" -v c1="$c1" \
        -v n="$name" -v k="$kind" -v ts="$(date -u +%H:%M:%S)" \
        'BEGIN { printf "STAT %s %s %s steal=%.1f%% iowait=%.1f%% cache=%d->%dMiB\n", ts, n, k, 100*st/t, 100*io/t, c0, c1 }'
    done
  done
done
