"""Event-to-task latency under load: sends /v1/batch requests of 100 events at RATE events/s
for DURATION seconds, TRIGGERS of them per second complaint tickets ("<product> arrived
damaged", from customers of the demo) and the rest ordinary events, open loop. Then reads the
store: for each task a complaint made, the time from the ticket's commit (records.ingested_at)
to the task's commit (tasks.created_at), and prints the percentiles.

    python3 scripts/bench_flows.py http://127.0.0.1:7991 wk_... DATA_DIR 10000 1000 30 [postgres://...]
"""

import base64
import http.client
import json
import random
import subprocess
import sys
import threading
import time
import urllib.parse

BATCH = 100
SENDERS = 16


def customers(data_dir):
    emails, products = [], set()
    with open(f"{data_dir}/shop_orders.jsonl") as f:
        for line in f:
            try:
                order = json.loads(line)
            except ValueError:
                continue
            email = order.get("customer", {}).get("email")
            if email:
                emails.append(email.strip().lower())
            for item in order.get("items", []):
                products.add(item["name"])
    return sorted(set(emails)), sorted(products)


def latencies(data_dir, database, run):
    query = ("SELECT t.created_at - r.ingested_at FROM tasks t JOIN records r ON r.source = t.source AND r.record_key = t.record_key "
             f"WHERE t.source = 'desk' AND t.record_key LIKE '{run}-%'")
    if database:
        out = subprocess.run(["psql", database, "-At", "-c", query], capture_output=True, text=True, check=True).stdout
        return [int(v) for v in out.split()]
    import sqlite3
    db = sqlite3.connect(f"file:{data_dir}/kinship.sqlite?mode=ro", uri=True)
    return [row[0] for row in db.execute(query)]


def main():
    url, key, data_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    rate, triggers, duration = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    database = sys.argv[7] if len(sys.argv) > 7 else None
    target = urllib.parse.urlparse(url)
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    emails, products = customers(data_dir)
    per_batch = round(BATCH * triggers / rate)
    requests_per_s = rate / BATCH
    start = time.monotonic() + 0.5
    total = int(requests_per_s * duration)
    sent, failed, complaints = [0], [0], [0]
    lock = threading.Lock()
    run = str(int(time.time()))

    def sender(me):
        rng = random.Random(me)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        for n in range(me, total, SENDERS):
            wait = start + n / requests_per_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            batch = []
            for i in range(BATCH):
                mid = f"{run}-{n}-{i}"
                if i < per_batch:
                    # A help desk knows the customer by email; the anonymous id is the desk's stable id for them.
                    email = rng.choice(emails)
                    batch.append({"type": "track", "event": "Ticket Opened", "messageId": mid, "anonymousId": f"desk-{email}",
                                  "context": {"traits": {"email": email}},
                                  "properties": {"subject": f"{rng.choice(products)} arrived damaged", "status": "open"}})
                else:
                    batch.append({"type": "track", "userId": f"user-{(n * BATCH + i) % 10000}", "event": "Load", "messageId": mid})
            try:
                conn.request("POST", "/v1/batch", json.dumps({"batch": batch}), {"Authorization": auth, "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except OSError:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                ok = False
            with lock:
                if ok:
                    sent[0] += 1
                    complaints[0] += per_batch
                else:
                    failed[0] += 1

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    # Let the resolver and the flows finish what was acknowledged.
    found, stable = [], 0
    while stable < 3:
        time.sleep(1)
        now = latencies(data_dir, database, run)
        stable = stable + 1 if len(now) == len(found) else 0
        found = now

    def pct(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")

    print(f"sent {sent[0] * BATCH} events in {elapsed:.1f} s: {sent[0] * BATCH / elapsed:,.0f} events/s (target {rate:,.0f}), "
          f"{complaints[0] / elapsed:,.0f} complaints/s; failed requests {failed[0]}")
    print(f"tasks {len(found)} for {complaints[0]} complaints acknowledged")
    print(f"event committed to task committed, ms: p50 {pct(found, 50)}  p90 {pct(found, 90)}  p99 {pct(found, 99)}  max {max(found, default=0)}")


if __name__ == "__main__":
    main()
