"""A webhook receiver that verifies every delivery with the Standard Webhooks reference
library (PyPI `standardwebhooks`), as a customer's endpoint would.

    python webhook_receiver.py PORT SECRET OUT_FILE

Prints the port it listens on (PORT 0 picks one). A verified delivery is appended to OUT_FILE
as one JSON line {id, profile, record, flow} and answered 204; one that does not verify
(tampered, wrong secret, stale) is answered 400 and not written.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

port, secret, out_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
webhook = Webhook(secret)
out = open(out_path, "a", buffering=1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            payload = webhook.verify(body, {k: v for k, v in self.headers.items()})
        except WebhookVerificationError as e:
            self.answer(400, str(e).encode())
            return
        data = payload["data"]
        out.write(json.dumps({
            "id": self.headers["webhook-id"],
            "profile": data["profile_id"],
            "record": data["trigger"]["record_key"],
            "flow": data["flow"],
        }) + "\n")
        self.answer(204, b"")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
