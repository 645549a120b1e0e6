#!/usr/bin/env python3
"""How well each health measure alone foretells "bought nothing in the horizon" on a demo,
computed from the demo's files and its ground truth (truth.csv), apart from Kinship.

    python3 scripts/health_measures.py DEMO_DIR 2025-03-01 90

Customers active on the date (an invoice in the 90 days before) are labelled as the
backtest labels them. Each AUC is oriented (0.5 is chance, whichever way the measure points).
"""
import bisect, csv, datetime as dt, json, sys

DAY = 86400


def ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def auc(pairs):
    pos = [s for s, l in pairs if l]
    neg = sorted(s for s, l in pairs if not l)
    if not pos or not neg:
        return None
    c = 0.0
    for s in pos:
        lo, hi = bisect.bisect_left(neg, s), bisect.bisect_right(neg, s)
        c += lo + (hi - lo) * 0.5
    return c / len(pos) / len(neg)


def main(d, as_of, horizon_days):
    truth = {(r["source"], r["record_key"]): r["person_id"] for r in csv.DictReader(open(f"{d}/truth.csv"))}
    invoices, orders, tickets = {}, {}, {}
    for r in csv.DictReader(open(f"{d}/invoices.csv")):
        try:
            invoices.setdefault(truth.get(("invoices", r["invoice_id"])), []).append(ts(r["issued_at"]))
        except (ValueError, KeyError):
            pass  # the demo's deliberately malformed rows
    for file, source, key, into in (("shop_orders.jsonl", "shop", "order_id", orders), ("tickets.jsonl", "tickets", "ticket_id", tickets)):
        for line in open(f"{d}/{file}"):
            try:
                o = json.loads(line)
                into.setdefault(truth.get((source, o[key])), []).append(ts(o["created_at"]))
            except (ValueError, KeyError):
                pass
    at, horizon = ts(as_of + "T00:00:00Z"), horizon_days * DAY
    rows = []
    for person, issued in invoices.items():
        bought = sorted(t for t in orders.get(person, []) if t <= at)
        if person is None or not bought or not any(at - 90 * DAY < t <= at for t in issued):
            continue
        stopped = not any(at < t <= at + horizon for t in issued)
        n, first, last = len(bought), bought[0], bought[-1]
        seen = [t for t in tickets.get(person, []) if t <= at]
        rows.append(({
            "orders_90d": sum(t > at - 90 * DAY for t in bought),
            "days_since_order": (at - last) / DAY,
            "orders_per_year": n * 365 / ((at - first) / DAY + 30),
            "tickets_30d": sum(t > at - 30 * DAY for t in seen),
            "tickets_90d": sum(t > at - 90 * DAY for t in seen),
        }, stopped))
    print(f"{len(rows)} active on {as_of}, {sum(s for _, s in rows)} bought nothing in {horizon_days} days")
    if not rows:
        return
    for name in rows[0][0]:
        a = auc([(f[name], s) for f, s in rows])
        if a is None:
            print(f"  {name:<18} no AUC: every customer has the same label")
            continue
        print(f"  {name:<18} AUC {max(a, 1 - a):.3f} ({'higher' if a > 0.5 else 'lower'} foretells stopping)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 90)
