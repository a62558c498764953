"""A local stand-in for Slack: a real HTTP server on 127.0.0.1 that slack-sdk posts to.

Answers follow a script (status, headers, body, delay) per request, then a default; every
request is recorded with its arrival time (``time.monotonic``) and JSON body.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # None: "ok" for a webhook, {"ok": true} for the Web API
    delay_s: float = 0.0


@dataclass
class Request:
    at: float
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSlack:
    """Start with ``FakeSlack(port)``; ``stop()`` releases delayed answers and closes the server."""

    def __init__(self, port: int = 0, script: list[Answer] | None = None, default: Answer | None = None) -> None:
        self.script = list(script or [])
        self.default = default or Answer()
        self.requests: list[Request] = []
        self.release = threading.Event()
        self.received = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # the path holds the webhook secret
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.received:
                    answer = fake.script.pop(0) if fake.script else fake.default
                    fake.requests.append(Request(time.monotonic(), self.path, dict(self.headers),
                                                 json.loads(raw or b"{}")))
                    fake.received.notify_all()
                if answer.delay_s:
                    fake.release.wait(answer.delay_s)
                body = answer.body
                if body is None:
                    body = "ok" if self.path.startswith("/services/") else json.dumps(
                        {"ok": answer.status == 200, **({} if answer.status == 200 else {"error": "ratelimited"})})
                data = body.encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "text/plain" if self.path.startswith("/services/")
                                     else "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (time-out)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/services/T000/B000/s3cr3tW3bh00kPath") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        """Block until ``count`` requests arrived (or fail after ``timeout`` s)."""
        end = time.monotonic() + timeout
        with self.received:
            while len(self.requests) < count:
                left = end - time.monotonic()
                assert left > 0, f"only {len(self.requests)} of {count} requests reached the fake Slack"
                self.received.wait(left)
            return list(self.requests)

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
