"""A development SMS gateway: every text notify sends is printed, nothing leaves the machine.

docker-compose.yml points notify's ``GRIDGOV_SMS_URL`` here, so that a resident's
one-time code can be read from this container's log, the way ``make run`` logs it:

    docker compose logs sms-sink | grep 139****5678

It speaks what notify's ``HttpSmsGateway`` sends (POST JSON ``{"to", "text",
"reference"}``) and answers ``{"id": …}``. Replace it with a real gateway's URL and
key (``GRIDGOV_SMS_URL``, ``GRIDGOV_SMS_API_KEY``) anywhere residents are real.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def masked(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"


class Texts(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's hook name
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            to, text, reference = body["to"], body["text"], body.get("reference") or ""
        except (ValueError, KeyError, TypeError):
            self.answer(400, {"error": "expected JSON {to, text, reference}"})
            return
        print(json.dumps({"sms_to": masked(to), "text": text, "reference": reference}, ensure_ascii=False),
              flush=True)
        self.answer(200, {"id": f"dev-{reference}"})

    def do_GET(self):  # noqa: N802
        self.answer(200, {"status": "ok"})  # the healthcheck

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # one line per text is enough


if __name__ == "__main__":
    # PID 1 in its container: without a handler SIGTERM would be ignored until the kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(os.environ.get("SMS_SINK_PORT", "8025"))
    print(f"development SMS gateway on :{port}: texts are printed here, never sent", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Texts).serve_forever()
