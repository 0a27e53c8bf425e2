#!/usr/bin/env python3
"""A partner's webhook receiver for the demo (deploy/demo.sh): checks the ptibus signature
(docs/adapters/webhook.md), keeps each delivery once by its Idempotency-Key (a webhook is
at-least-once), writes it to DIR/<seq>-<message id>.json and answers 200; a bad signature
gets 401. Usage: webhook_receiver.py PORT SECRET_FILE DIR"""
import hashlib
import hmac
import http.server
import os
import re
import sys
import time

PORT, SECRET_FILE, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
SECRET = open(SECRET_FILE, "rb").read().rstrip(b"\r\n")
TOLERANCE_S = 300
os.makedirs(OUT, exist_ok=True)


def verify(header: str, body: bytes) -> bool:
    try:
        f = dict(p.split("=", 1) for p in header.split(","))
        if abs(time.time() - int(f["t"])) > TOLERANCE_S:
            return False
        mac = hmac.new(SECRET, f["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac, f["v1"])
    except (KeyError, ValueError):
        return False


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verify(self.headers.get("X-Ptibus-Signature", ""), body):
            self.send_response(401)
            self.end_headers()
            return
        seq = self.headers.get("X-Ptibus-Delivery", "0")
        key = re.sub(r"[^A-Za-z0-9._-]", "_", self.headers.get("Idempotency-Key", ""))
        path = os.path.join(OUT, f"{int(seq):020d}-{key}.json")
        if not os.path.exists(path):  # a retry of what we have: answered 200 again
            with open(path + ".tmp", "wb") as f:
                f.write(body)
            os.rename(path + ".tmp", path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
