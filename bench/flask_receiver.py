"""The typical tutorial receiver, as a baseline: Flask, verify the HMAC, insert into sqlite3.

It does what the seed material's Flask receivers do, plus the same checks hookgate makes
(HMAC-SHA256 over "{timestamp}.{body}", a 5-minute freshness window, three fields
extracted), and commits one sqlite3 row per request. Run by the benchmark suite under the
Flask development server and under gunicorn with one worker per core.
"""

import hashlib
import hmac
import json
import os
import sqlite3
import time

from flask import Flask, request

SECRET = os.environ.get("BENCH_SECRET", "bench-secret").encode()
DB = os.environ.get("BENCH_DB", "flask_events.db")

app = Flask(__name__)


def db():
    conn = sqlite3.connect(DB, timeout=30)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE,"
        " sender TEXT, source TEXT, body BLOB, received_at REAL)"
    )
    return conn


@app.route("/hooks/<account>", methods=["POST"])
def hook(account):
    body = request.get_data()
    ts = request.headers.get("X-Timestamp", "")
    sig = request.headers.get("X-Signature", "")
    expected = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig):
        return {"status": "rejected"}, 401
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return {"status": "rejected"}, 401
    data = json.loads(body)
    conn = db()
    try:
        conn.execute(
            "INSERT OR IGNORE INTO events (event_id, sender, source, body, received_at) VALUES (?, ?, ?, ?, ?)",
            (data.get("id"), data.get("customer", {}).get("phone"), str(data.get("order", {}).get("id")), body, time.time()),
        )
        conn.commit()
    finally:
        conn.close()
    return {"status": "accepted"}, 200


if __name__ == "__main__":
    port = int(os.environ.get("BENCH_PORT", "5000"))
    db().close()
    app.run(host="127.0.0.1", port=port, threaded=True)
