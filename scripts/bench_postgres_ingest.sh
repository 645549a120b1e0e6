#!/bin/bash
# Usage: scripts/bench_postgres_ingest.sh NODES DURATION CONNECTIONS_PER_NODE
# Sustained /v1/batch ingest (100-event batches, wrk on loopback) into one PostgreSQL
# database through NODES `kinship serve` nodes, then the time the nodes take to resolve
# what they accepted. Needs Debian's postgresql and wrk; runs as root (the server runs as
# the postgres user). Starts a PostgreSQL cluster (fsync on) under BENCH_DIR on port 56543.
set -e
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
KINSHIP=${KINSHIP:-$SCRIPTS/../target/release/kinship}
mkdir -p "${BENCH_DIR:-/tmp/kinship-pg-bench}" && chmod 777 "${BENCH_DIR:-/tmp/kinship-pg-bench}"
cd "${BENCH_DIR:-/tmp/kinship-pg-bench}"
N=${1:-1}; D=${2:-20s}; C=${3:-8}
. "$SCRIPTS/bench_pg_cluster.sh"
DB=bench_${N}_$(date +%s)
psql -q -h 127.0.0.1 -p 56543 -U kinship -d postgres -c "CREATE DATABASE $DB"
export KINSHIP_DATABASE_URL=postgres://kinship@127.0.0.1:56543/$DB
rm -rf node-*
KEY=$($KINSHIP source add --type segment --name web --data node-1 2>/dev/null | tail -1)
for i in $(seq 1 $N); do
  mkdir -p node-$i; cp node-1/kinship.toml node-1/secret.key node-$i/ 2>/dev/null || true
  $KINSHIP serve --data node-$i --bind 127.0.0.1:79$((80+i)) > node-$i.log 2>&1 &
done
sleep 2
WRK=""
for i in $(seq 1 $N); do
  RUN=n$i WRITE_KEY=$KEY wrk -t1 -c$C -d$D --latency -s $SCRIPTS/load_batch.lua http://127.0.0.1:79$((80+i)) > wrk-$i.log 2>&1 &
  WRK="$WRK $!"
done
wait $WRK
sleep 1
for i in $(seq 1 $N); do grep -E "Requests/sec|99%|status" wrk-$i.log | tr '\n' ' '; echo; done
echo "resolved when the load stopped: $(psql -h 127.0.0.1 -p 56543 -U kinship -d $DB -Atc 'select count(*) from assignments')"
T0=$(date +%s.%N)
pkill -TERM -f "kinship serve --data node-"
while pgrep -f "kinship serve --data node-" >/dev/null; do sleep 0.2; done
echo "nodes finished resolving $(echo "$(date +%s.%N) - $T0" | bc -l | cut -c1-5) s after the load stopped"
echo "resolved since the run began: $(psql -h 127.0.0.1 -p 56543 -U kinship -d $DB -Atc 'select count(*) from assignments')"

psql -h 127.0.0.1 -p 56543 -U kinship -d $DB -Atc "select count(*) from records; select count(*) from assignments; select count(*) from profiles"
