"""A real HTTP server on 127.0.0.1 for remote media tests; it records every request.

Besides its fixed routes it serves ``files`` (path -> body and content type), which a test
may fill once the server runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.support.media import png_bytes

IMAGE = png_bytes(20, 10)


@dataclass
class ImageServer:
    port: int
    hits: list[tuple[str, str]] = field(default_factory=list)
    accepts: list[str] = field(default_factory=list)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    record: ImageServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.record.hits.append((self.path, self.headers.get("host", "")))
        self.record.accepts.append(self.headers.get("accept", ""))
        parts = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        if parts.path in self.record.files:
            body, content_type = self.record.files[parts.path]
            self._send(200, body, {"content-type": content_type})
            return
        route = {
            "/image.png": lambda: self._send(200, IMAGE, {"content-type": "image/png"}),
            "/redirect": lambda: self._send(302, b"", {"location": query["to"]}),
            "/loop": lambda: self._send(302, b"", {"location": "/loop"}),
            "/big": lambda: self._stream(int(query["size"]), declare="declare" in query),
            "/slow": self._slow,
        }.get(parts.path, lambda: self._send(404, b"not found", {}))
        route()

    def _slow(self) -> None:
        self.record.release.wait(30)
        self._send(200, IMAGE, {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, size: int, *, declare: bool) -> None:
        # Without content-length the body ends when the connection closes.
        self.send_response(200)
        if declare:
            self.send_header("content-length", str(size))
        self.send_header("connection", "close")
        self.end_headers()
        try:
            for _ in range(size // 4096):
                self.wfile.write(b"\0" * 4096)
        except OSError:
            pass
        self.close_connection = True


@contextmanager
def image_server() -> Iterator[ImageServer]:
    record = ImageServer(port=0)
    handler = type("Handler", (_Handler,), {"record": record})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    record.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        record.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
