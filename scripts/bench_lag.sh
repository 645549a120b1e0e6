#!/bin/bash
# Usage: scripts/bench_lag.sh sqlite|postgres RATE DURATION_SECONDS
# Resolution lag of one `kinship serve` node under a fixed event rate (scripts/bench_lag.py),
# on its embedded SQLite file or on PostgreSQL (the cluster of bench_postgres_ingest.sh,
# started the same way: Debian's postgresql, fsync on, port 56543, run as root).
set -e
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
KINSHIP=${KINSHIP:-$SCRIPTS/../target/release/kinship}
BACKEND=${1:-sqlite}; RATE=${2:-20000}; D=${3:-60}
mkdir -p "${BENCH_DIR:-/tmp/kinship-pg-bench}" && chmod 777 "${BENCH_DIR:-/tmp/kinship-pg-bench}"
cd "${BENCH_DIR:-/tmp/kinship-pg-bench}"
rm -rf lag-node
unset KINSHIP_DATABASE_URL
if [ "$BACKEND" = postgres ]; then
  . "$SCRIPTS/bench_pg_cluster.sh"
  DB=lag_$(date +%s)
  psql -q -h 127.0.0.1 -p 56543 -U kinship -d postgres -c "CREATE DATABASE $DB"
  export KINSHIP_DATABASE_URL=postgres://kinship@127.0.0.1:56543/$DB
fi
KEY=$($KINSHIP source add --type segment --name web --data lag-node 2>/dev/null | tail -1)
$KINSHIP serve --data lag-node --bind 127.0.0.1:7990 > lag-node.log 2>&1 &
NODE=$!
sleep 2
python3 "$SCRIPTS/bench_lag.py" http://127.0.0.1:7990 "$KEY" "$RATE" "$D" $4
kill -TERM $NODE; wait $NODE || true
