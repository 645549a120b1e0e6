#!/bin/bash
# Usage: scripts/bench_dry_run.sh DATA_DIR [RUNS]
# A flow's dry run over all history, the two ways it runs: `kinship flow dry-run` (reads
# the log) and `POST /api/v1/flows/dry-run` on a server holding the audience in memory.
# DATA_DIR is a demo (`kinship demo --no-serve --customers 2000000 --seed 3 --data DIR` for
# 20M records); a segment is defined if none is, so the server loads its audience.
set -e
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
KINSHIP=${KINSHIP:-$SCRIPTS/../target/release/kinship}
DATA=$1; RUNS=${2:-3}
FLOW=$DATA/flows/complaint_to_task.toml
for i in $(seq 1 "$RUNS"); do
  /usr/bin/time -f "CLI, reading the log: %e s, max RSS %M KB" "$KINSHIP" --data "$DATA" flow dry-run "$FLOW" --days 3650 --samples 0
done
TOKEN=$("$KINSHIP" --data "$DATA" token create --name "dry-run-bench-$$" --role admin | grep '^kt_')
"$KINSHIP" --data "$DATA" serve --bind 127.0.0.1:7979 > "$DATA/bench-serve.log" 2>&1 &
NODE=$!
trap 'kill $NODE 2>/dev/null' EXIT
API=http://127.0.0.1:7979/api/v1
for i in $(seq 1 1200); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 1; done
if [ "$(curl -sf -H "Authorization: Bearer $TOKEN" $API/segments | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["segments"]))')" = 0 ]; then
  T0=$(date +%s.%N)
  curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' $API/segments \
    -d '{"name":"repeat_buyers","expression":"count(\"Order Completed\") >= 2"}' >/dev/null
  echo "audience loaded for the first segment in $(printf %.1f "$(echo "$(date +%s.%N) - $T0" | bc -l)") s"
fi
for i in $(seq 1 $((RUNS + 1))); do
  # The first run after start reads the candidates' records from disk; the rest from the page cache.
  /usr/bin/time -f "API, audience in memory (run $i): %e s" curl -sf -X POST -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: text/plain' "$API/flows/dry-run?days=3650&samples=0" --data-binary @"$FLOW"
  echo
done
