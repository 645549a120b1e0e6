"""Resolution lag under a fixed event rate: sends /v1/batch requests (100 events over a pool
of 10,000 users) at RATE events/s for DURATION seconds, reads kinship_resolution_lag_seconds
and _records from /metrics every 100 ms, and prints the achieved rate and the lag's
percentiles. An open-loop generator (requests leave on schedule whether or not earlier ones
were answered), unlike wrk, so a slow server shows as lag rather than as a lower rate.

    python3 scripts/bench_lag.py http://127.0.0.1:7981 wk_... 20000 60
"""

import base64
import http.client
import json
import sys
import threading
import time
import urllib.parse

BATCH = 100
USERS = 10_000
SENDERS = 16


def main():
    url, key, rate, duration = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    target = urllib.parse.urlparse(url)
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    requests_per_s = rate / BATCH
    start = time.monotonic() + 0.5
    total = int(requests_per_s * duration)
    sent, failed, late = [0], [0], [0]
    lock = threading.Lock()
    run = str(int(time.time()))

    def sender(me):
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        for n in range(me, total, SENDERS):
            due = start + n / requests_per_s
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.5:
                with lock:
                    late[0] += 1
            batch = [
                {"type": "track", "userId": f"user-{(n * BATCH + i) % USERS}", "event": "Load", "messageId": f"{run}-{n}-{i}"}
                for i in range(BATCH)
            ]
            body = json.dumps({"batch": batch})
            try:
                conn.request("POST", "/v1/batch", body, {"Authorization": auth, "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except OSError:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                ok = False
            with lock:
                if ok:
                    sent[0] += 1
                else:
                    failed[0] += 1

    lags, records = [], []
    done = threading.Event()

    def sampler():
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        while not done.is_set():
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            for line in text.splitlines():
                if line.startswith("kinship_resolution_lag_seconds "):
                    lags.append(float(line.split()[1]))
                elif line.startswith("kinship_resolution_lag_records "):
                    records.append(float(line.split()[1]))
            time.sleep(0.1)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
    watch = threading.Thread(target=sampler)
    watch.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    done.set()
    watch.join()

    def pct(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")

    print(f"sent {sent[0] * BATCH} events in {elapsed:.1f} s: {sent[0] * BATCH / elapsed:,.0f} events/s "
          f"(target {rate:,.0f}); failed requests {failed[0]}; requests sent over 0.5 s late {late[0]}")
    print(f"lag seconds over {len(lags)} samples: p50 {pct(lags, 50):.2f}  p99 {pct(lags, 99):.2f}  max {max(lags, default=0):.2f}")
    print(f"lag records: p50 {pct(records, 50):,.0f}  p99 {pct(records, 99):,.0f}  max {max(records, default=0):,.0f}")
    # About ten samples a second: the worst lag in each ten-second stretch.
    stretches = [max(lags[i:i + 100]) for i in range(0, len(lags), 100)]
    print("worst lag per 10 s: " + " ".join(f"{v:.2f}" for v in stretches))
    if "--trace" in sys.argv:
        print("first 10 s, every 0.5 s: " + " ".join(f"{v:.2f}/{r:,.0f}" for v, r in list(zip(lags, records))[:100:5]))


if __name__ == "__main__":
    main()
