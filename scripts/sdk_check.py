#!/usr/bin/env python3
"""Send identify, track, page and alias calls to a Kinship server with the official
Segment and RudderStack Python SDKs, changing only their host setting.

Used by the `sdk_*` integration test in crates/kinship/tests/cli.rs, which then checks
through the REST API that the events landed on the right profiles. Runnable by hand:

    python3 -m venv .venv && .venv/bin/pip install segment-analytics-python rudder-sdk-python
    .venv/bin/python scripts/sdk_check.py --url http://127.0.0.1:7878 \
        --segment-key wk_... --rudder-key wk_... --run demo1

Exits 1 if either SDK reports a failed upload. For SDK "segment", user ids are
`segment-RUN-user`, anonymous ids `segment-RUN-anon`, the alias's previous id
`segment-RUN-old`, the email `segment-RUN@example.com`; the same with `rudder`.
"""

import argparse
import sys

failures = []


def on_error(error, items):
    failures.append(f"{error} ({len(items)} messages)")


def send(client, name, run):
    user, anon, old = f"{name}-{run}-user", f"{name}-{run}-anon", f"{name}-{run}-old"
    # An anonymous visitor browses, then signs up: identify links the two ids.
    client.page(anonymous_id=anon, name="Pricing", properties={"path": "/pricing"})
    client.track(anonymous_id=anon, event="Product Viewed", properties={"sku": "SKU-1", "sdk": name})
    client.identify(user_id=user, anonymous_id=anon, traits={"email": f"{name}-{run}@example.com", "name": f"{name.title()} User"})
    client.track(user_id=user, event="Order Completed", properties={"total": 42.5, "sdk": name})
    client.page(user_id=user, name="Thanks", properties={"path": "/thanks"})
    # An older id of the same person is folded in.
    client.alias(previous_id=old, user_id=user)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--segment-key", required=True)
    p.add_argument("--rudder-key", required=True)
    p.add_argument("--run", required=True)
    a = p.parse_args()

    import segment.analytics as analytics
    import rudderstack.analytics as rudder_analytics

    # Segment: only the write key and the host change.
    analytics.write_key = a.segment_key
    analytics.host = a.url
    analytics.on_error = on_error
    send(analytics, "segment", a.run)
    analytics.flush()
    analytics.shutdown()

    # RudderStack: only the write key and the data plane URL change (it gzips by default).
    rudder_analytics.write_key = a.rudder_key
    rudder_analytics.dataPlaneUrl = a.url
    rudder_analytics.on_error = on_error
    send(rudder_analytics, "rudder", a.run)
    rudder_analytics.flush()
    rudder_analytics.shutdown()

    if failures:
        print("uploads failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("sent: segment and rudder, 6 calls each")


if __name__ == "__main__":
    main()
