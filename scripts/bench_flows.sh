#!/bin/bash
# Usage: scripts/bench_flows.sh sqlite|postgres [RATE] [TRIGGERS] [DURATION_SECONDS] [CUSTOMERS]
# Event-to-task latency of one `kinship serve` node running the demo's complaint flow while
# it ingests RATE events/s, TRIGGERS/s of them complaints (scripts/bench_flows.py). On
# PostgreSQL, the cluster of bench_pg_cluster.sh (port 56543).
set -e
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
KINSHIP=${KINSHIP:-$SCRIPTS/../target/release/kinship}
BACKEND=${1:-sqlite}; RATE=${2:-10000}; TRIGGERS=${3:-1000}; D=${4:-30}; CUSTOMERS=${5:-10000}
mkdir -p "${BENCH_DIR:-/tmp/kinship-pg-bench}" && chmod 777 "${BENCH_DIR:-/tmp/kinship-pg-bench}"
cd "${BENCH_DIR:-/tmp/kinship-pg-bench}"
rm -rf flows-node
unset KINSHIP_DATABASE_URL
DB=
if [ "$BACKEND" = postgres ]; then
  . "$SCRIPTS/bench_pg_cluster.sh"
  NAME=flows_$(date +%s)
  psql -q -h 127.0.0.1 -p 56543 -U kinship -d postgres -c "CREATE DATABASE $NAME"
  DB=postgres://kinship@127.0.0.1:56543/$NAME
  export KINSHIP_DATABASE_URL=$DB
fi
$KINSHIP demo --no-serve --customers "$CUSTOMERS" --data flows-node > flows-demo.log 2>&1
KEY=$($KINSHIP source add --type segment --name desk --data flows-node 2>/dev/null | tail -1)
$KINSHIP serve --data flows-node --bind 127.0.0.1:7991 > flows-node.log 2>&1 &
NODE=$!
sleep 3
python3 "$SCRIPTS/bench_flows.py" http://127.0.0.1:7991 "$KEY" flows-node "$RATE" "$TRIGGERS" "$D" $DB
kill -TERM $NODE; wait $NODE || true
