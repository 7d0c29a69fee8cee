# Settings shared by scripts/searchrun.sh and scripts/searchseries.sh (sourced,
# not run), so the series finds the databases the run loaded: the output
# directory, the data set's size, and the load of every search run.
OUT=${OUT:-bench-out/search}
PATIENTS=${PATIENTS:-100000}
OBSERVATIONS=${OBSERVATIONS:-1000000}
CONCURRENCY=${CONCURRENCY:-8}
DURATION=${DURATION:-20s}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
