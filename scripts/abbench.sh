#!/usr/bin/env bash
# Side-by-side hot-path benchmarks of two commits, in one sitting:
#   scripts/abbench.sh OLD [NEW] [ROUNDS]
# builds internal/app's test binary at OLD and NEW (default HEAD), then
# runs BenchmarkCreatePatient, BenchmarkReadPatient and BenchmarkSearch
# (SQLite and PostgreSQL; BENCH='regexp' picks others, e.g. adding
# BenchmarkTransaction100$) ROUNDS times (default 4), alternating old and
# new so that both see the same machine, and prints benchstat's table
# (go run golang.org/x/perf/cmd/benchstat). PostgreSQL: WARD_TEST_POSTGRES
# (a database of its own), as for the tests.
set -euo pipefail
old=${1:?usage: scripts/abbench.sh OLD [NEW] [ROUNDS]}
new=${2:-HEAD}
rounds=${3:-4}
bench=${BENCH:-'BenchmarkCreatePatient$|BenchmarkReadPatient$|BenchmarkSearch$'}
top=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$top" worktree remove --force "$work/old" >/dev/null 2>&1 || true; git -C "$top" worktree remove --force "$work/new" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for v in old new; do
  rev=$old; [ "$v" = new ] && rev=$new
  git -C "$top" worktree add -q --detach "$work/$v" "$rev"
  (cd "$work/$v" && go test -c -o "$work/$v.test" ./internal/app)
done
cd "$top/internal/app"
for i in $(seq 1 "$rounds"); do
  for v in old new; do
    echo "round $i: $v" >&2
    "$work/$v.test" -test.run '^$' -test.bench "$bench" \
      -test.benchtime 1s -test.count 1 | grep '^Benchmark' >>"$work/$v.txt"
  done
done
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$work/old.txt" "$work/new.txt"
