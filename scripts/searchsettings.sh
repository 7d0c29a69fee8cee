# Settings shared by scripts/searchrun.sh and scripts/searchseries.sh (sourced,
# not run), so the series finds and logs in to the databases the run loaded:
# the output directory, the data set's size, the load of every search run,
# the searches, the bench user's password and the PostgreSQL database.
OUT=${OUT:-bench-out/search}
PATIENTS=${PATIENTS:-100000}
OBSERVATIONS=${OBSERVATIONS:-1000000}
CONCURRENCY=${CONCURRENCY:-8}
DURATION=${DURATION:-20s}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
kinds="family identifier birthdate patient-obs code-count chain"
pw='search run passphrase 123456'
# One bench token sends thousands of requests a second, far beyond the
# per-subject default (200/s, burst 400). The limit stays on the request
# path at a level it never reaches, so the numbers include its check.
export WARD_API_RATE_LIMIT=1000000 WARD_API_RATE_BURST=1000000
if [ -n "${DB_URL:-}" ]; then
  db="ward_search_${PATIENTS}_${OBSERVATIONS}"
  PGDB="${DB_URL/\/postgres\?/\/$db?}"
fi
