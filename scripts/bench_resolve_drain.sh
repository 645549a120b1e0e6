#!/bin/bash
# Usage: scripts/bench_resolve_drain.sh DATABASE NODES
# Resolution alone, no load beside it: forgets how DATABASE (on the cluster of
# bench_postgres_ingest.sh, whose run made it) was resolved, starts NODES `kinship serve`
# nodes on it, and times until every record is on a profile again. Needs the node-N
# directories that script left under BENCH_DIR; runs as root.
set -e
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
KINSHIP=${KINSHIP:-$SCRIPTS/../target/release/kinship}
cd "${BENCH_DIR:-/tmp/kinship-pg-bench}"
DB=$1; N=${2:-1}
PSQL="psql -q -h 127.0.0.1 -p 56543 -U kinship -d $DB"
$PSQL -c "DELETE FROM assignments; DELETE FROM profile_identifiers; DELETE FROM merge_edges; DELETE FROM profiles;
          DELETE FROM resolution_partitions; DELETE FROM resolvers; UPDATE meta SET value = '0' WHERE key = 'resolved_through'" >/dev/null
$PSQL -c "VACUUM ANALYZE" >/dev/null
TOTAL=$($PSQL -Atc "SELECT count(*) FROM records")
export KINSHIP_DATABASE_URL=postgres://kinship@127.0.0.1:56543/$DB
T0=$(date +%s.%N)
for i in $(seq 1 "$N"); do
  mkdir -p node-$i; cp node-1/kinship.toml node-1/secret.key node-$i/ 2>/dev/null || true
  $KINSHIP serve --data node-$i --bind 127.0.0.1:79$((80+i)) > drain-$i.log 2>&1 &
done
while [ "$($PSQL -Atc "SELECT count(*) FROM assignments")" -lt "$TOTAL" ]; do sleep 0.5; done
T=$(echo "$(date +%s.%N) - $T0" | bc -l)
echo "$N node(s) resolved $TOTAL records in $(printf %.2f "$T") s: $(echo "$TOTAL / $T" | bc) records/s (node start included)"
pkill -TERM -f "kinship serve --data node-" || true
while pgrep -f "kinship serve --data node-" >/dev/null; do sleep 0.2; done
