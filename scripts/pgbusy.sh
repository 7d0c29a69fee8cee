#!/usr/bin/env bash
# Make a PostgreSQL server busy: hold N of its connections for a while, as
# other applications on a shared server do, to check that the test suite
# passes beside them (docs/testing.md).
#
# Each connection is a psql session running SELECT pg_sleep(SECONDS), named
# ward_pgbusy in pg_stat_activity. They end by themselves after SECONDS,
# and within a second when this script exits (Ctrl-C, kill, or the end of
# SECONDS): the sessions check every second that their client is still
# there (client_connection_check_interval, PostgreSQL 14+), which matters
# because a full server has no slot left to terminate them from.
#
# Usage: scripts/pgbusy.sh [N] [SECONDS]   (defaults: 88 connections, 900 s)
#   PGBUSY_URL  server to hold (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
# Prints "holding N of M connections" once they are all open, then waits.
set -euo pipefail
n=${1:-88}
secs=${2:-900}
url=${PGBUSY_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
[[ $n =~ ^[0-9]+$ && $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [N] [SECONDS]" >&2; exit 2; }

pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  # The sessions notice their client is gone within a second; when the
  # server has a slot, end them at once (and any left by an older run).
  psql "$url" -qAtc "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'ward_pgbusy' AND pid <> pg_backend_pid()" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

export PGAPPNAME=ward_pgbusy PGOPTIONS="-c client_connection_check_interval=1000"
for _ in $(seq 1 "$n"); do
  psql "$url" -qAtc "SELECT pg_sleep($secs)" >/dev/null 2>&1 &
  pids+=($!)
done

held() { PGAPPNAME=ward_pgbusy_count PGOPTIONS= psql "$url" -qAtc "SELECT count(*) FILTER (WHERE application_name = 'ward_pgbusy'), current_setting('max_connections') FROM pg_stat_activity"; }
for _ in $(seq 1 300); do
  IFS='|' read -r have max < <(held) || true
  [ "${have:-0}" -ge "$n" ] && break
  sleep 0.2
done
echo "holding ${have:-0} of ${max:-?} connections for ${secs} s (ward_pgbusy); $(date -u +%T)"
wait "${pids[@]}" 2>/dev/null || true
echo "released; $(date -u +%T)"
