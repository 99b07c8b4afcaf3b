"""A real local HTTP server speaking the HashiCorp Vault KV v2 read API (GET /v1/<mount>/data/<path>).

No Vault binary installs from the package registries here, so `vault:` references are tested at
the HTTP boundary: hvac talks HTTP to this server exactly as it would to Vault.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def kv2_server(secrets: dict[str, dict[str, str]], token: str) -> Iterator[str]:
    """Serve `secrets` ({"mount/path": {key: value}}) to requests bearing `token`; yields the address."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("X-Vault-Token") != token:
                return self._reply(403, {"errors": ["permission denied"]})
            mount, _, rest = self.path.removeprefix("/v1/").partition("/data/")
            data = secrets.get(f"{mount}/{rest.split('?')[0]}")
            if data is None:
                return self._reply(404, {"errors": []})
            metadata = {"created_time": "2026-01-01T00:00:00Z", "deletion_time": "", "destroyed": False, "version": 1}
            return self._reply(200, {"data": {"data": data, "metadata": metadata}})

        def _reply(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
