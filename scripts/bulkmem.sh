#!/usr/bin/env bash
# Bulk import and export at 10x the shared data set, with peak memory.
#   1. ward import of the shared Synthea set (00-shared + the self-contained
#      smart-* patient bundles) into a fresh SQLite data dir;
#   2. a Bulk Data export of everything ($export through ward serve);
#   3. ndjsoncopies makes COPIES (default 34) copies of that export with new
#      ids (references rewritten);
#   4. ward import of the copies into a fresh data dir under /usr/bin/time -v
#      (peak RSS of the importer);
#   5. ward serve on that data dir, a Bulk Data export of everything, and the
#      server's peak RSS (VmHWM) after it: resources/s written to NDJSON.
# Usage: scripts/bulkmem.sh   (COPIES=N, DATA=path to the Synthea set)
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES=${COPIES:-34} # 34 x the 3,035 resources that load ~ 10x the whole shared set (10,148)
DATA=${DATA:-/work/shared/synthea-r4}
work=${WORK:-$(mktemp -d)}
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
go build -o "$work/ward" ./cmd/ward
go build -o "$work/ndjsoncopies" ./scripts/ndjsoncopies
pw='bulk memory run passphrase 1'

export_all() { # data dir, port, output dir
  local dir=$1 port=$2 out=$3
  "$work/ward" serve --addr "127.0.0.1:$port" --data-dir "$dir" >"$work/serve-$port.out" 2>"$work/serve-$port.err" &
  local pid=$!
  for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  printf '%s\n' "$pw" | "$work/ward" users add --data-dir "$dir" --username exporter --role admin --password-stdin >/dev/null 2>&1 || true
  local tok
  tok=$(curl -fsS -X POST "http://127.0.0.1:$port/oauth2/token" -d grant_type=password -d username=exporter --data-urlencode "password=$pw" | jq -r .access_token)
  echo "server peak RSS before export: $(grep VmHWM /proc/$pid/status)"
  local start end status
  start=$(date +%s.%N)
  status=$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$port/fhir/\$export" -H "Authorization: Bearer $tok" -H 'Prefer: respond-async' | tr -d '\r' | sed -n 's/^Content-Location: //Ip')
  while :; do
    code=$(curl -sS -o "$work/manifest.json" -w '%{http_code}' "$status" -H "Authorization: Bearer $tok")
    [ "$code" = 200 ] && break
    [ "$code" = 202 ] || { echo "status $code"; cat "$work/manifest.json"; exit 1; }
    sleep 0.2
  done
  end=$(date +%s.%N)
  local n
  n=$(jq '[.output[].count] | add' "$work/manifest.json")
  echo "export: $n resources in $(jq '.output | length' "$work/manifest.json") files, $(echo "$end - $start" | bc) s, $(echo "$n / ($end - $start)" | bc) resources/s (kick-off to manifest)"
  echo "server peak RSS after export: $(grep VmHWM /proc/$pid/status)"
  mkdir -p "$out"
  jq -r '.output[] | .url' "$work/manifest.json" | while read -r u; do
    curl -fsS "$u" -H "Authorization: Bearer $tok" -o "$out/$(basename "$(dirname "$u")")-$(basename "$u")"
  done
  echo "downloaded: $(cat "$out"/*.ndjson | wc -l) lines, $(du -sh "$out" | cut -f1)"
  echo "server peak RSS after download: $(grep VmHWM /proc/$pid/status)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "== 1. import the shared set"
"$work/ward" import --quiet --data-dir "$work/base" "$DATA/00-shared" $(ls "$DATA"/patients/smart-*.json) || true
echo "== 2. export it"
export_all "$work/base" 18190 "$work/export1"
echo "== 3. $COPIES copies"
"$work/ndjsoncopies" -n "$COPIES" -out "$work/copies" "$work"/export1/*.ndjson
echo "copies: $(cat "$work"/copies/*.ndjson | wc -l) lines, $(du -sh "$work/copies" | cut -f1)"
echo "== 4. import the copies"
/usr/bin/time -v "$work/ward" import --quiet --data-dir "$work/big" "$work/copies" 2>"$work/import.time" || true
grep -E 'imported|FAILED' "$work/import.time" || true
grep -E 'Maximum resident|Elapsed' "$work/import.time"
echo "== 5. export the copies"
export_all "$work/big" 18191 "$work/export2"
echo "work dir: $work"
